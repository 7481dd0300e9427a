"""What LabHub saw people do in a project — documents uploaded, files ingested, records created —
counted per project, person and day (in the lab's time zone) as it happens. The areas where these
things happen call `count`; engagement reads the counts (and adds meeting attendance itself). A
summary reads one small document per person and active day, however many records there are.
Counts are of things done: deleting a record later does not undo the work of having made it.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from zoneinfo import ZoneInfo

from domain.activity.models import Count, Signal
from domain.activity.store import ActivityStore

log = logging.getLogger("labhub.activity")


class ActivityLog:
    def __init__(self, store: ActivityStore, zone: ZoneInfo) -> None:
        self._store = store
        self._zone = zone

    async def count(self, project_id: str, user_id: str, signal: Signal, at: datetime, n: int = 1) -> None:
        """Add n to the person's count for that day; never fails the write it follows."""
        try:
            await self._store.add(project_id, user_id, at.astimezone(self._zone).date(), signal, n)
        except Exception:
            log.exception("activity count lost", extra={"project_id": project_id, "signal": signal.value})

    async def between(self, project_id: str, start: date, end: date) -> list[Count]:
        """Every count in [start, end] (days in the lab's time zone)."""
        return await self._store.between(project_id, start, end)

    async def delete_project(self, project_id: str) -> None:
        await self._store.delete_project(project_id)
