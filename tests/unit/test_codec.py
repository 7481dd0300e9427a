"""JSON responses (orjson, datetimes written by it) read exactly as json.dumps of to_json would."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import attrs

from domain.jobs.models import JobStatus
from handlers.codec import json_response, to_json


@attrs.frozen
class Sample:
    when: dt.datetime
    day: dt.date
    at: list[dt.datetime]
    note: str = "é – ✓ \u2028"
    ratio: float = 0.1
    big: int = 2**63 - 1
    nothing: None = None
    status: JobStatus = JobStatus.RUNNING
    statuses: tuple[JobStatus, ...] = (JobStatus.QUEUED, JobStatus.FAILED)


def test_responses_match_json_dumps_of_to_json():
    utc = dt.UTC
    for when in [
        dt.datetime(2026, 12, 1, 10, 40, 48, 863017, tzinfo=utc),
        dt.datetime(2026, 12, 1, 10, 40, 48, tzinfo=utc),  # no fraction: none written
        dt.datetime(2026, 12, 1, 10, 40, 48, 1000, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
        dt.datetime(2026, 3, 29, 2, 30, tzinfo=ZoneInfo("Europe/Berlin")),
        dt.datetime(2026, 12, 1, 10, 40, 48, 5),  # naive (Excel times): no offset
    ]:
        sample = Sample(when=when, day=when.date(), at=[when, when.replace(microsecond=0)])
        response = json_response(sample)
        assert response.content_type == "application/json"
        assert response.charset == "utf-8"
        assert json.loads(response.body) == json.loads(json.dumps(to_json(sample), ensure_ascii=False))
