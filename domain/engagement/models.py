"""Student engagement: time students log, and the activity LabHub already knows about, summed per
student and week or month.

Logged minutes are what a student says they spent; meetings attended and missed, uploads,
ingestions and records created are counted from what happened, each in its own column and never
added to the minutes. Days are calendar days in the lab's time zone.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Any, Literal

import attrs

from domain.activity.models import Signal
from domain.core.errors import field_error

MINUTES_PER_DAY = 24 * 60
MAX_NOTES = 2000
EARLIEST = date(2000, 1, 1)
MAX_PERIODS = 1000  # rows per student in one summary: about 19 years of weeks


class Activity(enum.StrEnum):
    LAB_WORK = "lab_work"
    ANALYSIS = "analysis"
    WRITING = "writing"
    READING = "reading"
    MEETING = "meeting"
    OTHER = "other"


class Group(enum.StrEnum):
    WEEK = "week"
    MONTH = "month"


@attrs.frozen
class EntryInput:
    """student_id: whose time this is (default: yours; leads and heads may log for a member)."""

    date: date
    minutes: int
    activity: Activity
    notes: str = ""
    student_id: str | None = None


@attrs.frozen
class EntryChanges:
    """A PATCH of an entry (the student, leads, heads); None leaves a field as is."""

    date: date | None = None
    minutes: int | None = None
    activity: Activity | None = None
    notes: str | None = None


@attrs.frozen
class Entry:
    id: str
    project_id: str
    student_id: str
    date: date
    minutes: int
    activity: Activity
    notes: str
    created_by: str
    created_at: datetime
    updated_at: datetime


@attrs.frozen
class StudentTotals:
    """A student's logged minutes and what LabHub saw them do (counts), over a range of days."""

    student_id: str
    student_name: str
    minutes: int
    minutes_by_activity: dict[str, int]
    meetings_attended: int
    meetings_missed: int
    uploads: int
    ingestions: int
    records: int
    last_active: date | None


@attrs.frozen
class SummaryRow(StudentTotals):
    """The same for one student in one period."""

    period: str
    period_start: date
    period_end: date


@attrs.frozen
class EngagementPlotInput:
    """A plot of logged minutes over time, per student, stacked by activity. Students get their own."""

    student_id: str | None = None
    from_: date | None = None
    to: date | None = None
    group: Group = Group.WEEK
    title: str = ""
    width: int = 1000
    height: int = 600
    dpi: int = 100
    format: Literal["png", "svg"] = "png"


@attrs.frozen
class Summary:
    project_id: str
    group: Group
    start: date
    end: date
    timezone: str
    students: list[StudentTotals]
    rows: list[SummaryRow]


# -- validation ------------------------------------------------------------------------------------


def check_day(value: date, today: date, path: str = "$.date") -> date:
    if value > today:
        raise field_error(path, f"cannot be in the future (today is {today.isoformat()})")
    if value < EARLIEST:
        raise field_error(path, f"must be {EARLIEST.isoformat()} or later")
    return value


def check_minutes(value: int) -> int:
    if not 1 <= value <= MINUTES_PER_DAY:
        raise field_error("$.minutes", f"must be between 1 and {MINUTES_PER_DAY}")
    return value


def check_notes(value: str) -> str:
    if len(value) > MAX_NOTES:
        raise field_error("$.notes", f"must be at most {MAX_NOTES} characters")
    return value.strip()


def checked_fields(values: Mapping[str, Any], today: date) -> dict[str, Any]:
    checks: dict[str, Callable[[Any], Any]] = {
        "date": lambda v: check_day(v, today),
        "minutes": check_minutes,
        "activity": Activity,
        "notes": check_notes,
    }
    return {
        name: checks[name](value) for name, value in values.items() if value is not None and name in checks
    }


# -- periods ---------------------------------------------------------------------------------------


def period_start(day: date, group: Group) -> date:
    return day - timedelta(days=day.weekday()) if group is Group.WEEK else day.replace(day=1)


def next_period(start: date, group: Group) -> date:
    if group is Group.WEEK:
        return start + timedelta(days=7)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1)


def period_label(start: date, group: Group) -> str:
    if group is Group.WEEK:
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{start.year}-{start.month:02d}"


def periods(start: date, end: date, group: Group) -> list[date]:
    """The first day of every period from the one holding start to the one holding end."""
    first = period_start(start, group)
    found = [first]
    while (following := next_period(found[-1], group)) <= end:
        found.append(following)
        if len(found) > MAX_PERIODS:
            raise field_error(
                "$.from",
                f"the range spans more than {MAX_PERIODS} {group.value}s; narrow it with from and to",
            )
    return found


# -- the summary -----------------------------------------------------------------------------------


@attrs.define
class _Tally:
    minutes: dict[Activity, int] = attrs.field(factory=lambda: dict.fromkeys(Activity, 0))
    counts: dict[Signal, int] = attrs.field(factory=lambda: dict.fromkeys(Signal, 0))
    last_active: date | None = None

    def seen(self, day: date) -> None:
        self.last_active = day if self.last_active is None else max(self.last_active, day)

    def fields(self) -> dict[str, Any]:
        return {
            "minutes": sum(self.minutes.values()),
            "minutes_by_activity": {a.value: m for a, m in self.minutes.items()},
            **{s.value: n for s, n in self.counts.items()},
            "last_active": self.last_active,
        }


def summarize(
    *,
    group: Group,
    start: date,
    end: date,
    students: Mapping[str, str],
    entries: Iterable[tuple[str, date, int, Activity]],
    signals: Iterable[tuple[str, date, Signal, int]],
) -> tuple[list[StudentTotals], list[SummaryRow]]:
    """Per student (id -> name, in that order) and period: logged minutes by activity, the counted
    signals ((person, day, signal, how many)), and the last day with any activity (a missed meeting
    is not activity)."""
    starts = periods(start, end, group)
    tallies = {(s, p): _Tally() for s in students for p in starts}
    totals = {s: _Tally() for s in students}

    def tally(student: str, day: date) -> list[_Tally]:
        key = (student, period_start(day, group))
        if key not in tallies or not start <= day <= end:
            return []
        return [tallies[key], totals[student]]

    for student, day, minutes, activity in entries:
        for t in tally(student, day):
            t.minutes[Activity(activity)] += minutes
            t.seen(day)
    for student, day, signal, n in signals:
        for t in tally(student, day):
            t.counts[signal] += n
            if signal is not Signal.MEETING_MISSED:
                t.seen(day)
    rows = [
        SummaryRow(
            student_id=s, student_name=students[s], period=period_label(p, group), period_start=p,
            period_end=next_period(p, group) - timedelta(days=1), **tallies[(s, p)].fields(),
        )
        for s in students
        for p in starts
    ]  # fmt: skip
    return [
        StudentTotals(student_id=s, student_name=students[s], **totals[s].fields()) for s in students
    ], rows
