"""/api/documents: files streamed into S3 with versions, streamed out with Range support."""

from __future__ import annotations

import json
from typing import Any

import attrs
from aiohttp import web

from domain.core.errors import field_error
from domain.core.ids import check_dataset_ids
from domain.core.pagination import Page
from domain.documents.models import Document, DocumentVersion
from handlers.codec import json_response, parse_body, parse_query
from handlers.downloads import stream_content
from handlers.identity import require_user
from handlers.keys import DOCUMENTS
from handlers.multipart import UploadForm, single_file
from handlers.openapi import doc

routes = web.RouteTableDef()


@attrs.frozen
class DocumentListQuery:
    q: str | None = None
    limit: int | None = None
    cursor: str | None = None


@attrs.frozen
class FromUpload:
    """A JSON body naming a finished resumable upload (POST /api/uploads) instead of sending the
    bytes; name defaults to the upload's filename metadata."""

    upload_id: str
    name: str | None = None
    dataset_ids: list[str] | None = None  # the datasets it cites


@attrs.frozen
class CitationQuery:
    """dataset_ids: the datasets the document cites, comma-separated (with a multipart upload)."""

    dataset_ids: str | None = None


async def _body(request: web.Request, max_bytes: int) -> dict[str, Any]:
    """The new content's arguments for the service: a multipart file, or an upload named in JSON;
    and the datasets the document cites (JSON dataset_ids, or ?dataset_ids= with a multipart file)."""
    if request.content_type == "application/json":
        body = await parse_body(request, FromUpload)
        cited = None if body.dataset_ids is None else check_dataset_ids(body.dataset_ids)
        return {"upload_id": body.upload_id, "name": body.name, "dataset_ids": cited}
    query = parse_query(request, CitationQuery).dataset_ids
    upload = await single_file(request, max_bytes=max_bytes, text_fields=("dataset_ids",))
    given, path = (query, "query.dataset_ids") if query is not None else (upload.fields.get("dataset_ids"), "$.dataset_ids")
    cited = None if given is None else check_dataset_ids(_id_list(given), path)
    return {"name": upload.name, "content_type": upload.content_type, "chunks": upload.chunks, "dataset_ids": cited}


def _id_list(text: str) -> list[str]:
    """Ids comma-separated, or as a JSON array."""
    text = text.strip()
    if text.startswith("["):
        try:
            values = json.loads(text)
        except ValueError:
            raise field_error("$.dataset_ids", "must be ids, comma-separated or as a JSON array") from None
        return [str(v) for v in values] if isinstance(values, list) else [text]
    return [i.strip() for i in text.split(",") if i.strip()]


@attrs.frozen
class ContentQuery:
    version: int | None = None


@routes.post("/api/projects/{pid}/documents")
@doc("Upload a document (multipart field `file`), streamed into storage; or, as JSON, name a finished "
     "resumable upload; dataset_ids: the datasets it cites", body=UploadForm, request_content_type="multipart/form-data",
     other_bodies={"application/json": FromUpload}, query=CitationQuery, response=Document, status=201)  # fmt: skip
async def upload_document(request: web.Request) -> web.Response:
    actor = await require_user(request)
    service = request.app[DOCUMENTS]
    body = await _body(request, service.max_bytes)
    if "upload_id" in body:
        document = await service.upload_from(actor, request.match_info["pid"], **body)
    else:
        document = await service.upload(actor, request.match_info["pid"], **body)
    return json_response(document, status=201)


@routes.get("/api/projects/{pid}/documents")
@doc(
    "The project's documents, newest first; q= matches the name",
    query=DocumentListQuery,
    response=Page[Document],
)
async def list_documents(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, DocumentListQuery)
    page = await request.app[DOCUMENTS].list_documents(
        actor, request.match_info["pid"], q=query.q, limit=query.limit, cursor=query.cursor
    )
    return json_response(page)


@routes.get("/api/documents/{id}")
@doc("One document (its current version)", response=Document)
async def get_document(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[DOCUMENTS].get(actor, request.match_info["id"]))


@routes.delete("/api/documents/{id}")
@doc("Delete a document with all its versions (uploader, leads, heads)", status=204)
async def delete_document(request: web.Request) -> web.Response:
    actor = await require_user(request)
    await request.app[DOCUMENTS].delete(actor, request.match_info["id"])
    return web.Response(status=204)


@routes.get("/api/documents/{id}/content")
@doc("The document's bytes (version= for an old one), as an attachment, in its media type as uploaded (or "
     "octet-stream for active content); Range gives 206", query=ContentQuery, response=bytes,
     response_content_type="*/*", also={206: "the byte range a Range header asked for", 304: "unchanged since If-None-Match"})  # fmt: skip
async def document_content(request: web.Request) -> web.StreamResponse:
    actor = await require_user(request)
    query = parse_query(request, ContentQuery)
    service = request.app[DOCUMENTS]
    content = await service.content(actor, request.match_info["id"], query.version)
    return await stream_content(request, content, service.open)


@routes.post("/api/documents/{id}/versions")
@doc("Upload a new version of a document (multipart field `file`, or JSON naming a finished resumable upload)",
     body=UploadForm, request_content_type="multipart/form-data", other_bodies={"application/json": FromUpload},
     query=CitationQuery, response=Document, status=201)  # fmt: skip
async def add_version(request: web.Request) -> web.Response:
    actor = await require_user(request)
    service = request.app[DOCUMENTS]
    body = await _body(request, service.max_bytes)
    if "upload_id" in body:
        document = await service.add_version_from(actor, request.match_info["id"], **body)
    else:
        document = await service.add_version(actor, request.match_info["id"], **body)
    return json_response(document, status=201)


@routes.get("/api/documents/{id}/versions")
@doc("Every version of a document, newest first", response=Page[DocumentVersion])
async def list_versions(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[DOCUMENTS].versions(actor, request.match_info["id"]))
