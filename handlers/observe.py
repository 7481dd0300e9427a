"""Request ids, JSON log lines, the access log and the headers every response carries."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
import uuid
from datetime import UTC, datetime

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from handlers.keys import REQUEST_ID, USER_ID

access_log = logging.getLogger("labhub.access")

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STANDARD_RECORD_KEYS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_RECORD_KEYS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).strip()
        return json.dumps(entry, default=str, ensure_ascii=False)


class ClientFaultFilter(logging.Filter):
    """aiohttp logs a request it cannot parse at all (bad header bytes, a bad request line) as an
    ERROR with a traceback, though it already answered 400: the client's fault, logged as one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        fault = record.exc_info[1] if record.exc_info else None
        if isinstance(fault, HttpProcessingError) and 400 <= fault.code < 500:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg = f"unreadable request answered {fault.code}: {fault.message[:200]}"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ClientFaultFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access log is replaced by ours (no query strings, a user id, a request id)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


@web.middleware
async def request_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    incoming = request.headers.get("X-Request-ID", "")
    request[REQUEST_ID] = incoming if _SANE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:  # 2xx/3xx raised as exceptions; errors were turned into problems
        status = exc.status
        raise
    finally:
        access_log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,  # never the query string: it may carry an SSE ticket
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "user_id": request.get(USER_ID),
                "request_id": request[REQUEST_ID],
                "remote": request.remote,
            },
        )


async def add_standard_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: also reaches streamed and SSE responses."""
    request_id = request.get(REQUEST_ID)
    if request_id:
        response.headers["X-Request-ID"] = request_id
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
