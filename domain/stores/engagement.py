"""The engagement collection (time students log), and the activity LabHub counts on its own, read
from the collections that hold it (meetings, document versions, ingestions, records).

Days are stored as "YYYY-MM-DD" strings: they sort and compare as days. Counted activity is
grouped by person and day in the lab's time zone by MongoDB itself ($group on $dateToString), so
a project with a million records sends back one row per person and day.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from bson import ObjectId
from pymongo import ReturnDocument

from domain.engagement import Activity, Entry, Signal
from domain.meetings import Presence
from domain.stores.bson_codec import from_document
from domain.stores.meetings import MeetingStore
from domain.stores.mongo import Database, Document, index, object_id
from domain.stores.pagination import SortSpec, find_page

index("engagement", ("project_id", 1), ("date", -1), ("_id", -1), name="project_newest")
index("engagement", ("student_id", 1), ("date", 1), name="student_day")

NEWEST: SortSpec = [("date", -1), ("_id", -1)]


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    stored = dict(fields)
    if isinstance(stored.get("date"), date):
        stored["date"] = stored["date"].isoformat()
    if isinstance(stored.get("activity"), Activity):
        stored["activity"] = stored["activity"].value
    return stored


def _days(start: date | None, end: date | None) -> dict[str, Any]:
    if start is None and end is None:
        return {}
    return {
        "date": {
            **({"$gte": start.isoformat()} if start else {}),
            **({"$lte": end.isoformat()} if end else {}),
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
        doc["_id"] = (await self._entries.insert_one(doc)).inserted_id
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


class ActivityLog:
    """What LabHub saw people do in a project, as (person, day, signal) — one per thing done."""

    def __init__(self, db: Database, meetings: MeetingStore) -> None:
        self._db = db
        self._meetings = meetings

    async def signals(
        self, project_id: str, start: datetime, end: datetime, zone: ZoneInfo
    ) -> list[tuple[str, date, Signal]]:
        """Everything in [start, end) (aware datetimes), attributed to days in `zone`."""
        found: list[tuple[str, date, Signal]] = []
        for collection, signal, distinct in (
            ("document_versions", Signal.UPLOAD, None),
            ("records", Signal.RECORD, None),
            # one ingestion per file and sheet: a workbook's sheets are one file ingested
            ("ingestions", Signal.INGESTION, {"b": "$batch_id", "f": "$file.name"}),
        ):
            for person, day, count in await self._daily(collection, project_id, start, end, zone, distinct):
                found.extend([(person, day, signal)] * count)
        for meeting in await self._meetings.attendance_between(project_id, start, end):
            day = meeting.starts_at.astimezone(zone).date()
            for mark in meeting.attendance:
                attended = mark.presence is Presence.PRESENT
                found.append(
                    (mark.user_id, day, Signal.MEETING_ATTENDED if attended else Signal.MEETING_MISSED)
                )
        return found

    async def _daily(
        self, collection: str, project_id: str, start: datetime, end: datetime, zone: ZoneInfo,
        distinct: dict[str, str] | None,
    ) -> list[tuple[str, date, int]]:  # fmt: skip
        key = {
            "u": "$created_by",
            "d": {"$dateToString": {"format": "%Y-%m-%d", "date": "$created_at", "timezone": zone.key}},
        }
        pipeline: list[dict[str, Any]] = [
            {"$match": {"project_id": ObjectId(project_id), "created_at": {"$gte": start, "$lt": end}}}
        ]
        if distinct:
            pipeline.append({"$group": {"_id": {**key, **distinct}}})
            key = {"u": "$_id.u", "d": "$_id.d"}
        pipeline.append({"$group": {"_id": key, "n": {"$sum": 1}}})
        cursor = await self._db[collection].aggregate(pipeline)
        return [
            (str(row["_id"]["u"]), date.fromisoformat(row["_id"]["d"]), int(row["n"]))
            async for row in cursor
            if row["_id"].get("u") is not None
        ]
