"""Streaming downloads: Range (206/416), RFC 6266 Content-Disposition, safe content types."""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from aiohttp import web

from domain.core.content import Content, served_content_type
from domain.infra.objects import ObjectReader

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

CHUNK_BYTES = 1024 * 1024
Opener = Callable[[Content, tuple[int, int] | None], AbstractAsyncContextManager[ObjectReader]]


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """An inclusive byte range from a single-range header; None serves the whole body.

    Several ranges, or a header we do not understand, are ignored (RFC 9110 allows that);
    a range that starts past the end is 416.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> web.HTTPRequestRangeNotSatisfiable:
    return web.HTTPRequestRangeNotSatisfiable(
        headers={"Content-Range": f"bytes */{size}"}, text=f"the requested range is outside the {size} bytes"
    )


def content_disposition(name: str, *, inline: bool = False) -> str:
    """attachment (or inline) with an ASCII fallback and the exact name in filename* (RFC 6266 / 8187)."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name) or "download"
    encoded = urllib.parse.quote(name, safe="")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


async def stream_content(
    request: web.Request,
    content: Content,
    opener: Opener,
    *,
    inline: bool = False,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Stream stored bytes. Downloads are attachments with safe types; `inline` is for images LabHub
    made itself (plots), which are shown in the page, sandboxed by the CSP in `headers`."""
    etag = f'"{content.sha256}"'
    headers = {
        "Content-Type": content.content_type if inline else served_content_type(content.content_type),
        "Content-Disposition": content_disposition(content.name, inline=inline),
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Cache-Control": "private, no-cache",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        **(headers or {}),
    }
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers={k: v for k, v in headers.items() if k != "Content-Type"})
    byte_range = parse_range(request.headers.get("Range"), content.size)
    if byte_range is not None and request.headers.get("If-Range", etag) != etag:
        byte_range = None  # the client's copy is of another version: send it all
    response = web.StreamResponse(status=206 if byte_range else 200, headers=headers)
    if byte_range:
        response.headers["Content-Range"] = f"bytes {byte_range[0]}-{byte_range[1]}/{content.size}"
        response.content_length = byte_range[1] - byte_range[0] + 1
    else:
        response.content_length = content.size
    if request.method == "HEAD" or response.content_length == 0:
        await response.prepare(request)
        await response.write_eof()
        return response
    async with opener(content, byte_range) as reader:
        await response.prepare(request)
        async for chunk in reader.chunks():
            await response.write(chunk)
    await response.write_eof()
    return response


async def stream_file(request: web.Request, path: Path, name: str, media_type: str) -> web.StreamResponse:
    """A temporary local file as an attachment, streamed, removed once sent (or not)."""
    try:
        response = web.StreamResponse(headers={
            "Content-Type": media_type, "Content-Disposition": content_disposition(name),
            "Content-Length": str(path.stat().st_size),
        })  # fmt: skip
        await response.prepare(request)
        with path.open("rb") as handle:
            while chunk := await asyncio.to_thread(handle.read, CHUNK_BYTES):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        path.unlink(missing_ok=True)
