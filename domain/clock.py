"""Time as LabHub stores it: timezone-aware UTC, millisecond precision (what BSON keeps)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)
