"""The engagement collection: the time students log.

Days are stored as "YYYY-MM-DD" strings: they sort and compare as days.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from domain.engagement.models import Activity, Entry
from domain.infra.bson_codec import from_document
from domain.infra.mongo import Database, Document, at_least, at_most, index, insert_once, object_id
from domain.infra.pagination import SortSpec, find_page

index("engagement", ("project_id", 1), ("date", -1), ("_id", -1), name="project_newest")
index("engagement", ("student_id", 1), ("date", 1), name="student_day")

log = logging.getLogger("labhub.engagement")

NEWEST: SortSpec = [("date", -1), ("_id", -1)]


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    stored = dict(fields)
    if isinstance(stored.get("date"), date):
        stored["date"] = stored["date"].isoformat()
    if isinstance(stored.get("activity"), Activity):
        stored["activity"] = stored["activity"].value
    return stored


def _days(start: date | None, end: date | None, field: str = "date") -> dict[str, Any]:
    if start is None and end is None:
        return {}
    return {
        field: {
            **(at_least(start.isoformat()) if start else {}),
            **(at_most(end.isoformat()) if end else {}),
        }
    }


class EngagementStore:
    def __init__(self, db: Database) -> None:
        self._entries = db["engagement"]

    async def insert(
        self, project_id: str, student_id: str, created_by: str, fields: dict[str, Any], now: datetime
    ) -> Entry:
        doc: Document = {
            "project_id": ObjectId(project_id),
            "student_id": ObjectId(student_id),
            "notes": "",
            **_stored(fields),
            "created_by": ObjectId(created_by),
            "created_at": now,
            "updated_at": now,
        }
        await insert_once(self._entries, doc)
        return from_document(Entry, doc)

    async def get(self, entry_id: str) -> Entry | None:
        doc = await self._entries.find_one({"_id": object_id(entry_id, "entry")})
        return from_document(Entry, doc) if doc else None

    async def update(self, entry_id: str, fields: dict[str, Any], now: datetime) -> Entry | None:
        doc = await self._entries.find_one_and_update(
            {"_id": ObjectId(entry_id)},
            {"$set": {**_stored(fields), "updated_at": now}},
            return_document=ReturnDocument.AFTER,
        )
        return from_document(Entry, doc) if doc else None

    async def delete(self, entry_id: str) -> bool:
        return (await self._entries.delete_one({"_id": ObjectId(entry_id)})).deleted_count == 1

    async def day_total(self, student_id: str, day: date) -> int:
        """Minutes the student logged on that day, in every project (a day has 1440 of them)."""
        cursor = self._entries.find(
            {"student_id": ObjectId(student_id), "date": day.isoformat()}, {"minutes": 1}
        )
        return sum([int(doc["minutes"]) async for doc in cursor])

    async def page(
        self, project_id: str, *, student_id: str | None, start: date | None, end: date | None,
        activity: Activity | None, limit: int, cursor: str | None,
    ) -> tuple[list[Entry], str | None]:  # fmt: skip
        query: dict[str, Any] = {"project_id": ObjectId(project_id), **_days(start, end)}
        if student_id is not None:
            query["student_id"] = ObjectId(student_id)
        if activity is not None:
            query["activity"] = activity.value
        docs, following = await find_page(self._entries, query, NEWEST, limit, cursor)
        return [from_document(Entry, d) for d in docs], following

    async def between(
        self, project_id: str, start: date, end: date, student_ids: Iterable[str] | None
    ) -> list[tuple[str, date, int, Activity]]:
        query: dict[str, Any] = {"project_id": ObjectId(project_id), **_days(start, end)}
        if student_ids is not None:
            query["student_id"] = {"$in": [ObjectId(s) for s in student_ids]}
        cursor = self._entries.find(query, {"student_id": 1, "date": 1, "minutes": 1, "activity": 1})
        return [
            (str(d["student_id"]), date.fromisoformat(d["date"]), int(d["minutes"]), Activity(d["activity"]))
            async for d in cursor.batch_size(5000)
        ]

    async def students(self, project_id: str) -> list[str]:
        return [
            str(s) for s in await self._entries.distinct("student_id", {"project_id": ObjectId(project_id)})
        ]

    async def earliest(self, project_id: str) -> date | None:
        doc = await self._entries.find_one(
            {"project_id": ObjectId(project_id)}, {"date": 1}, sort=[("date", 1)]
        )
        return date.fromisoformat(doc["date"]) if doc else None

    async def delete_project(self, project_id: str) -> None:
        await self._entries.delete_many({"project_id": ObjectId(project_id)})
