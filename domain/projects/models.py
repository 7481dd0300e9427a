"""Projects and membership (docs/architecture.md, "Access rules"): the one place that decides who sees and changes what."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs

from domain.accounts.models import User
from domain.core.errors import Conflict, Forbidden, NotFound, field_error

MAX_PROJECT_NAME = 200
MAX_DESCRIPTION = 5000


class ProjectRole(enum.StrEnum):
    LEAD = "lead"
    MEMBER = "member"
    VIEWER = "viewer"


class ProjectStatus(enum.StrEnum):
    ACTIVE = "active"
    ARCHIVED = "archived"


class Need(enum.Enum):
    """What an operation needs from the caller's place in the project."""

    READ = "read"  # any member, heads
    WRITE = "write"  # members and leads (not viewers), heads
    MANAGE = "manage"  # leads, heads


@attrs.frozen
class Member:
    user_id: str
    role: ProjectRole
    added_at: datetime


@attrs.frozen
class Project:
    id: str
    name: str
    description: str
    status: ProjectStatus
    members: list[Member]
    created_by: str
    created_at: datetime
    updated_at: datetime
    rev: int = 0

    def role_of(self, user_id: str) -> ProjectRole | None:
        return next((m.role for m in self.members if m.user_id == user_id), None)


@attrs.frozen
class ProjectName:
    id: str
    name: str
    created_at: datetime


@attrs.frozen
class ProjectChanges:
    """A PATCH of a project; None leaves a field as is. status=active un-archives."""

    name: str | None = None
    description: str | None = None
    status: ProjectStatus | None = None


@attrs.frozen
class MemberCandidate:
    """Someone a lead may add to the project (found by name or email)."""

    id: str
    name: str
    email: str


@attrs.frozen
class MemberView:
    """A member with the user's name and email, as the members list shows it."""

    user_id: str
    name: str
    email: str
    role: ProjectRole
    added_at: datetime


def check_access(actor: User, project: Project, need: Need, *, what: str = "project") -> None:
    """Raise unless actor may do `need` in project; outsiders get NotFound, never a hint."""
    if actor.is_head:
        role: ProjectRole | None = ProjectRole.LEAD
    else:
        role = project.role_of(actor.id)
    if role is None:
        raise NotFound(f"{what} not found")
    if need is Need.WRITE and role is ProjectRole.VIEWER:
        raise Forbidden("viewers can read this project but not change it", code="viewer_read_only")
    if need is Need.MANAGE and role is not ProjectRole.LEAD:
        raise Forbidden("only the project's leads and heads can do this", code="not_lead")


def manages(actor: User, project: Project) -> bool:
    """Whether actor leads this project, as its leads and every head do."""
    return actor.is_head or project.role_of(actor.id) is ProjectRole.LEAD


def check_owner_or_lead(actor: User, project: Project, owner_id: str, who: str) -> None:
    """Changing someone's document, record, job or dataset takes its owner, a lead or a head."""
    if owner_id != actor.id and not manages(actor, project):
        raise Forbidden(f"only {who}, the project's leads and heads can do this", code="not_owner")


def check_active(project: Project) -> None:
    if project.status is ProjectStatus.ARCHIVED:
        raise Conflict("the project is archived; un-archive it to make changes", code="project_archived")


def check_project_name(name: str) -> str:
    value = " ".join(name.split())
    if not value:
        raise field_error("$.name", "must not be empty")
    if len(value) > MAX_PROJECT_NAME:
        raise field_error("$.name", f"must be at most {MAX_PROJECT_NAME} characters")
    return value


def check_description(description: str) -> str:
    if len(description) > MAX_DESCRIPTION:
        raise field_error("$.description", f"must be at most {MAX_DESCRIPTION} characters")
    return description.strip()


def _leads(members: list[Member]) -> int:
    return sum(1 for m in members if m.role is ProjectRole.LEAD)


def with_member_added(members: list[Member], user_id: str, role: ProjectRole, now: datetime) -> list[Member]:
    if any(m.user_id == user_id for m in members):
        raise Conflict("this user is already a member of the project", code="already_member")
    return [*members, Member(user_id, role, now)]


def with_role_changed(members: list[Member], user_id: str, role: ProjectRole) -> list[Member]:
    current = next((m for m in members if m.user_id == user_id), None)
    if current is None:
        raise NotFound("member not found")
    if current.role is ProjectRole.LEAD and role is not ProjectRole.LEAD and _leads(members) == 1:
        raise Conflict(
            "the project's last lead cannot be demoted; make someone else lead first", code="last_lead"
        )
    return [attrs.evolve(m, role=role) if m.user_id == user_id else m for m in members]


def without_member(members: list[Member], user_id: str) -> list[Member]:
    current = next((m for m in members if m.user_id == user_id), None)
    if current is None:
        raise NotFound("member not found")
    if current.role is ProjectRole.LEAD and _leads(members) == 1:
        raise Conflict(
            "the project's last lead cannot be removed; make someone else lead first", code="last_lead"
        )
    return [m for m in members if m.user_id != user_id]


# -- the audit log's events ----------------------------------------------------------------------

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
