"""/api/uploads: the tus 1.0.0 resumable upload protocol (https://tus.io/protocols/resumable-upload).

Core, creation, creation-with-upload, termination, expiration and checksum. OPTIONS (discovery)
is answered by a middleware, so that aiohttp-cors can still answer browsers' preflight requests on
the same path; HEAD is the GET route's, as aiohttp adds it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC
from email.utils import format_datetime

import attrs
from aiohttp import web
from aiohttp.web_exceptions import HTTPException

from domain.core.errors import BadRequest, PreconditionFailed, UnsupportedMediaType
from domain.uploads.models import (
    CHECKSUM_ALGORITHMS,
    TUS_EXTENSIONS,
    TUS_VERSION,
    Upload,
    UploadStatus,
    format_metadata,
    parse_checksum,
    parse_metadata,
    parse_offset,
)
from handlers.calendar import public_base
from handlers.codec import json_response
from handlers.identity import require_user
from handlers.keys import UPLOADS
from handlers.multipart import reading_body
from handlers.openapi import doc

routes = web.RouteTableDef()

PREFIX = "/api/uploads"
OFFSET_TYPE = "application/offset+octet-stream"
READ_CHUNK = 1024 * 1024
# what a browser's tus client must be able to read from a cross-origin answer
EXPOSED_HEADERS = ("Location", "Upload-Offset", "Upload-Length", "Upload-Metadata", "Upload-Expires",
                   "Tus-Resumable", "Tus-Version", "Tus-Extension", "Tus-Max-Size", "Tus-Checksum-Algorithm")  # fmt: skip


@attrs.frozen
class UploadView:
    """An upload as its owner sees it (GET; HEAD carries the same in tus headers)."""

    id: str
    length: int
    offset: int
    status: UploadStatus
    metadata: dict[str, str]
    created_at: str
    expires_at: str
    sha256: str | None


def _http_date(upload: Upload) -> str:
    return format_datetime(upload.expires_at.astimezone(UTC), usegmt=True)


def _state_headers(upload: Upload) -> dict[str, str]:
    return {
        "Upload-Offset": str(upload.offset),
        "Upload-Expires": _http_date(upload),
        "Cache-Control": "no-store",
    }


def _check_version(request: web.Request) -> None:
    if request.headers.get("Tus-Resumable") != TUS_VERSION:
        raise PreconditionFailed(f"send Tus-Resumable: {TUS_VERSION} (the only version this server speaks)",
                                 code="tus_version")  # fmt: skip


async def _body(request: web.Request) -> AsyncIterator[bytes]:
    """The request body in chunks. A body cut short raises aiohttp's own payload error, which the
    problem middleware answers as a 400 (HttpProcessingError), or a lost connection (a 400 too);
    the parts not committed are deleted."""
    with reading_body():
        async for chunk in request.content.iter_chunked(READ_CHUNK):
            yield chunk


def _has_body(request: web.Request) -> bool:
    return (
        request.content_length not in (None, 0)
        or request.headers.get("Transfer-Encoding", "").lower() == "chunked"
    )


def _content_type_ok(request: web.Request) -> None:
    if request.headers.get("Content-Type", "").split(";")[0].strip().lower() != OFFSET_TYPE:
        raise UnsupportedMediaType(
            f"upload bytes with Content-Type: {OFFSET_TYPE}", code="unsupported_media_type"
        )


@routes.post(PREFIX)
@doc("Start a resumable upload (tus 1.0.0 creation; creation-with-upload: the first bytes may come in "
     "this request's body). Headers: Tus-Resumable: 1.0.0, Upload-Length, Upload-Metadata (filename, "
     "content_type as base64). Answers Location (the upload's URL), Upload-Offset, Upload-Expires. "
     "OPTIONS on this path lists Tus-Version, Tus-Extension, Tus-Max-Size and Tus-Checksum-Algorithm",
     request_content_type=OFFSET_TYPE, body=bytes, status=201,
     also={412: "Tus-Resumable is missing or not 1.0.0", 413: "Upload-Length is over Tus-Max-Size"})  # fmt: skip
async def create_upload(request: web.Request) -> web.Response:
    actor = await require_user(request)  # first: a token that may not write is told so before anything else
    _check_version(request)
    if "Upload-Defer-Length" in request.headers:
        raise BadRequest(
            "Upload-Defer-Length is not supported; send Upload-Length", code="defer_length_unsupported"
        )
    length = parse_offset(request.headers.get("Upload-Length"), "Upload-Length")
    metadata = parse_metadata(request.headers.get("Upload-Metadata"))
    service = request.app[UPLOADS]
    upload = await service.create(actor, length=length, metadata=metadata)
    if _has_body(request):
        _content_type_ok(request)
        checksum = parse_checksum(request.headers.get("Upload-Checksum"))
        upload = await service.append(actor, upload.id, 0, _body(request), checksum)
    location = f"{public_base(request)}{PREFIX}/{upload.id}"
    return web.Response(status=201, headers={"Location": location, **_state_headers(upload)})


@routes.get(PREFIX + "/{id}")
@doc("An upload's state. HEAD (tus) answers Upload-Offset (the bytes stored for good), Upload-Length, "
     "Upload-Metadata and Upload-Expires; GET the same as JSON, with the file's sha256 once complete",
     response=UploadView, also={410: "the upload expired"})  # fmt: skip
async def upload_state(request: web.Request) -> web.Response:
    actor = await require_user(request)
    if request.method == "HEAD":
        _check_version(request)
    upload = await request.app[UPLOADS].get(actor, request.match_info["id"])
    headers = {**_state_headers(upload), "Upload-Length": str(upload.length)}
    if upload.metadata:
        headers["Upload-Metadata"] = format_metadata(upload.metadata)
    if request.method == "HEAD":
        return web.Response(status=200, headers=headers)
    view = UploadView(
        id=upload.id, length=upload.length, offset=upload.offset, status=upload.status, metadata=upload.metadata,
        created_at=upload.created_at.isoformat(), expires_at=upload.expires_at.isoformat(), sha256=upload.sha256,
    )  # fmt: skip
    return json_response(view, headers=headers)


@routes.patch(PREFIX + "/{id}")
@doc("Send the next bytes of an upload (tus core): Content-Type application/offset+octet-stream, "
     "Upload-Offset = the offset HEAD reported, optionally Upload-Checksum (sha256, sha1 or md5, base64; "
     "a mismatch answers 460 and keeps none of the body). Answers 204 with the new Upload-Offset",
     request_content_type=OFFSET_TYPE, body=bytes, status=204,
     also={409: "Upload-Offset is not where the upload is", 415: "wrong Content-Type",
           460: "the body does not match Upload-Checksum"})  # fmt: skip
async def append_upload(request: web.Request) -> web.Response:
    actor = await require_user(request)  # first: a token that may not write is told so before anything else
    _check_version(request)
    _content_type_ok(request)
    offset = parse_offset(request.headers.get("Upload-Offset"), "Upload-Offset")
    checksum = parse_checksum(request.headers.get("Upload-Checksum"))
    upload = await request.app[UPLOADS].append(
        actor, request.match_info["id"], offset, _body(request), checksum
    )
    return web.Response(status=204, headers=_state_headers(upload))


@routes.delete(PREFIX + "/{id}")
@doc("Stop an upload and remove what it stored (tus termination)", status=204)
async def terminate_upload(request: web.Request) -> web.Response:
    actor = await require_user(request)  # first: a token that may not write is told so before anything else
    _check_version(request)
    await request.app[UPLOADS].terminate(actor, request.match_info["id"])
    return web.Response(status=204)


def discovery_headers(max_size: int) -> dict[str, str]:
    return {
        "Tus-Resumable": TUS_VERSION, "Tus-Version": TUS_VERSION, "Tus-Extension": ",".join(TUS_EXTENSIONS),
        "Tus-Max-Size": str(max_size), "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }  # fmt: skip


@web.middleware
async def tus_middleware(request: web.Request, handler: web.RequestHandler) -> web.StreamResponse:
    """OPTIONS on the uploads (tus discovery; a browser's CORS preflight goes on to aiohttp-cors), and
    Tus-Resumable on every answer under /api/uploads, errors included."""
    if not request.path.startswith(PREFIX):
        return await handler(request)
    if request.method == "OPTIONS" and "Access-Control-Request-Method" not in request.headers:
        return web.Response(status=204, headers=discovery_headers(request.app[UPLOADS].max_size))
    try:
        response = await handler(request)
    except HTTPException as exc:
        exc.headers["Tus-Resumable"] = TUS_VERSION
        raise
    response.headers["Tus-Resumable"] = TUS_VERSION
    if response.status == 412:
        response.headers["Tus-Version"] = TUS_VERSION
    return response
