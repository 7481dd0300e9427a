"""The notifications collection."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from domain.notifications import Notification
from domain.stores.bson_codec import from_document
from domain.stores.mongo import Database, Document, index, object_id
from domain.stores.pagination import find_page

index("notifications", ("user_id", 1), ("created_at", -1), ("_id", -1), name="user_newest")
index("notifications", ("user_id", 1), ("read_at", 1), name="user_unread")


class NotificationStore:
    def __init__(self, db: Database) -> None:
        self._notifications = db["notifications"]

    async def insert(self, *, user_id: str, category: str, title: str, body: str, link: str | None,
                     created_at: datetime) -> Notification:  # fmt: skip
        doc: Document = {"user_id": ObjectId(user_id), "category": category, "title": title, "body": body,
                         "link": link, "created_at": created_at, "read_at": None}  # fmt: skip
        doc["_id"] = (await self._notifications.insert_one(doc)).inserted_id
        return from_document(Notification, doc)

    async def page(
        self, user_id: str, *, unread_only: bool, limit: int, cursor: str | None
    ) -> tuple[list[Notification], str | None]:
        query: dict[str, Any] = {"user_id": ObjectId(user_id)}
        if unread_only:
            query["read_at"] = None
        docs, next_cursor = await find_page(
            self._notifications, query, [("created_at", -1), ("_id", -1)], limit, cursor
        )
        return [from_document(Notification, d) for d in docs], next_cursor

    async def unread_count(self, user_id: str) -> int:
        return await self._notifications.count_documents({"user_id": ObjectId(user_id), "read_at": None})

    async def mark_read(self, user_id: str, notification_id: str, at: datetime) -> Notification | None:
        query = {"_id": object_id(notification_id, "notification"), "user_id": ObjectId(user_id)}
        doc = await self._notifications.find_one_and_update(
            {**query, "read_at": None}, {"$set": {"read_at": at}}, return_document=ReturnDocument.AFTER
        )
        doc = doc or await self._notifications.find_one(query)
        return from_document(Notification, doc) if doc else None

    async def mark_all_read(self, user_id: str, at: datetime) -> None:
        await self._notifications.update_many(
            {"user_id": ObjectId(user_id), "read_at": None}, {"$set": {"read_at": at}}
        )
