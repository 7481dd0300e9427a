"""What LabHub counts on its own of what people do in a project (no one logs it by hand)."""

from __future__ import annotations

import enum
from datetime import date

import attrs


class Signal(enum.StrEnum):
    """What LabHub counts on its own, attributed to a person and a day."""

    MEETING_ATTENDED = "meetings_attended"
    MEETING_MISSED = "meetings_missed"
    UPLOAD = "uploads"
    INGESTION = "ingestions"
    RECORD = "records"


COUNTED = (Signal.UPLOAD, Signal.INGESTION, Signal.RECORD)  # counted as they happen


@attrs.frozen
class Count:
    """n times `signal` by one person on one day (in the lab's time zone)."""

    user_id: str
    day: date
    signal: Signal
    n: int
