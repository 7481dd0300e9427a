"""The console (docs/architecture.md, "Packages"): the static files under web/, served by this process.

Assets are served under /assets/<version>/, where the version is a hash of every file in web/, so
they can be cached for a year; the index page (also the answer to any client-side route, e.g.
/projects/abc) is revalidated on every load, and names the current version. The API, /health,
/ready and /metrics keep their own 404s. Every console response carries a strict CSP.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path

import attrs
from aiohttp import web
from aiohttp.typedefs import Handler

from handlers.openapi import not_api

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"
ASSETS_PREFIX = "/assets/"
_NOT_CONSOLE = ("/api/", "/health", "/ready", "/metrics", "/d/", ASSETS_PREFIX)
_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".json": "application/json",
    ".txt": "text/plain",
    ".md": "text/plain",
}

CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'"
)
CONSOLE_HEADERS = {
    "Content-Security-Policy": CONSOLE_CSP,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_IMMUTABLE = "public, max-age=31536000, immutable"


@attrs.frozen
class Console:
    root: Path
    version: str
    index_html: bytes

    @classmethod
    def load(cls, root: Path = WEB_ROOT) -> Console:
        digest = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
        version = digest.hexdigest()[:16]
        index = (root / "index.html").read_text(encoding="utf-8")
        index = index.replace("%ASSETS%", f"{ASSETS_PREFIX}{version}")
        return cls(root=root, version=version, index_html=index.encode())

    def asset(self, version: str, relative: str) -> Path | None:
        if version != self.version:
            return None
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root) or not path.is_file() or path.name == "index.html":
            return None
        return path


CONSOLE = web.AppKey("console", Console)


def index_response(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    etag = f'"{console.version}"'
    headers = {**CONSOLE_HEADERS, "Cache-Control": "no-cache", "ETag": etag}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=console.index_html, content_type="text/html", charset="utf-8", headers=headers)


@not_api
async def asset(request: web.Request) -> web.StreamResponse:
    path = request.app[CONSOLE].asset(request.match_info["version"], request.match_info["path"])
    if path is None:
        raise web.HTTPNotFound()
    content_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return web.FileResponse(
        path, headers={**CONSOLE_HEADERS, "Cache-Control": _IMMUTABLE, "Content-Type": content_type}
    )


@web.middleware
async def console_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A GET for a path no route knows, outside the API, is a client-side route: the index page."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        if (
            request.method in {"GET", "HEAD"}
            and request.match_info.http_exception is not None
            and not request.path.startswith(_NOT_CONSOLE)
            and request.path != "/api"
        ):
            return index_response(request)
        raise


def setup_console(app: web.Application, root: Path = WEB_ROOT) -> None:
    app[CONSOLE] = Console.load(root)
    app.router.add_get(ASSETS_PREFIX + "{version}/{path:.+}", asset)
