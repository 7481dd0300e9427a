"""How long a year's engagement summary takes on a busy project, against the plain way to count it.

A project with S students, a year of logged time (one entry per student and day), R records,
document versions, ingestions and weekly meetings with attendance, all spread over the year, with
the per-person-and-day counts the services keep as they write. LabHub
(`EngagementService.summary`, group=week) reads those counts; the baseline, measured in the same
run against the same database, reads every record, version and ingestion (only the two fields it
needs) and counts them in Python. Then the price on the write side: one counted write
(`ActivityLog.count`, an upsert) against inserting one record.

    .venv/bin/python bench/bench_engagement.py --students 20 --records 100000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bson import ObjectId  # noqa: E402
from harness import labhub_server  # noqa: E402

from domain.accounts.models import Role  # noqa: E402
from domain.activity.models import Signal  # noqa: E402
from domain.activity.service import ActivityLog  # noqa: E402
from domain.activity.store import ActivityStore  # noqa: E402
from domain.engagement.models import Group  # noqa: E402
from domain.projects.models import ProjectRole  # noqa: E402
from handlers.keys import ACCOUNTS, ENGAGEMENT, MONGO, PROJECTS  # noqa: E402

DAYS = 365


async def fill(db, project_id: ObjectId, students: list[ObjectId], lead: ObjectId, records: int) -> int:
    rng = random.Random(7)
    first = datetime.now(UTC) - timedelta(days=DAYS - 1)

    def moment() -> datetime:
        return first + timedelta(seconds=rng.randrange((DAYS - 1) * 86400))

    today = datetime.now(UTC).date()
    entries = [
        {"project_id": project_id, "student_id": s, "date": (today - timedelta(days=d)).isoformat(),
         "minutes": rng.randrange(15, 240), "activity": rng.choice(["lab_work", "analysis", "writing"]),
         "notes": "", "created_by": s, "created_at": first, "updated_at": first}
        for s in students for d in range(DAYS)
    ]  # fmt: skip
    await db["engagement"].insert_many(entries)
    tallies: Counter[tuple[ObjectId, str, str]] = Counter()  # what the services count as they write
    for collection, count, extra, signal in (
        ("records", records, {"kind": "run", "title": "r", "data": {}, "tags": []}, "records"),
        ("document_versions", records // 20, {"version": 1}, "uploads"),
        ("ingestions", records // 50, {"file": {"name": "f.csv", "sha256": "0"}}, "ingestions"),
    ):
        docs = []
        for i in range(count):
            who, when = rng.choice(students), moment()
            docs.append({"project_id": project_id, "created_by": who, "created_at": when, **extra,
                         "document_id": ObjectId(), "batch_id": str(i)})  # fmt: skip
            tallies[(who, when.date().isoformat(), signal)] += 1
            if len(docs) == 10_000:
                await db[collection].insert_many(docs)
                docs = []
        if docs:
            await db[collection].insert_many(docs)
    days: dict[tuple[ObjectId, str], dict[str, int]] = {}
    for (who, day, signal), n in tallies.items():
        days.setdefault((who, day), {})[signal] = n
    await db["activity_days"].insert_many(
        [
            {"project_id": project_id, "user_id": who, "day": day, **counts}
            for (who, day), counts in days.items()
        ]
    )
    meetings = []
    for week in range(DAYS // 7):
        starts = first + timedelta(days=7 * week, hours=10)
        attendance = {str(s): {"presence": rng.choice(["present", "present", "absent"]), "recorded_by": lead,
                               "at": starts} for s in students}  # fmt: skip
        meetings.append({"project_id": project_id, "title": "weekly", "starts_at": starts,
                         "ends_at": starts + timedelta(hours=1), "duration_minutes": 60, "location": "", "link": None,
                         "agenda": "", "notes": "", "attendee_ids": students, "action_items": [], "rsvps": {},
                         "attendance": attendance, "status": "scheduled", "sequence": 0, "created_by": lead,
                         "created_at": first, "updated_at": first, "cancelled_at": None})  # fmt: skip
    await db["meetings"].insert_many(meetings)
    return len(entries)


async def baseline(db, project_id: ObjectId, start: date, end: date) -> int:
    """Read every document of the year (two fields) and count per person and day in Python."""
    counts: Counter[tuple[str, date, str]] = Counter()
    since = datetime.combine(start, datetime.min.time(), UTC)
    until = datetime.combine(end + timedelta(days=1), datetime.min.time(), UTC)
    for collection in ("records", "document_versions", "ingestions"):
        cursor = db[collection].find(
            {"project_id": project_id, "created_at": {"$gte": since, "$lt": until}},
            {"created_by": 1, "created_at": 1},
        )
        async for doc in cursor.batch_size(5000):
            counts[(str(doc["created_by"]), doc["created_at"].date(), collection)] += 1
    minutes: Counter[tuple[str, str]] = Counter()
    async for doc in (
        db["engagement"]
        .find(
            {"project_id": project_id, "date": {"$gte": start.isoformat(), "$lte": end.isoformat()}},
            {"student_id": 1, "date": 1, "minutes": 1},
        )
        .batch_size(5000)
    ):
        minutes[(str(doc["student_id"]), doc["date"])] += doc["minutes"]
    async for doc in db["meetings"].find(
        {"project_id": project_id, "starts_at": {"$gte": since, "$lt": until}}
    ):
        for user, mark in doc["attendance"].items():
            counts[(user, doc["starts_at"].date(), mark["presence"])] += 1
    return len(counts) + len(minutes)


async def run(students: int, records: int, rounds: int, data_dir: Path) -> None:
    async with labhub_server(data_dir) as server:
        app = server.app
        db = app[MONGO]
        lead = await app[ACCOUNTS].create(email="lead@lab.example", password="bench password", name="Lead",
                                          role=Role.RESEARCHER)  # fmt: skip
        project = await app[PROJECTS].create(lead, name="busy", description="")
        ids = []
        for i in range(students):
            user = await app[ACCOUNTS].create(email=f"s{i}@lab.example", password="bench password", name=f"S{i:02d}",
                                              role=Role.STUDENT)  # fmt: skip
            await app[PROJECTS].add_member(lead, project.id, user.id, ProjectRole.MEMBER)
            ids.append(ObjectId(user.id))
        started = time.perf_counter()
        entries = await fill(db, ObjectId(project.id), ids, ObjectId(lead.id), records)
        print(f"filled in {time.perf_counter() - started:.1f} s: {students} students, {entries} entries, "
              f"{records} records, {records // 20} uploads, {records // 50} ingestions, {DAYS // 7} meetings")  # fmt: skip
        end = datetime.now(UTC).date()
        start = end - timedelta(days=DAYS - 1)
        ours, theirs = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            result = await app[ENGAGEMENT].summary(lead, project.id, student_id=None, start=start, end=end,
                                                   group=Group.WEEK)  # fmt: skip
            ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await baseline(db, ObjectId(project.id), start, end)
            theirs.append(time.perf_counter() - t0)
        counted = sum(s.records for s in result.students)
        assert counted == records, (counted, records)
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"summary of a year by week, {len(result.rows)} rows (median of {rounds}):")
        print(f"  labhub   {a * 1000:8.0f} ms")
        print(f"  baseline {b * 1000:8.0f} ms  (read every document's two fields, count in Python)")
        print(f"  labhub/baseline: {a / b:.2f}x")
        activity = ActivityLog(ActivityStore(db), ZoneInfo("UTC"))
        counted_ms, insert_ms = [], []
        for _ in range(300):
            t0 = time.perf_counter()
            await activity.count(project.id, lead.id, Signal.RECORD, datetime.now(UTC))
            counted_ms.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await db["bench_inserts"].insert_one(
                {"project_id": ObjectId(project.id), "created_at": datetime.now(UTC)}
            )
            insert_ms.append(time.perf_counter() - t0)
        c, i = statistics.median(counted_ms), statistics.median(insert_ms)
        print(
            f"write side (median of 300): count {c * 1000:.2f} ms vs insert_one {i * 1000:.2f} ms: {c / i:.2f}x"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="labhub-engagement-bench-") as tmp:
        asyncio.run(run(args.students, args.records, args.rounds, Path(tmp)))
