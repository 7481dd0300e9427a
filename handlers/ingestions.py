"""/api/ingestions: upload instrument files with options; each file (or sheet) becomes a job."""

from __future__ import annotations

from typing import Any

import attrs
from aiohttp import BodyPartReader, web

from domain.core.errors import BadRequest, TooLarge, field_error
from domain.core.pagination import Page
from domain.datasets.models import Ingestion, IngestionBatch, IngestOptions, UploadedIngestion, check_options
from domain.infra.localfiles import SpooledFile
from domain.quotas.service import Quotas, Room
from handlers.codec import json_response, loads_json, parse_body, parse_query, structure
from handlers.identity import require_user
from handlers.keys import INGESTIONS, LOCAL_FILES, SETTINGS
from handlers.multipart import MULTIPART_SLACK, check_multipart, file_name, multipart_parts, read_chunks
from handlers.openapi import doc

routes = web.RouteTableDef()

OPTION_FIELDS = {"dataset_type", "tag", "header_mode", "custom_headers", "manifest", "version_of"}
JSON_FIELDS = {"custom_headers", "manifest"}
MAX_FIELD_BYTES = 256 * 1024


@attrs.frozen
class IngestionForm:
    """multipart/form-data: the option fields first, then one or more `files`; custom_headers and
    manifest are JSON arrays (manifest entries: ingest, sheets, parse_range, variables, profile);
    version_of: a dataset of the project the one file becomes a new version of."""

    files: list[bytes]
    dataset_type: str | None = None
    tag: str | None = None
    header_mode: str | None = None
    custom_headers: str | None = None
    manifest: str | None = None
    version_of: str | None = None


@attrs.frozen
class PageQuery:
    limit: int | None = None
    cursor: str | None = None


async def _field_text(part: BodyPartReader) -> str:
    raw = b""
    async for chunk in read_chunks(part, 64 * 1024):
        raw += chunk
        if len(raw) > MAX_FIELD_BYTES:
            raise field_error(f"$.{part.name}", f"must be at most {MAX_FIELD_BYTES} bytes")
    return raw.decode("utf-8", errors="replace")


def parse_options(fields: dict[str, str], *, max_json_depth: int) -> IngestOptions:
    """Form fields (all text) into validated options; every failure names its field."""
    data: dict[str, Any] = {}
    for name, text in fields.items():
        if name in JSON_FIELDS:
            try:
                data[name] = loads_json(text.encode(), max_depth=max_json_depth)
            except BadRequest as exc:
                if exc.code == "too_deep":
                    raise
                raise field_error(f"$.{name}", "must be a JSON array") from None
            if not isinstance(data[name], list):
                raise field_error(f"$.{name}", "must be a JSON array")
        elif text.strip():
            data[name] = text.strip()
    return check_options(structure(data, IngestOptions))


async def read_upload(request: web.Request, files: list[SpooledFile], room: Room) -> IngestOptions:
    """Options are checked when the first file starts, so bad options never store a byte; the
    spooled files are appended to `files`, which the caller owns (and cleans up on failure). No more
    is spooled than the quotas leave room for (`room`)."""
    settings = request.app[SETTINGS].ingest
    check_multipart(request, settings.max_file_bytes * settings.max_files)
    if room.bytes is not None and (request.content_length or 0) > room.bytes + MULTIPART_SLACK:
        raise Quotas.too_large(room, request.content_length)
    spool = request.app[LOCAL_FILES]
    fields: dict[str, str] = {}
    options: IngestOptions | None = None
    depth = request.app[SETTINGS].http.max_json_depth
    async for part in multipart_parts(request):
        if part.filename is None:
            if part.name not in OPTION_FIELDS:
                raise field_error(
                    f"$.{part.name}", f"unknown field; the fields are {', '.join(sorted(OPTION_FIELDS))}"
                )
            if options is not None:
                raise field_error(f"$.{part.name}", "option fields must come before the files")
            fields[part.name] = await _field_text(part)
            continue
        if part.name not in ("files", "file"):
            raise field_error(f"$.{part.name}", "files are sent in fields named files")
        options = options or parse_options(fields, max_json_depth=depth)
        if len(files) >= settings.max_files:
            raise TooLarge(
                f"at most {settings.max_files} files can be uploaded at once", code="too_many_files"
            )
        name = file_name(part.filename)
        left = None if room.bytes is None else room.bytes - sum(f.size for f in files)
        limit = settings.max_file_bytes if left is None else min(settings.max_file_bytes, left)
        try:
            spooled = await spool.spool_upload(
                read_chunks(part), name=name, content_type=part.headers.get("Content-Type"), max_bytes=limit
            )
        except TooLarge:
            if limit < settings.max_file_bytes:  # the quota, not the file limit, was passed
                raise Quotas.too_large(room) from None
            raise
        files.append(spooled)
    return options or parse_options(fields, max_json_depth=depth)


@routes.post("/api/projects/{pid}/ingestions")
@doc("Upload instrument files; each one (or each chosen sheet) becomes a dataset through a job. Or, as "
     "JSON, name finished resumable uploads (upload_ids) instead of sending the bytes",
     body=IngestionForm, request_content_type="multipart/form-data", other_bodies={"application/json": UploadedIngestion},
     response=IngestionBatch, status=202)  # fmt: skip
async def create_ingestions(request: web.Request) -> web.Response:
    actor = await require_user(request)
    service = request.app[INGESTIONS]
    await service.check_project(actor, request.match_info["pid"])  # outsiders are refused before the upload
    if request.content_type == "application/json":
        body = await parse_body(request, UploadedIngestion)
        options = check_options(body.options())
        batch = await service.accept_uploads(actor, request.match_info["pid"], options, body.upload_ids)
        return json_response(batch, status=202)
    files: list[SpooledFile] = []
    room = await service.storage_room(actor, request.match_info["pid"])
    try:
        options = await read_upload(request, files, room)
        batch = await service.accept(actor, request.match_info["pid"], options, files)
    finally:
        # refused or accepted, the request lets go of its spooled files: its jobs hold them now
        await service.release_spool(files)
    return json_response(batch, status=202)


@routes.get("/api/projects/{pid}/ingestions")
@doc(
    "The project's ingestions, newest first, with their jobs' status",
    query=PageQuery,
    response=Page[Ingestion],
)
async def list_ingestions(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, PageQuery)
    page = await request.app[INGESTIONS].list_ingestions(
        actor, request.match_info["pid"], limit=query.limit, cursor=query.cursor
    )
    return json_response(page)


@routes.get("/api/ingestions/{id}")
@doc("One ingestion: its file, options, job status and datasets", response=Ingestion)
async def get_ingestion(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[INGESTIONS].get(actor, request.match_info["id"]))


@routes.delete("/api/ingestions/{id}")
@doc("Delete an ingestion: cancels its job, removes its datasets and raw bytes nothing else uses", status=204)
async def delete_ingestion(request: web.Request) -> web.Response:
    actor = await require_user(request)
    await request.app[INGESTIONS].delete(actor, request.match_info["id"])
    return web.Response(status=204)
