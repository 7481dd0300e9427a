"""Meetings: a project's scheduled get-togethers, who is invited, who answered, who came.

Times are timezone-aware and stored in UTC. A cancelled meeting is kept (status `cancelled`) so
calendar feeds can tell subscribers to remove it; `sequence` counts its revisions (RFC 5545).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import urlsplit

import attrs

from domain.core.clock import RANGE_MESSAGE, in_range
from domain.core.errors import InvalidInput, field_error

MAX_TITLE = 300
MAX_LOCATION = 300
MAX_LINK = 2000
MAX_AGENDA = 20_000
MAX_NOTES = 100_000
MAX_ATTENDEES = 500
MAX_ACTION_ITEMS = 200
MAX_ACTION_TEXT = 1000
MAX_DURATION = 24 * 60
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # tabs and newlines are fine in long text

# what an attendee who did not organise the meeting may change: the minutes and the to-dos
ATTENDEE_FIELDS = frozenset({"notes", "action_items"})
# changes worth telling the attendees about (notes and action items are not)
NOTIFIED_FIELDS = frozenset({"title", "starts_at", "duration_minutes", "location", "link", "agenda"})


class MeetingStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class RsvpResponse(enum.StrEnum):
    YES = "yes"
    NO = "no"
    MAYBE = "maybe"


class Presence(enum.StrEnum):
    PRESENT = "present"
    ABSENT = "absent"


@attrs.frozen
class ActionItem:
    text: str
    assignee_id: str | None = None
    due: date | None = None
    done: bool = False


@attrs.frozen
class Rsvp:
    user_id: str
    response: RsvpResponse
    at: datetime


@attrs.frozen
class AttendanceMark:
    user_id: str
    presence: Presence
    recorded_by: str
    at: datetime


@attrs.frozen
class MeetingInput:
    title: str
    starts_at: datetime
    duration_minutes: int = 60
    location: str = ""
    link: str | None = None
    agenda: str = ""
    notes: str = ""
    attendee_ids: list[str] = attrs.field(factory=list)
    action_items: list[ActionItem] = attrs.field(factory=list)


@attrs.frozen
class MeetingChanges:
    """A PATCH of a meeting; None leaves a field as is (attendee_ids and action_items are replaced
    whole). The organiser, leads and heads may change anything; attendees the notes and action items."""

    title: str | None = None
    starts_at: datetime | None = None
    duration_minutes: int | None = None
    location: str | None = None
    link: str | None = None
    agenda: str | None = None
    notes: str | None = None
    attendee_ids: list[str] | None = None
    action_items: list[ActionItem] | None = None


@attrs.frozen
class RsvpInput:
    response: RsvpResponse


@attrs.frozen
class AttendanceInput:
    present_ids: list[str] = attrs.field(factory=list)
    absent_ids: list[str] = attrs.field(factory=list)


@attrs.frozen
class Meeting:
    id: str
    project_id: str
    title: str
    starts_at: datetime
    ends_at: datetime
    duration_minutes: int
    location: str
    link: str | None
    agenda: str
    notes: str
    attendee_ids: list[str]
    action_items: list[ActionItem]
    rsvps: list[Rsvp]
    attendance: list[AttendanceMark]
    status: MeetingStatus
    sequence: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None = None

    def started(self, now: datetime) -> bool:
        return now >= self.starts_at

    def rsvp_of(self, user_id: str) -> RsvpResponse | None:
        return next((r.response for r in self.rsvps if r.user_id == user_id), None)


def _line(value: str, path: str, maximum: int, *, required: bool = False) -> str:
    text = " ".join(value.split())
    if required and not text:
        raise field_error(path, "must not be empty")
    if len(text) > maximum:
        raise field_error(path, f"must be at most {maximum} characters")
    return text


def _long_text(value: str, path: str, maximum: int) -> str:
    if len(value) > maximum:
        raise field_error(path, f"must be at most {maximum} characters")
    if _CONTROL.search(value):
        raise field_error(path, "must not contain control characters")
    return value.strip()


def check_starts_at(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise field_error("$.starts_at", "needs a timezone: end it with Z or an offset such as +01:00")
    moment = value.astimezone(UTC)
    if not EARLIEST <= moment < LATEST:
        raise field_error("$.starts_at", "must be between the years 2000 and 2099")
    return moment.replace(microsecond=0)


def check_duration(value: int) -> int:
    if not 1 <= value <= MAX_DURATION:
        raise field_error("$.duration_minutes", f"must be between 1 and {MAX_DURATION} minutes")
    return value


def check_link(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    link = value.strip()
    parts = urlsplit(link)
    if (
        len(link) > MAX_LINK
        or parts.scheme not in {"http", "https"}
        or not parts.netloc
        or _CONTROL.search(link)
    ):
        raise field_error("$.link", f"must be an http(s) address of at most {MAX_LINK} characters")
    return link


def check_id_list(values: list[str], path: str, maximum: int) -> list[str]:
    for i, value in enumerate(values):
        if not _OBJECT_ID.match(value):
            raise field_error(f"{path}[{i}]", "must be a user id (24 hexadecimal characters)")
    unique = list(dict.fromkeys(values))
    if len(unique) > maximum:
        raise field_error(path, f"at most {maximum} people")
    return unique


def check_action_items(items: list[ActionItem]) -> list[ActionItem]:
    if len(items) > MAX_ACTION_ITEMS:
        raise field_error("$.action_items", f"at most {MAX_ACTION_ITEMS} items")
    checked = []
    for i, item in enumerate(items):
        text = _line(item.text, f"$.action_items[{i}].text", MAX_ACTION_TEXT, required=True)
        if item.assignee_id is not None and not _OBJECT_ID.match(item.assignee_id):
            raise field_error(
                f"$.action_items[{i}].assignee_id", "must be a user id (24 hexadecimal characters)"
            )
        checked.append(attrs.evolve(item, text=text))
    return checked


def checked_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the given meeting fields (creation or a PATCH) and return them cleaned; None is skipped
    except for link, where an empty string removes it."""
    checks: dict[str, Callable[[Any], Any]] = {
        "title": lambda v: _line(v, "$.title", MAX_TITLE, required=True),
        "starts_at": check_starts_at,
        "duration_minutes": check_duration,
        "location": lambda v: _line(v, "$.location", MAX_LOCATION),
        "link": check_link,
        "agenda": lambda v: _long_text(v, "$.agenda", MAX_AGENDA),
        "notes": lambda v: _long_text(v, "$.notes", MAX_NOTES),
        "attendee_ids": lambda v: check_id_list(v, "$.attendee_ids", MAX_ATTENDEES),
        "action_items": check_action_items,
    }
    return {name: checks[name](value) for name, value in values.items() if value is not None}


