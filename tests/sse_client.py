"""A small, strict reader of text/event-stream responses for tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import attrs


@attrs.frozen
class Event:
    event: str
    data: Any
    id: str | None = None
    retry: int | None = None


async def read_events(
    response: Any, *, limit: int | None = None, timeout_s: float = 20.0
) -> tuple[list[Event], bool]:
    """Events until the server ends the stream (True) or `limit` events were read (False)."""
    events: list[Event] = []
    fields: dict[str, str] = {}

    async def run() -> bool:
        nonlocal fields
        while True:
            raw = await response.content.readline()
            if not raw:
                return True
            line = raw.decode().rstrip("\r\n")
            if line.startswith(":"):
                continue
            if line == "":
                if "data" in fields:
                    events.append(
                        Event(
                            fields.get("event", "message"),
                            json.loads(fields["data"]),
                            fields.get("id"),
                            int(fields["retry"]) if "retry" in fields else None,
                        )
                    )
                    if limit is not None and len(events) >= limit:
                        return False
                fields = {}
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value

    ended = await asyncio.wait_for(run(), timeout_s)
    return events, ended
