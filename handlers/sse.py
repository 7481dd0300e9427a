"""Server-sent events (DESIGN §7): snapshot, replay after Last-Event-ID, then the shared live tail."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from aiohttp_sse import EventSourceResponse

from domain.jobs import FINAL_STATUSES
from domain.stores.events import Entry, EventHub, valid_stream_id
from handlers.keys import EVENT_HUB, EVENT_LOG, SETTINGS

# aiohttp-sse's own per-connection ping is replaced by the hub's single ping sweep over all clients
HUB_PINGS = 10**9
PING_FRAME = b": ping\n\n"


def frame(event: str, data: Any, entry_id: str | None = None) -> bytes:
    head = f"id: {entry_id}\n" if entry_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n".encode()


def chunked(payload: bytes) -> bytes:
    """One HTTP/1.1 chunk: event streams are chunked, and the hub writes chunks straight to sockets."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def is_terminal(event: str, data: dict[str, Any]) -> bool:
    return event == "status" and data.get("status") in FINAL_STATUSES


def encode_entry(entry: Entry) -> tuple[bytes, bool]:
    entry_id, event, data = entry
    return chunked(frame(event, data, entry_id)), is_terminal(event, data)


class SseConnection:
    """One client as the hub sees it: writes never wait; a client too far behind is dropped."""

    def __init__(self, request: web.Request, last_id: str, max_buffer: int) -> None:
        self._transport = request.transport
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

    def deliver(self, entry_id: str, payload: bytes, terminal: bool) -> bool:
        if not self._writable():
            return False
        assert self._transport is not None
        self._transport.write(payload)
        self.last_id = entry_id
        if terminal:
            self._end("finished")
        return True

    def ping(self, payload: bytes) -> bool:
        if not self._writable():
            return False
        assert self._transport is not None
        self._transport.write(payload)
        return True

    def close(self) -> None:
        self._end("server stopping")

    def _end(self, reason: str) -> None:
        if not self.done.done():
            self.done.set_result(reason)


def last_event_id(request: web.Request) -> str | None:
    return valid_stream_id(request.headers.get("Last-Event-ID") or request.query.get("last_event_id"))


async def stream_events(
    request: web.Request,
    *,
    stream: str,
    snapshot: dict[str, Any],
    after: str | None,
    finished: bool,
) -> web.StreamResponse:
    """Snapshot (no id), stored events after `after`, then live ones until a terminal event."""
    settings = request.app[SETTINGS].sse
    replay = await request.app[EVENT_LOG].replay(stream, after)
    if finished and after is not None and not replay:
        return web.Response(status=204)  # nothing missed, nothing more will come
    response = EventSourceResponse(headers={"Cache-Control": "no-store"}, ping_interval=HUB_PINGS)
    await response.prepare(request)
    await response.send(json.dumps(snapshot, default=str), event="snapshot", retry=settings.retry_ms)
    last_sent = after or "0-0"
    for entry_id, event, data in replay:
        await response.send(json.dumps(data, default=str), id=entry_id, event=event)
        last_sent = entry_id
        if is_terminal(event, data):
            finished = True
            break
    if not finished:
        await _follow(request, response, stream, last_sent, settings.max_buffer_bytes)
    response.stop_streaming()
    if request.transport is not None and not request.transport.is_closing():
        await response.write_eof()
    return response


async def _follow(
    request: web.Request, response: EventSourceResponse, stream: str, last_sent: str, max_buffer: int
) -> None:
    hub: EventHub = request.app[EVENT_HUB]
    connection = SseConnection(request, last_sent, max_buffer)
    hub.subscribe(stream, connection)
    try:
        await connection.done
    finally:
        hub.unsubscribe(stream, connection)
