"""Time as LabHub stores it: timezone-aware UTC, millisecond precision (what BSON keeps)."""

from __future__ import annotations

from datetime import UTC, date, datetime

# the years a date or time from a client may fall in: wide for a lab, and far enough from Python's
# limits (years 1 and 9999) that a day added or a time zone applied can never overflow
YEARS = (1900, 2999)
RANGE_MESSAGE = f"must lie between the years {YEARS[0]} and {YEARS[1]}"


def utcnow() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def in_range(value: date) -> bool:
    """Whether a client's date or date-time lies in YEARS (datetime is a date too)."""
    return YEARS[0] <= value.year <= YEARS[1]
