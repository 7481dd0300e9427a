"""The audit log: who changed what in a project, when, and the small fields' old -> new values
(the events and the diff that makes their changes are in models.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import attrs

from domain.core.pagination import Page, clamp_limit
from domain.projects.audit_store import AuditStore
from domain.projects.models import AuditEvent, FieldChange, TargetType


class AuditLog:
    def __init__(self, store: AuditStore) -> None:
        self._store = store

    async def record(
        self,
        *,
        project_id: str,
        actor_id: str,
        action: str,
        target_type: TargetType,
        target_id: str,
        changes: Mapping[str, FieldChange] | None = None,
        at: datetime,
    ) -> None:
        await self._store.append(
            {
                "project_id": project_id,
                "actor_id": actor_id,
                "action": action,
                "target_type": target_type.value,
                "target_id": target_id,
                "changes": {k: attrs.asdict(v) for k, v in (changes or {}).items()},
                "at": at,
            }
        )

    async def page(self, project_id: str, *, limit: int | None, cursor: str | None) -> Page[AuditEvent]:
        events, next_cursor = await self._store.page(project_id, clamp_limit(limit), cursor)
        return Page(events, next_cursor)
