"""Reading uploads from multipart bodies as streams: a file's bytes are never held whole."""

from __future__ import annotations

import contextlib
import urllib.parse
from collections.abc import AsyncIterator, Iterator

import attrs
from aiohttp import BodyPartReader, web
from aiohttp.hdrs import CONTENT_TYPE

from domain.core.errors import BadRequest, InvalidInput, TooLarge, field_error

TEXT_FIELD_BYTES = 64 * 1024  # a text field sent beside a file (single_file)

READ_CHUNK = 1024 * 1024
MULTIPART_SLACK = 1024 * 1024  # boundaries and headers around the file itself


@attrs.frozen
class UploadedFile:
    name: str | None
    content_type: str | None
    chunks: AsyncIterator[bytes]
    fields: dict[str, str] = attrs.field(factory=dict)  # the text fields asked for, sent before the file


@attrs.frozen
class UploadForm:
    """multipart/form-data with the file in a field named `file`; dataset_ids (comma-separated, before
    the file): the datasets a document cites."""

    file: bytes
    dataset_ids: str | None = None


# what aiohttp's multipart reader raises for a body it cannot read (bad boundaries, lengths,
# encodings); bad header bytes raise aiohttp's HttpProcessingError, which the problem middleware maps
_MALFORMED = (ValueError, AssertionError, RuntimeError)


@contextlib.contextmanager
def reading_body() -> Iterator[None]:
    """A client that goes away mid-body is a client's fault answered to no one: a 400 for the access
    log, not aiohttp's 'Error handling request' traceback."""
    try:
        yield
    except ConnectionResetError:
        raise BadRequest(
            "the connection was lost before the whole body arrived", code="connection_lost"
        ) from None


@contextlib.contextmanager
def _reading_multipart() -> Iterator[None]:
    try:
        with reading_body():
            yield
    except _MALFORMED as exc:
        raise BadRequest(f"the multipart body cannot be read: {exc}", code="malformed_multipart") from None


async def multipart_parts(request: web.Request) -> AsyncIterator[BodyPartReader]:
    """The parts of a multipart body in order; wherever the body turns out malformed, a 400."""
    with _reading_multipart():
        reader = await request.multipart()
    while True:
        with _reading_multipart():
            part = await reader.next()
        if part is None:
            return
        if not isinstance(part, BodyPartReader):
            raise InvalidInput("nested multipart bodies are not accepted")
        yield part


async def read_chunks(part: BodyPartReader, size: int = READ_CHUNK) -> AsyncIterator[bytes]:
    """A part's bytes up to its boundary; a body that ends before the boundary is malformed (a 400),
    not a shorter file (aiohttp hands out empty chunks at the end of the body until asked thrice)."""
    while not part.at_eof():
        with _reading_multipart():
            chunk = await part.read_chunk(size)
        if chunk:
            yield chunk


async def _then_the_rest(
    chunks: AsyncIterator[bytes], parts: AsyncIterator[BodyPartReader]
) -> AsyncIterator[bytes]:
    """A file's bytes, then the rest of the body read (and dropped) up to its closing boundary, so
    that a body cut short fails before the upload is kept."""
    async for chunk in chunks:
        yield chunk
    async for part in parts:
        with _reading_multipart():
            await part.release()


def file_name(raw: str) -> str:
    # browsers escape quotes and newlines as %22/%0A (HTML spec), aiohttp and others escape more
    return urllib.parse.unquote(raw) if "%" in raw else raw


def check_multipart(request: web.Request, max_bytes: int) -> None:
    if request.content_type != "multipart/form-data":
        raise web.HTTPUnsupportedMediaType(
            text="send the file as multipart/form-data, or as JSON name a finished resumable upload (/api/uploads)"
        )
    if request.content_length is not None and request.content_length > max_bytes + MULTIPART_SLACK:
        raise TooLarge(f"file is larger than the upload limit of {max_bytes} bytes", code="upload_too_large")


async def single_file(
    request: web.Request, *, max_bytes: int, field: str = "file", text_fields: tuple[str, ...] = ()
) -> UploadedFile:
    """The first part named `field` that carries a file; of the other parts before it, the text of
    those named in text_fields is kept (at most 64 KiB each), the rest skipped."""
    check_multipart(request, max_bytes)
    parts = multipart_parts(request)
    kept: dict[str, str] = {}
    async for part in parts:
        if part.name == field and part.filename is not None:
            chunks = _then_the_rest(read_chunks(part), parts)
            return UploadedFile(file_name(part.filename), part.headers.get(CONTENT_TYPE), chunks, kept)
        if part.name in text_fields and part.filename is None:
            raw = b""
            async for chunk in read_chunks(part):
                raw += chunk
                if len(raw) > TEXT_FIELD_BYTES:
                    raise field_error(f"$.{part.name}", f"must be at most {TEXT_FIELD_BYTES} bytes")
            kept[part.name] = raw.decode("utf-8", errors="replace")
            continue
        with _reading_multipart():
            await part.release()
    raise field_error(f"$.{field}", f"a multipart field named '{field}' holding a file is required")
