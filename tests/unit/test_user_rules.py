"""Who may change which account, and what an email, name and password must look like."""

from __future__ import annotations

import pytest

from domain.accounts.models import Role, User, UserChanges, check_changes, check_password, normalize_email
from domain.core.clock import utcnow
from domain.core.errors import Conflict, Forbidden, InvalidInput, NotFound


def user(role: Role, user_id: str = "u1") -> User:
    now = utcnow()
    return User(user_id, f"{user_id}@lab.example", "Someone", role, True, now, now)


STUDENT = user(Role.STUDENT, "student")
OTHER = user(Role.RESEARCHER, "other")
HEAD = user(Role.DH, "head")


def test_email_is_normalised_and_checked():
    assert normalize_email("  Ada@Lab.Example ") == "ada@lab.example"
    for bad in ["", "ada", "ada@lab", "a b@lab.example", "@lab.example", "a@@lab.example"]:
        with pytest.raises(InvalidInput):
            normalize_email(bad)


def test_password_length():
    check_password("0123456789")
    with pytest.raises(InvalidInput):
        check_password("012345678")
    with pytest.raises(InvalidInput):
        check_password("x" * 1025)


def test_self_can_rename_and_change_password_with_the_old_one():
    check_changes(STUDENT, STUDENT, UserChanges(name="New"))
    check_changes(STUDENT, STUDENT, UserChanges(password="a" * 12, old_password="b" * 12))
    with pytest.raises(InvalidInput):
        check_changes(STUDENT, STUDENT, UserChanges(password="a" * 12))


def test_non_heads_cannot_touch_roles_or_other_accounts():
    with pytest.raises(Forbidden):
        check_changes(STUDENT, STUDENT, UserChanges(role=Role.DH))
    with pytest.raises(Forbidden):
        check_changes(STUDENT, STUDENT, UserChanges(active=False))
    with pytest.raises(NotFound):
        check_changes(STUDENT, OTHER, UserChanges(name="x"))


def test_heads_manage_others_but_not_their_passwords():
    check_changes(HEAD, STUDENT, UserChanges(role=Role.RESEARCHER, active=False, name="x"))
    with pytest.raises(Forbidden):
        check_changes(HEAD, STUDENT, UserChanges(password="a" * 12, old_password="b" * 12))


def test_heads_cannot_lock_themselves_out():
    with pytest.raises(Conflict):
        check_changes(HEAD, HEAD, UserChanges(active=False))
    with pytest.raises(Conflict):
        check_changes(HEAD, HEAD, UserChanges(role=Role.STUDENT))
    check_changes(HEAD, HEAD, UserChanges(role=Role.GD))  # still a head


def test_empty_change_is_refused():
    with pytest.raises(InvalidInput):
        check_changes(STUDENT, STUDENT, UserChanges())
