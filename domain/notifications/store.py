"""The notifications collection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from domain.infra.bson_codec import from_document
from domain.infra.mongo import Database, Document, index, insert_many_once, insert_once, object_id
from domain.infra.pagination import find_page
from domain.notifications.models import Notification

index("notifications", ("user_id", 1), ("created_at", -1), ("_id", -1), name="user_newest")
index("notifications", ("user_id", 1), ("read_at", 1), name="user_unread")


def _mine(user_id: str, only_projects: frozenset[str] | None) -> dict[str, Any]:
    """A user's notifications; only_projects: only those about these projects (a narrowed token)."""
    query: dict[str, Any] = {"user_id": ObjectId(user_id)}
    if only_projects is not None:
        query["project_id"] = {"$in": [ObjectId(p) for p in sorted(only_projects)]}
    return query


class NotificationStore:
    def __init__(self, db: Database) -> None:
        self._notifications = db["notifications"]

    @staticmethod
    def new(*, user_id: str, project_id: str, category: str, title: str, body: str, link: str | None,
            created_at: datetime) -> Document:  # fmt: skip
        """A notification's document, its id chosen now (it may wait in Redis before it is stored)."""
        return {"_id": ObjectId(), "user_id": ObjectId(user_id), "project_id": ObjectId(project_id),
                "category": category, "title": title, "body": body, "link": link, "created_at": created_at,
                "read_at": None}  # fmt: skip

    async def insert(self, doc: Document) -> Notification:
        await insert_once(self._notifications, doc)
        return from_document(Notification, doc)

    async def insert_many(self, docs: list[Document], _token: str = "") -> None:
        """Notifications that waited in Redis: a second write of the same ones is a no-op (their ids)."""
        if docs:
            await insert_many_once(self._notifications, docs)

    async def page(
        self, user_id: str, *, unread_only: bool, limit: int, cursor: str | None,
        only_projects: frozenset[str] | None = None,
    ) -> tuple[list[Notification], str | None]:  # fmt: skip
        query = _mine(user_id, only_projects)
        if unread_only:
            query["read_at"] = None
        docs, next_cursor = await find_page(
            self._notifications, query, [("created_at", -1), ("_id", -1)], limit, cursor
        )
        return [from_document(Notification, d) for d in docs], next_cursor

    async def unread_count(self, user_id: str, only_projects: frozenset[str] | None = None) -> int:
        return await self._notifications.count_documents({**_mine(user_id, only_projects), "read_at": None})

    async def mark_read(
        self, user_id: str, notification_id: str, at: datetime, only_projects: frozenset[str] | None = None
    ) -> Notification | None:
        query = {"_id": object_id(notification_id, "notification"), **_mine(user_id, only_projects)}
        doc = await self._notifications.find_one_and_update(
            {**query, "read_at": None}, {"$set": {"read_at": at}}, return_document=ReturnDocument.AFTER
        )
        doc = doc or await self._notifications.find_one(query)
        return from_document(Notification, doc) if doc else None

    async def mark_all_read(self, user_id: str, at: datetime, only_projects: frozenset[str] | None = None) -> None:
        await self._notifications.update_many(
            {**_mine(user_id, only_projects), "read_at": None}, {"$set": {"read_at": at}}
        )
