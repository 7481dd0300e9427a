"""The audit log: who changed what in a project, when, and the small fields' old -> new values."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from domain.core.pagination import Page, clamp_limit

if TYPE_CHECKING:  # the store builds AuditEvents, so it imports this module
    from domain.projects.audit_store import AuditStore

MAX_SMALL_TEXT = 200  # longer texts, lists and objects are recorded as changed, without values


class TargetType(enum.StrEnum):
    PROJECT = "project"
    MEMBER = "member"
    DOCUMENT = "document"
    RECORD = "record"
    MEETING = "meeting"
    ENGAGEMENT = "engagement"


@attrs.frozen
class FieldChange:
    old: Any = None
    new: Any = None
    values_omitted: bool = False


@attrs.frozen
class AuditEvent:
    id: str
    project_id: str
    actor_id: str
    action: str
    target_type: TargetType
    target_id: str
    changes: dict[str, FieldChange]
    at: datetime


def _is_small(value: object) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_SMALL_TEXT
    return value is None or isinstance(value, bool | int | float | datetime | enum.Enum)


def _plain(value: object) -> object:
    return value.value if isinstance(value, enum.Enum) else value


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, FieldChange]:
    """The fields whose value differs; values are kept only when both sides are small."""
    changes = {}
    for field in sorted(set(before) | set(after)):
        old, new = _plain(before.get(field)), _plain(after.get(field))
        if old == new:
            continue
        if _is_small(old) and _is_small(new):
            changes[field] = FieldChange(old=old, new=new)
        else:
            changes[field] = FieldChange(values_omitted=True)
    return changes


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
