"""Users and global roles (docs/architecture.md, "Access rules"): who may see and change which account."""

from __future__ import annotations

import enum
import re
from datetime import datetime

import attrs

from domain.core.errors import Conflict, Forbidden, InvalidInput, NotFound, field_error


class Role(enum.StrEnum):
    STUDENT = "student"
    RESEARCHER = "researcher"
    GD = "GD"  # group director
    DH = "DH"  # department head


HEAD_ROLES = frozenset({Role.GD, Role.DH})

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MAX_NAME_LENGTH = 200
MAX_EMAIL_LENGTH = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@attrs.frozen
class User:
    id: str
    email: str
    name: str
    role: Role
    active: bool
    created_at: datetime
    updated_at: datetime
    # access tokens issued before this moment no longer work (a password change or reset, a
    # deactivation, "sign out everywhere")
    sessions_valid_after: datetime | None = None
    # the role was given by the identity provider's groups (oidc.group_roles), which may take it
    # back; a head's change of role in LabHub clears it (docs/architecture.md, "Single sign-on")
    role_from_provider: bool = False

    @property
    def is_head(self) -> bool:
        return self.role in HEAD_ROLES


@attrs.frozen
class UserChanges:
    """A change to an account; None leaves a field as is. Self: name, password (with old_password); heads: role, active."""

    name: str | None = None
    password: str | None = None
    old_password: str | None = None
    role: Role | None = None
    active: bool | None = None
    revoke_tokens: bool = False  # with a new password: also revoke every personal access token


@attrs.frozen
class NotificationSettings:
    """Which mail a person gets (reset links are always sent); both on unless turned off."""

    meeting_invitations: bool = True
    job_notices: bool = True


@attrs.frozen
class NotificationSettingsChanges:
    meeting_invitations: bool | None = None
    job_notices: bool | None = None


class PasswordSignIn(enum.StrEnum):
    """Who may sign in with a password (a head's choice; single sign-on is unaffected)."""

    EVERYONE = "everyone"
    HEADS = "heads"


@attrs.frozen
class SignInPolicy:
    password_sign_in: PasswordSignIn = PasswordSignIn.EVERYONE
    updated_at: datetime | None = None
    updated_by: str | None = None


@attrs.frozen
class SignInPolicyChange:
    password_sign_in: PasswordSignIn


def normalize_email(email: str) -> str:
    value = email.strip().lower()
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.match(value):
        raise field_error("$.email", "must be an email address such as ada@lab.example")
    return value


def check_name(name: str) -> str:
    value = " ".join(name.split())
    if not value:
        raise field_error("$.name", "must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise field_error("$.name", f"must be at most {MAX_NAME_LENGTH} characters")
    return value


def check_password(password: str, path: str = "$.password") -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise field_error(path, f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise field_error(path, f"must be at most {MAX_PASSWORD_LENGTH} characters")
    return password


def can_view(actor: User, target_id: str) -> bool:
    return actor.is_head or actor.id == target_id


def check_changes(actor: User, target: User, changes: UserChanges) -> None:
    """Self may change name and password (with the old one); heads may change role and active."""
    is_self = actor.id == target.id
    if not is_self and not actor.is_head:
        raise NotFound("user not found")
    if changes.password is not None and not is_self:
        raise Forbidden("only the account's owner can change its password", code="not_owner")
    if changes.name is not None and not is_self and not actor.is_head:
        raise Forbidden("only the account's owner or a head can rename it")
    if (changes.role is not None or changes.active is not None) and not actor.is_head:
        raise Forbidden("only heads (GD, DH) can change roles or deactivate accounts", code="not_head")
    if is_self and ((changes.role is not None and changes.role not in HEAD_ROLES) or changes.active is False):
        raise Conflict(
            "heads cannot demote or deactivate themselves; ask another head",
            code="self_demotion",
        )
    if changes.password is not None and not changes.old_password:
        raise field_error("$.old_password", "is required to set a new password")
    if changes == UserChanges():
        raise InvalidInput("nothing to change", code="empty_patch")
