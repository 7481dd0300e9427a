"""The meetings collection. RSVPs and attendance are maps keyed by user id, so that one person's
answer is one atomic $set that never races another's; revisions are guarded by `sequence`."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from domain.infra.bson_codec import from_document
from domain.infra.mongo import Database, Document, backup_rule, index, insert_once, object_id
from domain.infra.pagination import SortSpec, bad_cursor, find_page
from domain.meetings.models import ActionItem, Meeting, MeetingStatus, Presence, RsvpResponse

index("meetings", ("project_id", 1), ("starts_at", 1), ("_id", 1), name="project_start")
index("meetings", ("project_id", 1), ("ends_at", 1), name="project_end")
backup_rule("meetings", rank=4)

UPCOMING: SortSpec = [("starts_at", 1), ("_id", 1)]
PAST: SortSpec = [("starts_at", -1), ("_id", -1)]
MAX_FEED = 2000  # meetings in one calendar feed, the latest first


def _stored_items(items: list[ActionItem]) -> list[Document]:
    return [
        {"text": i.text, "assignee_id": ObjectId(i.assignee_id) if i.assignee_id else None,
         "due": i.due.isoformat() if i.due else None, "done": i.done}
        for i in items
    ]  # fmt: skip


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    stored = dict(fields)
    if "attendee_ids" in stored:
        stored["attendee_ids"] = [ObjectId(u) for u in stored["attendee_ids"]]
    if "action_items" in stored:
        stored["action_items"] = _stored_items(stored["action_items"])
    return stored


def meeting_from(doc: Document) -> Meeting:
    fields = dict(doc)
    fields["rsvps"] = sorted(
        ({"user_id": k, **v} for k, v in (doc.get("rsvps") or {}).items()), key=lambda r: r["at"]
    )
    fields["attendance"] = sorted(
        ({"user_id": k, **v} for k, v in (doc.get("attendance") or {}).items()), key=lambda r: r["at"]
    )
    return from_document(Meeting, fields)


def _encode(phase: int, now: datetime, inner: str | None) -> str:
    raw = json.dumps({"p": phase, "n": now.isoformat(), "c": inner}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[int, datetime, str | None]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        phase, now, inner = payload["p"], datetime.fromisoformat(payload["n"]), payload["c"]
    except (ValueError, binascii.Error, UnicodeDecodeError, KeyError, TypeError):
        raise bad_cursor() from None
    if phase not in (0, 1) or now.tzinfo is None or not (inner is None or isinstance(inner, str)):
        raise bad_cursor()
    return phase, now, inner


class MeetingStore:
    def __init__(self, db: Database) -> None:
        self._meetings = db["meetings"]

    async def insert(
        self, project_id: str, created_by: str, fields: dict[str, Any], now: datetime
    ) -> Meeting:
        doc: Document = {
            "project_id": ObjectId(project_id),
            "location": "",
            "link": None,
            "agenda": "",
            "notes": "",
            "attendee_ids": [],
            "action_items": [],
            **_stored(fields),
            "rsvps": {},
            "attendance": {},
            "status": MeetingStatus.SCHEDULED.value,
            "sequence": 0,
            "created_by": ObjectId(created_by),
            "created_at": now,
            "updated_at": now,
            "cancelled_at": None,
        }
        await insert_once(self._meetings, doc)
        return meeting_from(doc)

    async def get(self, meeting_id: str) -> Meeting | None:
        doc = await self._meetings.find_one({"_id": object_id(meeting_id, "meeting")})
        return meeting_from(doc) if doc else None

    async def revise(self, meeting: Meeting, fields: dict[str, Any], now: datetime) -> Meeting | None:
        """Write a revision if nobody revised the meeting since it was read (None: read it again)."""
        changes = {**_stored(fields), "updated_at": now}
        doc = await self._meetings.find_one_and_update(
            {"_id": ObjectId(meeting.id), "sequence": meeting.sequence},
            {"$set": changes, "$inc": {"sequence": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return meeting_from(doc) if doc else None

    async def set_rsvp(
        self, meeting_id: str, user_id: str, response: RsvpResponse, now: datetime
    ) -> Meeting | None:
        doc = await self._meetings.find_one_and_update(
            {"_id": ObjectId(meeting_id), "status": MeetingStatus.SCHEDULED.value},
            {"$set": {f"rsvps.{user_id}": {"response": response.value, "at": now}}},
            return_document=ReturnDocument.AFTER,
        )
        return meeting_from(doc) if doc else None

    async def set_attendance(
        self, meeting_id: str, marks: dict[str, Presence], recorded_by: str, now: datetime
    ) -> Meeting | None:
        changes = {
            f"attendance.{user_id}": {
                "presence": presence.value,
                "recorded_by": ObjectId(recorded_by),
                "at": now,
            }
            for user_id, presence in marks.items()
        }
        doc = await self._meetings.find_one_and_update(
            {"_id": ObjectId(meeting_id), "status": MeetingStatus.SCHEDULED.value},
            {"$set": changes},
            return_document=ReturnDocument.AFTER,
        )
        return meeting_from(doc) if doc else None

    async def page(
        self, project_id: str, *, start_from: datetime | None, start_to: datetime | None, now: datetime,
        limit: int, cursor: str | None,
    ) -> tuple[list[Meeting], str | None]:  # fmt: skip
        """Upcoming meetings (not yet over) soonest first, then past ones latest first; the cursor
        keeps the moment that split them, so pages stay consistent while time passes."""
        phase, split, inner = _decode(cursor) if cursor else (0, now, None)
        base: dict[str, Any] = {"project_id": ObjectId(project_id)}
        if start_from is not None or start_to is not None:
            base["starts_at"] = {
                **({"$gte": start_from} if start_from else {}),
                **({"$lt": start_to} if start_to else {}),
            }
        upcoming = {**base, "ends_at": {"$gt": split}}
        past = {**base, "ends_at": {"$lte": split}}
        items: list[Document] = []
        if phase == 0:
            docs, following = await find_page(self._meetings, upcoming, UPCOMING, limit, inner)
            if following:
                return [meeting_from(d) for d in docs], _encode(0, split, following)
            items, inner = docs, None
        remaining = limit - len(items)
        if remaining == 0:
            more = await self._meetings.count_documents(past, limit=1) > 0
            return [meeting_from(d) for d in items], _encode(1, split, None) if more else None
        docs, following = await find_page(self._meetings, past, PAST, remaining, inner)
        items += docs
        return [meeting_from(d) for d in items], _encode(1, split, following) if following else None

    async def feed(self, project_id: str) -> list[Meeting]:
        cursor = self._meetings.find({"project_id": ObjectId(project_id)}).sort(list(PAST)).limit(MAX_FEED)
        return [meeting_from(d) async for d in cursor]

    async def feed_of_projects(self, project_ids: list[str], since: datetime) -> list[Meeting]:
        """Meetings of these projects that start at `since` or later, the latest first."""
        query = {"project_id": {"$in": [ObjectId(p) for p in project_ids]}, "starts_at": {"$gte": since}}
        cursor = self._meetings.find(query).sort(list(PAST)).limit(MAX_FEED)
        return [meeting_from(d) async for d in cursor]

    async def attendance_between(self, project_id: str, start: datetime, end: datetime) -> list[Meeting]:
        """Held (not cancelled) meetings that started in [start, end), for the engagement summary."""
        cursor = self._meetings.find(
            {"project_id": ObjectId(project_id), "status": MeetingStatus.SCHEDULED.value,
             "starts_at": {"$gte": start, "$lt": end}}
        )  # fmt: skip
        return [meeting_from(d) async for d in cursor]

    async def delete_project(self, project_id: str) -> None:
        await self._meetings.delete_many({"project_id": ObjectId(project_id)})


index("calendar_links", ("user_id", 1), unique=True, name="one_per_user")
index("calendar_links", ("secret_hash", 1), unique=True, name="secret_hash_unique")


class CalendarLinkStore:
    """One calendar subscription link per user: only its secret's hash is kept."""

    def __init__(self, db: Database) -> None:
        self._links = db["calendar_links"]

    async def replace(self, user_id: str, secret_hash: str, now: datetime) -> None:
        await self._links.update_one(
            {"user_id": ObjectId(user_id)},
            {"$set": {"secret_hash": secret_hash, "created_at": now}},
            upsert=True,
        )

    async def remove(self, user_id: str) -> None:
        await self._links.delete_one({"user_id": ObjectId(user_id)})

    async def owner(self, secret_hash: str) -> str | None:
        doc = await self._links.find_one({"secret_hash": secret_hash}, {"user_id": 1})
        return str(doc["user_id"]) if doc else None
