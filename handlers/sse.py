"""Server-sent events (docs/architecture.md, "The event path"): snapshot, replay after Last-Event-ID, then the shared live tail."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import attrs
from aiohttp import HttpVersion11, web
from aiohttp_sse import EventSourceResponse
from prometheus_client import Counter

from domain.infra.events import Entry, EventHub, StreamFilter, valid_stream_id
from domain.jobs.models import FINAL_STATUSES
from handlers.keys import EVENT_HUB, EVENT_LOG, METRICS, QUOTAS, SETTINGS, USER_ID


class WireFrame:
    """One encoded SSE frame, as the hub hands it to every watcher of a stream.

    The hub writes straight to sockets, past aiohttp's writer, so it must frame its bytes exactly as
    aiohttp framed that response: one HTTP/1.1 chunk when the headers said `Transfer-Encoding:
    chunked`, the bare frame when they did not (an HTTP/1.0 client reads until the connection
    closes). `on_wire` is the only place that decides; the chunk is built once, on first use.
    """

    __slots__ = ("_chunk", "payload")

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self._chunk: bytes | None = None

    def on_wire(self, chunked: bool) -> bytes:
        if not chunked:
            return self.payload
        if self._chunk is None:
            self._chunk = b"%x\r\n%s\r\n" % (len(self.payload), self.payload)
        return self._chunk


PING_FRAME = WireFrame(b": ping\n\n")


class HubPingedResponse(EventSourceResponse):
    """aiohttp-sse's response without its ping task per connection: the hub pings every client in
    one sweep (thousands of sleeping tasks would cost memory and wake-ups for nothing)."""

    async def _ping(self) -> None:
        return

    async def prepare(self, request: web.BaseRequest) -> Any:
        if request.version < HttpVersion11:
            # no chunked encoding before HTTP/1.1: the body ends when the connection closes, so
            # aiohttp-sse's "Connection: keep-alive" would be a promise aiohttp cannot keep
            self.headers["Connection"] = "close"
        writer = await super().prepare(request)
        self._ping_task = None  # the finished no-op task is not kept per connection either
        return writer

    @property
    def sent_chunked(self) -> bool:
        """How aiohttp framed this response's body: what every byte written past it must match."""
        return self.headers.get("Transfer-Encoding", "").lower() == "chunked"


@attrs.frozen
class StreamEvent:
    """One event of a LabHub event stream as an EventSource hands it over: `data` is JSON text."""

    event: str
    data: str
    id: str | None = None
    retry: int | None = None


def frame(event: str, data: Any, entry_id: str | None = None) -> bytes:
    head = f"id: {entry_id}\n" if entry_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


def is_terminal(event: str, data: dict[str, Any]) -> bool:
    return event == "status" and data.get("status") in FINAL_STATUSES


def encode_entry(entry: Entry) -> tuple[WireFrame, bool]:
    entry_id, event, data = entry
    return WireFrame(frame(event, data, entry_id)), is_terminal(event, data)


class SseConnection:
    """One client as the hub sees it: writes never wait; a client too far behind is dropped."""

    def __init__(
        self, request: web.Request, chunked: bool, last_id: str, max_buffer: int, delivered: Counter,
        accepts: StreamFilter | None = None,
    ) -> None:  # fmt: skip
        self.user_id = request.get(USER_ID)
        self.accepts = accepts
        self._transport = request.transport
        self._delivered = delivered
        self._chunked = chunked
        self._max_buffer = max_buffer
        self.last_id = last_id
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def _writable(self) -> bool:
        transport = self._transport
        if transport is None or transport.is_closing():
            self._end("disconnected")
            return False
        if transport.get_write_buffer_size() > self._max_buffer:
            transport.abort()  # it reconnects with Last-Event-ID and replays what it missed
            self._end("too slow")
            return False
        return True

    def deliver(self, entry_id: str, frame: WireFrame, terminal: bool) -> bool:
        if not self._write(frame):
            return False
        self._delivered.inc()
        self.last_id = entry_id
        if terminal:
            self._end("finished")
        return True

    def ping(self, frame: WireFrame) -> bool:
        return self._write(frame)

    def _write(self, frame: WireFrame) -> bool:
        if not self._writable():
            return False
        assert self._transport is not None
        self._transport.write(frame.on_wire(self._chunked))
        return True

    def close(self) -> None:
        self._end("closed")

    def _end(self, reason: str) -> None:
        if not self.done.done():
            self.done.set_result(reason)


def last_event_id(request: web.Request) -> str | None:
    return valid_stream_id(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))


@attrs.define
class StreamSource:
    """What an event stream starts from: the stream's name, the snapshot, whether it has ended."""

    stream: str
    snapshot: dict[str, Any] | None
    finished: bool
    accepts: StreamFilter | None = None  # which of the stream's events this watcher may see (None: all)


async def stream_events(request: web.Request, source: StreamSource) -> web.StreamResponse:
    """Snapshot (no id), stored events after Last-Event-ID, then live ones until a terminal event;
    one of the person's open streams while it lasts (429 past their limit).

    Callers pass the source straight in (`return await stream_events(request, await ...)`) so that
    nothing but this frame holds memory while thousands of clients listen.
    """
    with request.app[QUOTAS].stream(request.get(USER_ID)):
        return await _stream(request, source)


async def _stream(request: web.Request, source: StreamSource) -> web.StreamResponse:
    settings = request.app[SETTINGS].sse
    stream, snapshot, finished, accepts = source.stream, source.snapshot, source.finished, source.accepts
    source.snapshot = None
    after = last_event_id(request)
    replay = await request.app[EVENT_LOG].replay(stream, after)
    if finished and after is not None and not replay:
        return web.Response(status=204)  # nothing missed, nothing more will come
    if request.transport is None:
        # the client left while the stream was being looked up (aiohttp-sse asserts a transport):
        # nobody will read this answer; nginx's 499 says so in the access log
        return web.Response(status=499, reason="Client Closed Request")
    response = HubPingedResponse()
    await response.prepare(request)
    await response.send(json.dumps(snapshot, default=str), event="snapshot", retry=settings.retry_ms)
    last_sent = after or "0-0"
    # a retried job's stream still holds its earlier attempts, up to their terminal events: those are
    # history the snapshot has already told, and ending on one would leave the client blind to the
    # attempt running now
    attempt = snapshot.get("attempt") if isinstance(snapshot, dict) else None
    backlog = []
    for entry_id, event, data in replay:  # written in one go: a long history costs one write, not one each
        last_sent = entry_id
        if isinstance(attempt, int) and isinstance(data, dict) and data.get("attempt", attempt) < attempt:
            continue
        if accepts is not None and not accepts(event, data):
            continue
        backlog.append(frame(event, data, entry_id))
        if is_terminal(event, data):
            finished = True
            break
    metrics = request.app[METRICS]
    metrics.sse_delivered.inc(1 + len(backlog))
    if backlog:
        await response.write(b"".join(backlog))
    del replay, backlog, snapshot, source
    if not finished:
        # from here on this frame is all a client costs, besides aiohttp's own objects
        hub: EventHub = request.app[EVENT_HUB]
        connection = SseConnection(
            request, response.sent_chunked, last_sent, settings.max_buffer_bytes, metrics.sse_delivered, accepts
        )
        hub.subscribe(stream, connection)
        try:
            if await connection.done == "too slow":
                metrics.sse_dropped.inc()
        finally:
            hub.unsubscribe(stream, connection)
    if request.transport is not None and not request.transport.is_closing():
        await response.write_eof()
    return response
