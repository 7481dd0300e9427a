"""Password reset links: one live link per user, stored as the SHA-256 of its secret."""

from __future__ import annotations

from datetime import datetime

import attrs
from bson import ObjectId

from domain.infra.mongo import Database, index

index("password_resets", ("user_id", 1), unique=True, name="one_per_user")
index("password_resets", ("secret_hash", 1), unique=True, name="secret_hash_unique")


@attrs.frozen
class SpentReset:
    user_id: str
    created_by: str | None


class PasswordResetStore:
    def __init__(self, db: Database) -> None:
        self._resets = db["password_resets"]

    async def replace(
        self, *, user_id: str, secret_hash: str, created_by: str | None, now: datetime, expires_at: datetime
    ) -> None:
        """The user's one live link; a link made before it stops working."""
        await self._resets.update_one(
            {"user_id": ObjectId(user_id)},
            {"$set": {"secret_hash": secret_hash, "created_by": ObjectId(created_by) if created_by else None,
                      "created_at": now, "expires_at": expires_at}},
            upsert=True,
        )  # fmt: skip

    async def spend(self, secret_hash: str, now: datetime) -> SpentReset | None:
        """Use a link: atomically gone, so it works once; None if unknown, voided or expired."""
        doc = await self._resets.find_one_and_delete({"secret_hash": secret_hash})
        if doc is None or doc["expires_at"] <= now:
            return None
        created_by = doc.get("created_by")
        return SpentReset(str(doc["user_id"]), str(created_by) if created_by else None)

    async def forget_user(self, user_id: str) -> None:
        await self._resets.delete_one({"user_id": ObjectId(user_id)})
