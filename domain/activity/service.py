"""What LabHub saw people do in a project — documents uploaded, files ingested, records created —
counted per project, person and day (in the lab's time zone) as it happens. The areas where these
things happen call `count`; engagement reads the counts (and adds meeting attendance itself). A
summary reads one small document per person and active day, however many records there are.
Counts are of things done: deleting a record later does not undo the work of having made it.

A count goes to Redis first and reaches MongoDB in bulk about a second later (activity/pending.py);
a read flushes first, so it sees every count made before it.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from zoneinfo import ZoneInfo

from domain.activity.models import Count, Signal
from domain.activity.pending import Item, PendingCounts
from domain.activity.store import ActivityStore
from domain.infra.redis_store import RedisStore
from domain.infra.write_behind import WriteBehind

log = logging.getLogger("labhub.activity")


class ActivityLog:
    def __init__(self, store: ActivityStore, redis: RedisStore, zone: ZoneInfo) -> None:
        self._store = store
        self._pending = PendingCounts(redis, store.apply)
        self._zone = zone

    async def count(self, project_id: str, user_id: str, signal: Signal, at: datetime, n: int = 1) -> None:
        """Add n to the person's count for that day; never fails the write it follows."""
        day = at.astimezone(self._zone).date()
        try:
            await self._pending.add(project_id, user_id, day, signal, n)
            return
        except Exception as exc:  # noqa: BLE001 - Redis is down: straight to MongoDB instead
            log.warning("activity count not queued; writing it now", extra={"error": repr(exc)[:200]})
        try:
            await self._store.add(project_id, user_id, day, signal, n)
        except Exception:
            log.exception("activity count lost", extra={"project_id": project_id, "signal": signal.value})

    @property
    def waiting(self) -> WriteBehind[list[Item]]:
        """The counts waiting in Redis (the server runs its flusher)."""
        return self._pending.waiting

    async def flush(self) -> None:
        """Everything counted so far (on any instance) into MongoDB."""
        await self._pending.waiting.flush()

    async def between(self, project_id: str, start: date, end: date) -> list[Count]:
        """Every count in [start, end] (days in the lab's time zone)."""
        try:
            await self.flush()
        except Exception as exc:  # noqa: BLE001 - answer from MongoDB; the counts stay in Redis
            log.warning("activity counts not flushed before a read", extra={"error": repr(exc)[:200]})
        return await self._store.between(project_id, start, end)

    async def delete_project(self, project_id: str) -> None:
        await self.flush()  # no count of the project may arrive after its documents are gone
        await self._store.delete_project(project_id)
