"""What other areas may know of accounts: people by id or email, their notification settings, a
search among them, and the account audit trail. Read-only on the accounts themselves, and no
rule about who may see whom: each area decides that for its own callers (projects: member
candidates; meetings: attendees) before it asks here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.accounts.audit import AccountAuditStore
from domain.accounts.models import NotificationSettings, User
from domain.accounts.store import UserStore


class People:
    def __init__(self, users: UserStore, audit: AccountAuditStore) -> None:
        self._users = users
        self._audit = audit

    async def get(self, user_id: str) -> User | None:
        return await self._users.get(user_id)

    async def get_many(self, user_ids: list[str]) -> dict[str, User]:
        return await self._users.get_many(user_ids)

    async def by_email(self, email: str) -> User | None:
        """Active or not (the caller says what a deactivated account means to it)."""
        found = await self._users.credentials(email)
        return found[0] if found else None

    async def active_by_email(self, email: str) -> User | None:
        return await self._users.active_by_email(email)

    async def search_among(self, user_ids: list[str], q: str) -> set[str]:
        return await self._users.search_among(user_ids, q)

    async def search_outside(self, user_ids: list[str], q: str, limit: int) -> list[User]:
        return await self._users.search_outside(user_ids, q, limit)

    async def notification_settings(self, user_ids: list[str]) -> dict[str, NotificationSettings]:
        return await self._users.notification_settings(user_ids)

    async def record(
        self, *, user_id: str, actor_id: str | None, action: str, target_type: str, target_id: str,
        at: datetime, details: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """An entry in the account audit trail (actor_id None: the command line)."""
        await self._audit.record(
            user_id=user_id, actor_id=actor_id, action=action, target_type=target_type, target_id=target_id,
            at=at, details=details,
        )  # fmt: skip
