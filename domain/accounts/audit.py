"""The account audit trail: who made or revoked a credential or a reset link for which account."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId

from domain.infra.mongo import Database, index, insert_once

index("account_audit", ("user_id", 1), ("at", -1), name="user_newest")


class AccountAuditStore:
    def __init__(self, db: Database) -> None:
        self._audit = db["account_audit"]

    async def record(
        self, *, user_id: str, actor_id: str | None, action: str, target_type: str, target_id: str,
        at: datetime, details: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """actor_id None: done from the command line on the server's machine."""
        await insert_once(self._audit,
            {"user_id": ObjectId(user_id), "actor_id": ObjectId(actor_id) if actor_id else None,
             "action": action, "target_type": target_type, "target_id": target_id, "details": details or {},
             "at": at}
        )  # fmt: skip
