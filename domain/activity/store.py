"""Activity counts, one small document per project, person and day in `activity_days` (days as
"YYYY-MM-DD" strings: they sort and compare as days)."""

from __future__ import annotations

from datetime import date

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from domain.activity.models import COUNTED, Count, Signal
from domain.infra.mongo import DUPLICATE_KEY, Database, at_least, at_most, index

FLUSHES_KEPT = 200  # tokens of the last flushes a day's document took (activity/pending.py)

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

    async def apply(self, items: list[tuple[str, str, date, Signal, int]], token: str) -> None:
        """Add counts that waited in Redis, in one bulk write, once per flush token: a document that
        took this token already (a flush written again after its instance died) is left alone."""
        incs: dict[tuple[str, str, str], dict[str, int]] = {}
        for project_id, user_id, day, signal, n in items:
            counts = incs.setdefault((project_id, day.isoformat(), user_id), {})
            counts[signal.value] = counts.get(signal.value, 0) + n
        ops = [self._tagged(key, counts, token) for key, counts in incs.items()]
        for attempt in range(2):
            try:
                await self._days.bulk_write(ops, ordered=False)
                return
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if any(e.get("code") != DUPLICATE_KEY for e in errors):
                    raise
                # a duplicate: this token's document is there already (written before), or two
                # first counts of the day raced; once more, and a second duplicate is the former
                ops = [ops[e["index"]] for e in errors]
                if attempt:
                    return

    @staticmethod
    def _tagged(key: tuple[str, str, str], counts: dict[str, int], token: str) -> UpdateOne:
        project_id, day, user_id = key
        where = {"project_id": ObjectId(project_id), "day": day, "user_id": ObjectId(user_id)}
        return UpdateOne(
            {**where, "flushes": {"$ne": token}},
            {"$inc": counts, "$push": {"flushes": {"$each": [token], "$slice": -FLUSHES_KEPT}}},
            upsert=True,
        )

    async def between(self, project_id: str, start: date, end: date) -> list[Count]:
        found: list[Count] = []
        days = {**at_least(start.isoformat()), **at_most(end.isoformat())}
        async for doc in self._days.find(
            {"project_id": ObjectId(project_id), "day": days}, {"flushes": 0}
        ).batch_size(5000):
            day = date.fromisoformat(doc["day"])
            found.extend(
                Count(str(doc["user_id"]), day, signal, int(doc[signal.value]))
                for signal in COUNTED
                if doc.get(signal.value)
            )
        return found

    async def delete_project(self, project_id: str) -> None:
        await self._days.delete_many({"project_id": ObjectId(project_id)})
