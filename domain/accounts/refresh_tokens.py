"""Refresh tokens: stored hashed, grouped in families so that reuse revokes the whole family."""

from __future__ import annotations

from datetime import datetime

import attrs
from bson import ObjectId

from domain.infra.mongo import Database, index, insert_once

index("refresh_tokens", ("token_hash", 1), unique=True, name="token_hash_unique")
index("refresh_tokens", ("family_id", 1), name="family")
index("refresh_tokens", ("user_id", 1), name="user")
# MongoDB drops expired tokens by itself; stores without TTL support just keep them (they are refused)
index("refresh_tokens", ("expires_at", 1), expireAfterSeconds=0, name="expiry_ttl")


@attrs.frozen
class RefreshTokenState:
    user_id: str
    family_id: str
    expires_at: datetime
    used: bool
    revoked: bool


class RefreshTokenStore:
    def __init__(self, db: Database) -> None:
        self._tokens = db["refresh_tokens"]

    async def insert(
        self, *, token_hash: str, user_id: str, family_id: str, now: datetime, expires_at: datetime
    ) -> None:
        await insert_once(self._tokens,
            {
                "token_hash": token_hash,
                "user_id": ObjectId(user_id),
                "family_id": family_id,
                "created_at": now,
                "expires_at": expires_at,
                "used_at": None,
                "revoked_at": None,
            }
        )

    async def spend(self, token_hash: str, now: datetime) -> RefreshTokenState | None:
        """Mark a live token used, atomically; None if it is unknown, spent, revoked or expired."""
        doc = await self._tokens.find_one_and_update(
            {"token_hash": token_hash, "used_at": None, "revoked_at": None, "expires_at": {"$gt": now}},
            {"$set": {"used_at": now}},
        )
        return self._state(doc) if doc else None

    async def find(self, token_hash: str) -> RefreshTokenState | None:
        doc = await self._tokens.find_one({"token_hash": token_hash})
        return self._state(doc) if doc else None

    async def revoke_family(self, family_id: str, now: datetime) -> None:
        await self._tokens.update_many(
            {"family_id": family_id, "revoked_at": None}, {"$set": {"revoked_at": now}}
        )

    async def revoke_user(self, user_id: str, now: datetime) -> None:
        await self._tokens.update_many(
            {"user_id": ObjectId(user_id), "revoked_at": None}, {"$set": {"revoked_at": now}}
        )

    @staticmethod
    def _state(doc: dict[str, object]) -> RefreshTokenState:
        expires_at = doc["expires_at"]
        assert isinstance(expires_at, datetime)
        return RefreshTokenState(
            user_id=str(doc["user_id"]),
            family_id=str(doc["family_id"]),
            expires_at=expires_at,
            used=doc.get("used_at") is not None,
            revoked=doc.get("revoked_at") is not None,
        )
