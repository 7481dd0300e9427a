"""One middleware turns every error into an RFC 9457 application/problem+json body."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from domain.core.errors import DomainError, TooManyRequests, Unauthenticated, Unavailable
from domain.infra.availability import unavailable_service
from handlers.keys import REQUEST_ID, SETTINGS
from handlers.observe import loggable_path

log = logging.getLogger("labhub.errors")

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:labhub:problem:"

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    411: "length_required",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "validation_error",
    429: "too_many_requests",
}


def problem_response(
    request: web.Request,
    *,
    status: int,
    code: str,
    detail: str,
    title: str | None = None,
    errors: Sequence[Mapping[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> web.Response:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + code,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.path,
        "code": code,
        "request_id": request.get(REQUEST_ID, ""),
    }
    if errors:
        body["errors"] = list(errors)
    if extra:
        body.update(extra)
    return web.Response(
        text=json.dumps(body, ensure_ascii=False),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


_KEPT_HEADERS = ("Content-Range", "Retry-After", "WWW-Authenticate")
SERVICE_NAMES = {"mongo": "the database (MongoDB)", "redis": "Redis", "s3": "the object store (S3)"}
RETRY_AFTER_S = 5


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    headers = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    elif isinstance(exc, web.HTTPNotFound) and request.match_info.http_exception is not None:
        detail = f"no route matches {request.method} {request.path}"
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.app[SETTINGS].http.max_body_bytes
        detail = f"request body is larger than the limit of {limit} bytes"
    else:
        detail = exc.text if exc.text and exc.text != f"{exc.status}: {exc.reason}" else exc.reason
    return problem_response(
        request,
        status=exc.status,
        code=_HTTP_CODES.get(exc.status, "http_error"),
        title=exc.reason,
        detail=detail,
        headers=headers,
    )


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        headers: dict[str, str] = {}
        if isinstance(exc, TooManyRequests):
            headers["Retry-After"] = str(exc.retry_after_s)
        if isinstance(exc, Unauthenticated):
            headers["WWW-Authenticate"] = 'Bearer realm="labhub"'
        if isinstance(exc, Unavailable):
            headers["Retry-After"] = str(RETRY_AFTER_S)
        if exc.status >= 500:
            log.exception("domain error", extra={"code": exc.code, "detail": exc.detail})
        return problem_response(
            request,
            status=exc.status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            errors=exc.errors,
            headers=headers,
            extra=exc.extra,
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(request, exc)
    except HttpProcessingError as exc:
        # aiohttp's own verdict on a request it could not read while the handler read it (header bytes
        # it refuses, broken chunked encoding, a body part's headers): the client's fault, never a 500
        status = exc.code if 400 <= exc.code < 500 else 400
        return problem_response(
            request,
            status=status,
            code=_HTTP_CODES.get(status, "bad_request"),
            detail=f"the request cannot be read: {(exc.message or type(exc).__name__)[:300]}",
        )
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception as exc:
        if service := unavailable_service(exc):
            # a backing service is restarting or unreachable: the client may try again, nothing is wrong here
            log.warning(
                "service unavailable",
                extra={"service": service, "path": loggable_path(request), "error": repr(exc)[:300]},
            )
            return problem_response(
                request,
                status=503,
                code="unavailable",
                detail=f"{SERVICE_NAMES[service]} cannot be reached right now; try again in a few seconds",
                headers={"Retry-After": str(RETRY_AFTER_S)},
                extra={"service": service},
            )
        log.exception("unhandled error", extra={"path": loggable_path(request), "method": request.method})
        return problem_response(
            request,
            status=500,
            code="internal_error",
            title="Internal error",
            detail="an unexpected error occurred; it was logged with this request's id",
        )
