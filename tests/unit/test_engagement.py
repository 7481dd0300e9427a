"""Engagement periods and the summary's arithmetic, without a server."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from domain.activity.models import Signal
from domain.core.errors import InvalidInput
from domain.engagement.models import (
    Activity,
    Group,
    check_day,
    checked_fields,
    next_period,
    period_label,
    period_start,
    periods,
    summarize,
)


def test_weeks_are_iso_weeks_starting_monday():
    assert period_start(date(2026, 11, 28), Group.WEEK) == date(2026, 11, 23)  # a Saturday
    assert period_start(date(2026, 11, 23), Group.WEEK) == date(2026, 11, 23)
    # the last days of 2026 and the first of 2027 are in ISO week 2026-W53
    assert period_label(period_start(date(2027, 1, 1), Group.WEEK), Group.WEEK) == "2026-W53"
    assert period_label(period_start(date(2025, 12, 31), Group.WEEK), Group.WEEK) == "2026-W01"


def test_months_roll_over_december():
    assert period_start(date(2026, 12, 31), Group.MONTH) == date(2026, 12, 1)
    assert next_period(date(2026, 12, 1), Group.MONTH) == date(2027, 1, 1)
    assert period_label(date(2027, 1, 1), Group.MONTH) == "2027-01"
    assert periods(date(2026, 11, 30), date(2027, 2, 1), Group.MONTH) == [
        date(2026, 11, 1), date(2026, 12, 1), date(2027, 1, 1), date(2027, 2, 1),
    ]  # fmt: skip


def test_too_many_periods_are_refused():
    with pytest.raises(InvalidInput) as caught:
        periods(date(2000, 1, 1), date(2026, 1, 1), Group.WEEK)
    assert caught.value.errors[0]["path"] == "$.from"
    assert len(periods(date(2000, 1, 1), date(2026, 1, 1), Group.MONTH)) == 26 * 12 + 1


def test_days_and_fields_are_checked():
    today = date(2026, 11, 28)
    assert check_day(today, today) == today
    with pytest.raises(InvalidInput):
        check_day(today + timedelta(days=1), today)
    fields = checked_fields({"minutes": 30, "activity": "reading", "notes": " x ", "date": None}, today)
    assert fields == {"minutes": 30, "activity": Activity.READING, "notes": "x"}
    for bad in ({"minutes": 0}, {"minutes": 1441}, {"notes": "n" * 2001}):
        with pytest.raises(InvalidInput):
            checked_fields(bad, today)


def test_summarize_adds_up_per_student_and_period():
    start, end = date(2026, 11, 2), date(2026, 11, 22)  # three whole weeks, Monday to Sunday
    students = {"a": "Ada", "b": "Bo"}
    entries = [
        ("a", date(2026, 11, 2), 60, Activity.LAB_WORK),
        ("a", date(2026, 11, 8), 30, Activity.WRITING),  # Sunday: still the first week
        ("a", date(2026, 11, 20), 15, Activity.LAB_WORK),
        ("a", date(2026, 10, 30), 999, Activity.OTHER),  # before the range
        ("z", date(2026, 11, 3), 50, Activity.OTHER),  # not one of the students asked for
    ]
    signals = [
        ("a", date(2026, 11, 10), Signal.RECORD, 2),
        ("b", date(2026, 11, 21), Signal.MEETING_MISSED, 1),
        ("b", date(2026, 11, 12), Signal.MEETING_ATTENDED, 1),
        ("b", date(2026, 11, 13), Signal.UPLOAD, 1),
    ]
    totals, rows = summarize(
        group=Group.WEEK, start=start, end=end, students=students, entries=entries, signals=signals
    )
    ada, bo = totals
    assert (ada.student_name, ada.minutes, ada.records, ada.last_active) == (
        "Ada",
        105,
        2,
        date(2026, 11, 20),
    )
    assert ada.minutes_by_activity["lab_work"] == 75
    assert ada.minutes_by_activity["writing"] == 30
    assert (bo.minutes, bo.meetings_attended, bo.meetings_missed, bo.uploads) == (0, 1, 1, 1)
    assert bo.last_active == date(2026, 11, 13)  # the missed meeting later on is not activity
    assert [(r.student_id, r.period, r.minutes, r.records) for r in rows] == [
        ("a", "2026-W45", 90, 0), ("a", "2026-W46", 0, 2), ("a", "2026-W47", 15, 0),
        ("b", "2026-W45", 0, 0), ("b", "2026-W46", 0, 0), ("b", "2026-W47", 0, 0),
    ]  # fmt: skip
    assert rows[0].last_active == date(2026, 11, 8)
    assert rows[1].last_active == date(2026, 11, 10)
    assert rows[5].meetings_missed == 1
    assert rows[5].last_active is None
    assert (rows[2].period_start, rows[2].period_end) == (date(2026, 11, 16), date(2026, 11, 22))
