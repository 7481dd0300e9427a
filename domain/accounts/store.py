"""The users collection."""

from __future__ import annotations

import re
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from domain.accounts.models import NotificationSettings, Role, SignInPolicy, User
from domain.core.clock import utcnow
from domain.core.errors import Conflict
from domain.infra.bson_codec import from_document
from domain.infra.mongo import Database, backup_rule, index, insert_once, object_id
from domain.infra.pagination import find_page

index("users", ("email", 1), unique=True, name="email_unique")
index("users", ("name_lower", 1), name="name_lower")
backup_rule("users", rank=0)


def _prefix_query(q: str) -> dict[str, Any]:
    # no $text index on SecantusDB: an anchored, escaped prefix match on indexed fields
    prefix = "^" + re.escape(q.strip().lower())
    return {"$or": [{"name_lower": {"$regex": prefix}}, {"email": {"$regex": prefix}}]}


_EMAIL_TAKEN = Conflict("an account with this email already exists", code="email_taken")


class UserStore:
    def __init__(self, db: Database) -> None:
        self._users = db["users"]

    async def insert(
        self, *, email: str, name: str, role: Role, password_hash: str | None, role_from_provider: bool = False
    ) -> User:
        now = utcnow()
        doc: dict[str, Any] = {
            "email": email,
            "name": name,
            "name_lower": name.lower(),
            "role": role.value,
            "active": True,
            "password_hash": password_hash,
            "role_from_provider": role_from_provider,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await insert_once(self._users, doc)
        except DuplicateKeyError:
            raise _EMAIL_TAKEN from None
        return from_document(User, doc)

    async def get(self, user_id: str) -> User | None:
        doc = await self._users.find_one({"_id": object_id(user_id, "user")})
        return from_document(User, doc) if doc else None

    async def get_many(self, user_ids: list[str]) -> dict[str, User]:
        ids = [object_id(u, "user") for u in user_ids]
        return {
            str(doc["_id"]): from_document(User, doc) async for doc in self._users.find({"_id": {"$in": ids}})
        }

    async def search_among(self, user_ids: list[str], q: str) -> set[str]:
        """Which of user_ids have a name or email starting with q."""
        query = {"_id": {"$in": [ObjectId(u) for u in user_ids]}, **_prefix_query(q)}
        return {str(doc["_id"]) async for doc in self._users.find(query, {"_id": 1})}

    async def search_outside(self, user_ids: list[str], q: str, limit: int) -> list[User]:
        """Active users not among user_ids whose name or email starts with q, by name."""
        query = {"_id": {"$nin": [ObjectId(u) for u in user_ids]}, "active": True, **_prefix_query(q)}
        cursor = self._users.find(query).sort([("name_lower", 1), ("_id", 1)]).limit(limit)
        return [from_document(User, doc) async for doc in cursor]

    async def active_by_email(self, email: str) -> User | None:
        doc = await self._users.find_one({"email": email, "active": True})
        return from_document(User, doc) if doc else None

    async def exists_email(self, email: str) -> bool:
        return await self._users.count_documents({"email": email}, limit=1) > 0

    async def credentials(self, email: str) -> tuple[User, str] | None:
        doc = await self._users.find_one({"email": email})
        return (from_document(User, doc), doc["password_hash"]) if doc else None

    async def password_hash(self, user_id: str) -> str | None:
        doc = await self._users.find_one({"_id": object_id(user_id, "user")}, {"password_hash": 1})
        return doc["password_hash"] if doc else None

    async def update(self, user_id: str, fields: dict[str, Any]) -> User | None:
        changes = dict(fields)
        if "name" in changes:
            changes["name_lower"] = changes["name"].lower()
        if "role" in changes:
            changes["role"] = Role(changes["role"]).value
        changes["updated_at"] = utcnow()
        doc = await self._users.find_one_and_update(
            {"_id": object_id(user_id, "user")},
            {"$set": changes},
            return_document=ReturnDocument.AFTER,
        )
        return from_document(User, doc) if doc else None

    async def notification_settings(self, user_ids: list[str]) -> dict[str, NotificationSettings]:
        """Each user's mail choices (defaults for anyone who never changed them)."""
        ids = [object_id(u, "user") for u in user_ids]
        found = {
            str(doc["_id"]): NotificationSettings(**doc.get("notification_settings", {}))
            async for doc in self._users.find({"_id": {"$in": ids}}, {"notification_settings": 1})
        }
        return {u: found.get(u, NotificationSettings()) for u in user_ids}

    async def set_notification_settings(self, user_id: str, changes: dict[str, bool]) -> NotificationSettings:
        doc = await self._users.find_one_and_update(
            {"_id": object_id(user_id, "user")},
            {"$set": {f"notification_settings.{k}": v for k, v in changes.items()}},
            projection={"notification_settings": 1},
            return_document=ReturnDocument.AFTER,
        )
        return NotificationSettings(**(doc or {}).get("notification_settings", {}))

    async def page(self, *, q: str | None, limit: int, cursor: str | None) -> tuple[list[User], str | None]:
        query = _prefix_query(q) if q else {}
        docs, next_cursor = await find_page(
            self._users, query, [("name_lower", 1), ("_id", 1)], limit, cursor
        )
        return [from_document(User, d) for d in docs], next_cursor


class SignInPolicyStore:
    """The lab's sign-in choices: one document in lab_settings."""

    def __init__(self, db: Database) -> None:
        self._settings = db["lab_settings"]

    async def get(self) -> SignInPolicy:
        doc = await self._settings.find_one({"_id": "sign_in"})
        return from_document(SignInPolicy, {k: v for k, v in doc.items() if k != "_id"}) if doc else SignInPolicy()

    async def put(self, policy: SignInPolicy) -> None:
        await self._settings.update_one(
            {"_id": "sign_in"},
            {"$set": {"password_sign_in": policy.password_sign_in.value, "updated_at": policy.updated_at,
                      "updated_by": policy.updated_by}},
            upsert=True,
        )  # fmt: skip