def people_outside(
    fields: Mapping[str, Any], members: set[str], kept: frozenset[str] | set[str] = frozenset()
) -> None:
    """Attendees and assignees must be project members (or already on the meeting: a member who
    left the project stays on its past meetings)."""
    allowed = members | kept
    for i, user_id in enumerate(fields.get("attendee_ids") or []):
        if user_id not in allowed:
            raise field_error(f"$.attendee_ids[{i}]", "is not a member of this project")
    for i, item in enumerate(fields.get("action_items") or []):
        if item.assignee_id is not None and item.assignee_id not in allowed:
            raise field_error(f"$.action_items[{i}].assignee_id", "is not a member of this project")


def ends_at(starts_at: datetime, duration_minutes: int) -> datetime:
    return starts_at + timedelta(minutes=duration_minutes)


def attendance_changes(body: AttendanceInput, allowed: set[str]) -> dict[str, Presence]:
    """present_ids and absent_ids as one map; a person in both lists, or outside the meeting and the
    project, is refused."""
    present = check_id_list(body.present_ids, "$.present_ids", MAX_ATTENDEES)
    absent = check_id_list(body.absent_ids, "$.absent_ids", MAX_ATTENDEES)
    if not present and not absent:
        raise field_error("$", "give present_ids, absent_ids or both")
    both = set(present) & set(absent)
    if both:
        raise field_error("$.absent_ids", f"{sorted(both)[0]} is also in present_ids")
    marks = dict.fromkeys(present, Presence.PRESENT) | dict.fromkeys(absent, Presence.ABSENT)
    for path, ids in (("$.present_ids", present), ("$.absent_ids", absent)):
        for i, user_id in enumerate(ids):
            if user_id not in allowed:
                raise field_error(f"{path}[{i}]", "is neither invited nor a member of this project")
    return marks


def query_moment(text: str | None, param: str, zone: tzinfo, *, end: bool = False) -> datetime | None:
    """A from/to query value: a date-time (with or without its zone; without, the lab's) or a day
    (its start in the lab's zone; for `to`, the end of that day)."""
    if text is None or not text.strip():
        return None
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day + timedelta(days=1 if end else 0), time(), tzinfo=zone)
        else:
            moment = datetime.fromisoformat(value)
            moment = moment if moment.tzinfo else moment.replace(tzinfo=zone)
        if not in_range(moment):
            raise ValueError(RANGE_MESSAGE)
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"{param}: expected a date (2026-03-01) or a date-time (2026-03-01T14:00:00Z)",
            errors=[{"path": f"query.{param}", "message": "expected a date or an ISO 8601 date-time"}],
        ) from None
    return moment.astimezone(UTC)
