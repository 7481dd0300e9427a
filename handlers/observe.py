"""Request ids, JSON log lines, the access log and the headers every response carries."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import sys
import threading
import time
import traceback
import typing
from datetime import UTC, datetime

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from domain.core.metrics import UNMATCHED_ROUTE
from handlers.keys import METRICS, REQUEST_ID, USER_ID

access_log = logging.getLogger("labhub.access")
# every secret LabHub hands out starts lh?_ (calendar links lhc_, tokens lhp_, reset links lhr_)
_SECRET_IN_PATH = re.compile(r"\b(lh[a-z]_)[A-Za-z0-9_-]+")


def loggable_path(request: web.Request) -> str:
    """The request's path as a log line may hold it: never a secret (a calendar link's is its path)."""
    path = request.path
    secret = request.match_info.get("secret")
    if secret:
        path = path.replace(secret, "***")
    # most paths hold no "lh": the pattern is looked for only where it may be
    return _SECRET_IN_PATH.sub(r"\1***", path) if "lh" in path else path


# request ids: this process's 80 random bits and a counter (32 hex digits, like a UUID's), not a
# getrandom() system call per request
_REQUEST_ID_PREFIX = os.urandom(10).hex()
_request_numbers = itertools.count()
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STANDARD_RECORD_KEYS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class AccessRecord(logging.LogRecord):
    """The access line's record, made directly: a LogRecord gathers a dozen things per call (caller,
    thread, process...) that an access line never shows, once per request. Handlers and formatters
    see an ordinary record: the standard attributes are there (copied at once from a template, as
    %-style formats read the record's __dict__), with the access fields beside them."""

    _TEMPLATE = vars(logging.makeLogRecord({"name": "labhub.access", "msg": "request", "levelno": logging.INFO,
                                             "levelname": "INFO", "pathname": __file__, "filename": "observe.py",
                                             "module": "observe", "funcName": "request_context_middleware",
                                             "thread": None, "threadName": None, "process": None,
                                             "processName": None}))  # fmt: skip

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        duration_ms: float,
        user_id: str | None,
        request_id: str,
        remote: str | None,
    ) -> None:  # no super().__init__(): its cost is what this class avoids
        fields = self.__dict__
        fields.update(self._TEMPLATE)
        fields["created"] = created = time.time()
        fields["msecs"] = (created % 1) * 1000
        fields["relativeCreated"] = (created - logging._startTime) * 1000  # type: ignore[attr-defined]
        self.method, self.path, self.status, self.duration_ms = method, path, status, duration_ms
        self.user_id, self.request_id, self.remote = user_id, request_id, remote


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any `extra` fields. It runs once
    per request (the access line), so it is kept lean: orjson, and the time's seconds formatted once."""

    _second = -1
    _second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_RECORD_KEYS and key[0] != "_":
                entry[key] = value  # for an AccessRecord: only its access fields
        if record.exc_info:
            entry["exception"] = "".join(traceback.format_exception(*record.exc_info)).strip()
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()

    def _time(self, created: float) -> str:
        """ISO 8601 in UTC with milliseconds: 2026-12-01T09:24:42.260+00:00."""
        second = int(created)
        if second != self._second:
            self._second_text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = second
        return f"{self._second_text}.{int((created - second) * 1000):03d}+00:00"


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


class LoopBatchedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes the lines logged during one turn of the event loop in one write
    (under load, a turn answers many requests, each with an access line: one system call instead of
    one per request). Lines logged outside the loop's thread are written at once, with whatever is
    pending before them, so the order holds. A crash loses at most the lines of the current turn;
    logging.shutdown() at exit flushes."""

    def __init__(self, stream: typing.TextIO) -> None:
        super().__init__(stream)
        self._pending: list[str] = []
        self._loop: tuple[int, asyncio.AbstractEventLoop] | None = None

    def emit(self, record: logging.LogRecord) -> None:  # called with self.lock held
        try:
            self._pending.append(self.format(record))
        except Exception:  # noqa: BLE001 - logging's own contract: report, never raise
            self.handleError(record)
            return
        loop = self._running_loop()
        if loop is None:
            self.flush()
        elif len(self._pending) == 1:
            loop.call_soon(self.flush)

    def _running_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop running in this thread. On Python 3.11 asyncio.get_running_loop() makes a getpid()
        system call each time, which on a virtual machine costs more than the rest of the line: the
        loop is remembered, and asked for again only when it is no longer the one running here."""
        thread = threading.get_ident()
        if self._loop is not None and self._loop[0] == thread and self._loop[1].is_running():
            return self._loop[1]
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        self._loop = (thread, loop)
        return loop

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if not self._pending:
                return
            lines, self._pending = self._pending, []
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except Exception:  # noqa: BLE001 - a closed or full stderr must not take a request down
                self.handleError(logging.makeLogRecord({"msg": lines[0]}))


def configure_logging(level: str) -> None:
    # the JSON line never shows a record's thread, process or source line: not gathering them makes
    # each record (one per request) cheaper (the logging HOWTO's "Optimization")
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]  # no stack walk for the caller's file and line
    handler = LoopBatchedStreamHandler(sys.stderr)
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
    request[REQUEST_ID] = (
        incoming
        if _SANE_REQUEST_ID.match(incoming)
        else f"{_REQUEST_ID_PREFIX}{next(_request_numbers) & 0xFFFFFFFFFFFF:012x}"
    )
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
        elapsed = time.perf_counter() - started
        resource = request.match_info.route.resource
        request.app[METRICS].http(
            request.method, resource.canonical if resource is not None else UNMATCHED_ROUTE, status, elapsed
        )
        if access_log.isEnabledFor(logging.INFO):
            access_log.handle(
                AccessRecord(
                    request.method,
                    loggable_path(request),  # never the query string: it may carry an SSE ticket
                    status,
                    round(elapsed * 1000, 2),
                    request.get(USER_ID),
                    request[REQUEST_ID],
                    request.remote,
                )
            )


async def add_standard_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: also reaches streamed and SSE responses."""
    request_id = request.get(REQUEST_ID)
    if request_id:
        response.headers["X-Request-ID"] = request_id
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


def _awaiting(coro: object) -> list[str]:
    """Where a task is: its chain of awaits, down to what it waits for."""
    where = []
    while coro is not None:
        frame = (
            getattr(coro, "cr_frame", None)
            or getattr(coro, "gi_frame", None)
            or getattr(coro, "ag_frame", None)
        )
        if frame is not None:
            where.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        nxt = (
            getattr(coro, "cr_await", None)
            or getattr(coro, "gi_yieldfrom", None)
            or getattr(coro, "ag_await", None)
        )
        if nxt is None and coro is not None and not hasattr(coro, "cr_frame"):
            where.append(repr(coro)[:300])  # a future: what the chain ends in
        coro = nxt
    return where


def dump_state() -> None:
    """On SIGUSR1 (`kill -USR1 <pid>`): what every task awaits and every thread runs, in the log."""
    log = logging.getLogger("labhub.state")
    for task in asyncio.all_tasks():
        log.warning("task", extra={"task": task.get_name(), "awaiting": _awaiting(task.get_coro())})
    frames = sys._current_frames()
    for thread in threading.enumerate():
        frame = frames.get(thread.ident or 0)
        stack = traceback.format_stack(frame)[-8:] if frame is not None else []
        log.warning("thread", extra={"thread_name": thread.name, "stack": [line.strip() for line in stack]})
