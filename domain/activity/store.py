"""Activity counts, one small document per project, person and day in `activity_days` (days as
"YYYY-MM-DD" strings: they sort and compare as days)."""

from __future__ import annotations

from datetime import date

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from domain.activity.models import COUNTED, Count, Signal
from domain.infra.mongo import Database, at_least, at_most, index

index("activity_days", ("project_id", 1), ("day", 1), ("user_id", 1), unique=True, name="project_day_user")


class ActivityStore:
    def __init__(self, db: Database) -> None:
        self._days = db["activity_days"]

    async def add(self, project_id: str, user_id: str, day: date, signal: Signal, n: int) -> None:
        key = {"project_id": ObjectId(project_id), "day": day.isoformat(), "user_id": ObjectId(user_id)}
        for attempt in range(2):
            try:
                await self._days.update_one(key, {"$inc": {signal.value: n}}, upsert=True)
                return
            except DuplicateKeyError:  # two first counts of the day at once: the loser retries
                if attempt:
                    raise

    async def between(self, project_id: str, start: date, end: date) -> list[Count]:
        found: list[Count] = []
        days = {**at_least(start.isoformat()), **at_most(end.isoformat())}
        async for doc in self._days.find({"project_id": ObjectId(project_id), "day": days}).batch_size(5000):
            day = date.fromisoformat(doc["day"])
            found.extend(
                Count(str(doc["user_id"]), day, signal, int(doc[signal.value]))
                for signal in COUNTED
                if doc.get(signal.value)
            )
        return found

    async def delete_project(self, project_id: str) -> None:
        await self._days.delete_many({"project_id": ObjectId(project_id)})
