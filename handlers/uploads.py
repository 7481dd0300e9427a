"""Reading uploads from multipart bodies as streams: a file's bytes are never held whole."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator

import attrs
from aiohttp import BodyPartReader, web
from aiohttp.hdrs import CONTENT_TYPE

from domain.errors import TooLarge, field_error

READ_CHUNK = 1024 * 1024
MULTIPART_SLACK = 1024 * 1024  # boundaries and headers around the file itself


@attrs.frozen
class UploadedFile:
    name: str | None
    content_type: str | None
    chunks: AsyncIterator[bytes]


@attrs.frozen
class UploadForm:
    """multipart/form-data with the file in a field named `file`."""

    file: bytes


async def read_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(READ_CHUNK):
        yield chunk


def file_name(raw: str) -> str:
    # browsers escape quotes and newlines as %22/%0A (HTML spec), aiohttp and others escape more
    return urllib.parse.unquote(raw) if "%" in raw else raw


def check_multipart(request: web.Request, max_bytes: int) -> None:
    if request.content_type != "multipart/form-data":
        raise web.HTTPUnsupportedMediaType(
            text="send the file as multipart/form-data with the file in a field named 'file'"
        )
    if request.content_length is not None and request.content_length > max_bytes + MULTIPART_SLACK:
        raise TooLarge(f"file is larger than the upload limit of {max_bytes} bytes", code="upload_too_large")


async def single_file(request: web.Request, *, max_bytes: int, field: str = "file") -> UploadedFile:
    """The first part named `field` that carries a file; other parts before it are skipped."""
    check_multipart(request, max_bytes)
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if isinstance(part, BodyPartReader) and part.name == field and part.filename is not None:
                return UploadedFile(
                    file_name(part.filename), part.headers.get(CONTENT_TYPE), read_chunks(part)
                )
            await part.release()
    except (ValueError, AssertionError, RuntimeError) as exc:
        raise web.HTTPBadRequest(
            reason="Malformed multipart body", text=f"the multipart body cannot be read: {exc}"
        ) from None
    raise field_error(f"$.{field}", f"a multipart field named '{field}' holding a file is required")
