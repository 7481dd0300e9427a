"""Personal access tokens (hashed) and the account audit trail of their creation and revocation."""

from __future__ import annotations

from datetime import datetime, timedelta

from bson import ObjectId

from domain.infra.bson_codec import from_document
from domain.infra.mongo import Database, Document, index, insert_once, object_id
from domain.tokens.models import AccessToken, Scope

index("access_tokens", ("secret_hash", 1), unique=True, name="secret_hash_unique")
index("access_tokens", ("user_id", 1), ("created_at", -1), name="user_newest")


class AccessTokenStore:
    def __init__(self, db: Database) -> None:
        self._tokens = db["access_tokens"]

    async def insert(
        self, *, user_id: str, name: str, prefix: str, secret_hash: str, scopes: list[Scope],
        project_ids: list[str] | None, expires_at: datetime | None, now: datetime,
    ) -> AccessToken:  # fmt: skip
        doc: Document = {
            "user_id": ObjectId(user_id),
            "name": name,
            "prefix": prefix,
            "secret_hash": secret_hash,
            "scopes": [s.value for s in scopes],
            "project_ids": project_ids,
            "created_at": now,
            "expires_at": expires_at,
            "last_used_at": None,
            "last_used_from": None,
            "revoked_at": None,
        }
        await insert_once(self._tokens, doc)
        return from_document(AccessToken, doc)

    async def by_hash(self, secret_hash: str) -> tuple[AccessToken, str] | None:
        doc = await self._tokens.find_one({"secret_hash": secret_hash})
        return (from_document(AccessToken, doc), str(doc["secret_hash"])) if doc else None

    async def get(self, token_id: str) -> AccessToken | None:
        doc = await self._tokens.find_one({"_id": object_id(token_id, "token")})
        return from_document(AccessToken, doc) if doc else None

    async def of_user(self, user_id: str) -> list[AccessToken]:
        cursor = self._tokens.find({"user_id": ObjectId(user_id)}).sort([("created_at", -1), ("_id", -1)])
        return [from_document(AccessToken, doc) async for doc in cursor]

    async def live_count(self, user_id: str, now: datetime) -> int:
        return await self._tokens.count_documents(
            {"user_id": ObjectId(user_id), "revoked_at": None,
             "$or": [{"expires_at": None}, {"expires_at": {"$gt": now}}]}
        )  # fmt: skip

    async def revoke(self, token_id: str, now: datetime) -> AccessToken | None:
        await self._tokens.update_one(
            {"_id": object_id(token_id, "token"), "revoked_at": None}, {"$set": {"revoked_at": now}}
        )
        return await self.get(token_id)

    async def revoke_user(self, user_id: str, now: datetime) -> list[str]:
        """Revoke every live token of a user; the ids revoked."""
        ids = [
            str(doc["_id"])
            async for doc in self._tokens.find({"user_id": ObjectId(user_id), "revoked_at": None}, {"_id": 1})
        ]
        await self._tokens.update_many(
            {"user_id": ObjectId(user_id), "revoked_at": None}, {"$set": {"revoked_at": now}}
        )
        return ids

    async def touch(self, token_id: str, now: datetime, client: str, every_s: float) -> None:
        """Record a use, at most once per `every_s` per token whatever the number of instances."""
        stale = now - timedelta(seconds=every_s)
        await self._tokens.update_one(
            {"_id": ObjectId(token_id), "$or": [{"last_used_at": None}, {"last_used_at": {"$lt": stale}}]},
            {"$set": {"last_used_at": now, "last_used_from": client[:100]}},
        )
