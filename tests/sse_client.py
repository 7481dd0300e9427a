"""A small, strict reader of text/event-stream bodies for tests: one parser, fed by any client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import attrs


@attrs.frozen
class Event:
    event: str
    data: Any
    id: str | None = None
    retry: int | None = None


class SseParser:
    """Lines in, events out (the WHATWG event-stream rules LabHub uses); counts comment lines (pings)."""

    def __init__(self) -> None:
        self.comments = 0
        self._fields: dict[str, str] = {}

    def feed(self, line: str) -> Event | None:
        line = line.rstrip("\r\n")
        if line.startswith(":"):
            self.comments += 1
            return None
        if line == "":
            fields, self._fields = self._fields, {}
            if "data" not in fields:
                return None
            return Event(
                fields.get("event", "message"),
                json.loads(fields["data"]),
                fields.get("id"),
                int(fields["retry"]) if "retry" in fields else None,
            )
        name, _, value = line.partition(":")
        self._fields[name] = value[1:] if value.startswith(" ") else value
        return None

    def feed_text(self, text: str) -> list[Event]:
        """A whole body at once; it must end at a frame boundary."""
        events = [event for line in text.splitlines() if (event := self.feed(line)) is not None]
        assert not self._fields, f"the body ended inside an event: {self._fields!r}"
        return events


async def collect(
    lines: AsyncIterator[str],
    parser: SseParser,
    *,
    stop: Callable[[list[Event]], bool] = lambda _events: False,
    timeout_s: float = 20.0,
) -> tuple[list[Event], bool]:
    """Events until the stream ends (True) or stop(events) holds after an event or comment (False)."""
    events: list[Event] = []

    async def run() -> bool:
        async for line in lines:
            event = parser.feed(line)
            if event is not None:
                events.append(event)
            if (event is not None or line.startswith(":")) and stop(events):
                return False
        return True

    ended = await asyncio.wait_for(run(), timeout_s)
    return events, ended


async def _aiohttp_lines(response: Any) -> AsyncIterator[str]:
    while raw := await response.content.readline():
        yield raw.decode()


async def read_events(
    response: Any, *, limit: int | None = None, timeout_s: float = 20.0
) -> tuple[list[Event], bool]:
    """From an aiohttp response: events until the server ends the stream (True) or `limit` events
    were read (False)."""
    return await collect(
        _aiohttp_lines(response),
        SseParser(),
        stop=lambda events: limit is not None and len(events) >= limit,
        timeout_s=timeout_s,
    )
