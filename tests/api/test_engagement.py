"""Student engagement: logging time, who sees and corrects what, the summary's arithmetic on known
data (with meetings, uploads, ingestions and records counted), CSV, and the plot job."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from bson import ObjectId

from handlers.keys import MONGO
from server import create_app
from tests.conftest import file_form, job_settings, problem, wait_until


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    return await aiohttp_client(create_app(job_settings(services, tmp_path)))


def today() -> date:
    return datetime.now(UTC).date()  # the lab's time zone is UTC in the test settings


async def log(client, team, account=None, *, expect: int = 201, **fields: Any) -> dict[str, Any]:
    body = {"date": today().isoformat(), "minutes": 30, "activity": "lab_work", **fields}
    response = await client.post(
        f"/api/projects/{team.project_id}/engagement", json=body, headers=(account or team.member).headers
    )
    assert response.status == expect, await response.text()
    return await response.json()


async def entries(client, team, account, **query: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/projects/{team.project_id}/engagement", params=query, headers=account.headers
    )
    assert response.status == 200, await response.text()
    return (await response.json())["items"]


async def summary(client, team, account, **query: str) -> dict[str, Any]:
    response = await client.get(
        "/api/engagement/summary", params={"project_id": team.project_id, **query}, headers=account.headers
    )
    assert response.status == 200, await response.text()
    return await response.json()


# -- entries -------------------------------------------------------------------------------------------


async def test_students_log_and_see_only_their_own(client, team):
    mine = await log(client, team, minutes=90, activity="analysis", notes="  fitted the drag curve  ")
    assert mine["student_id"] == team.member.id
    assert mine["created_by"] == team.member.id
    assert mine["notes"] == "fitted the drag curve"
    assert mine["date"] == today().isoformat()
    for_viewer = await log(client, team, team.lead, student_id=team.viewer.id, minutes=20)
    assert for_viewer["student_id"] == team.viewer.id
    assert for_viewer["created_by"] == team.lead.id

    assert [e["id"] for e in await entries(client, team, team.member)] == [mine["id"]]
    assert [e["id"] for e in await entries(client, team, team.viewer)] == [for_viewer["id"]]
    assert {e["id"] for e in await entries(client, team, team.lead)} == {mine["id"], for_viewer["id"]}
    assert {e["id"] for e in await entries(client, team, team.head)} == {mine["id"], for_viewer["id"]}
    only = await entries(client, team, team.lead, student_id=team.viewer.id)
    assert [e["id"] for e in only] == [for_viewer["id"]]
    assert [e["id"] for e in await entries(client, team, team.lead, activity="analysis")] == [mine["id"]]

    other = await client.get(
        f"/api/projects/{team.project_id}/engagement", params={"student_id": team.viewer.id},
        headers=team.member.headers,
    )  # fmt: skip
    assert (await problem(other, 403))["code"] == "own_only"
    hidden = await client.get(f"/api/projects/{team.project_id}/engagement", headers=team.outsider.headers)
    await problem(hidden, 404)


async def test_who_may_log_for_whom(client, team):
    refused = await client.post(
        f"/api/projects/{team.project_id}/engagement",
        json={
            "date": today().isoformat(),
            "minutes": 10,
            "activity": "reading",
            "student_id": team.viewer.id,
        },
        headers=team.member.headers,
    )
    assert (await problem(refused, 403))["code"] == "own_only"
    viewer = await client.post(
        f"/api/projects/{team.project_id}/engagement",
        json={"date": today().isoformat(), "minutes": 10, "activity": "reading"},
        headers=team.viewer.headers,
    )
    await problem(viewer, 403)
    outsider = await client.post(
        f"/api/projects/{team.project_id}/engagement",
        json={
            "date": today().isoformat(),
            "minutes": 10,
            "activity": "reading",
            "student_id": team.outsider.id,
        },
        headers=team.lead.headers,
    )
    assert (await problem(outsider, 422))["errors"][0]["path"] == "$.student_id"
    by_head = await log(client, team, team.head, student_id=team.member.id)
    assert by_head["student_id"] == team.member.id


async def test_corrections_by_the_student_leads_and_heads_only(client, team, make_account):
    entry = await log(client, team, minutes=30)
    url = f"/api/engagement/{entry['id']}"
    own = await client.patch(
        url, json={"minutes": 45, "notes": "and cleaned up"}, headers=team.member.headers
    )
    assert own.status == 200, await own.text()
    assert (await own.json())["minutes"] == 45
    await problem(await client.patch(url, json={"minutes": 1}, headers=team.viewer.headers), 403)
    await problem(await client.patch(url, json={"minutes": 1}, headers=team.outsider.headers), 404)
    student = await make_account("student", name="Sam Second")
    added = await client.post(
        f"/api/projects/{team.project_id}/members", json={"user_id": student.id, "role": "member"},
        headers=team.lead.headers,
    )  # fmt: skip
    assert added.status == 201
    other = await client.patch(url, json={"minutes": 1}, headers=student.headers)
    assert (await problem(other, 403))["code"] == "not_owner"
    fixed = await client.patch(
        url,
        json={"activity": "writing", "date": (today() - timedelta(days=2)).isoformat()},
        headers=team.lead.headers,
    )
    assert fixed.status == 200
    body = await fixed.json()
    assert (body["activity"], body["date"], body["minutes"]) == (
        "writing", (today() - timedelta(days=2)).isoformat(), 45,
    )  # fmt: skip
    await problem(await client.delete(url, headers=student.headers), 403)
    assert (await client.delete(url, headers=team.head.headers)).status == 204
    await problem(await client.patch(url, json={"minutes": 5}, headers=team.member.headers), 404)
    assert await entries(client, team, team.lead) == []


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"date": (today() + timedelta(days=1)).isoformat()}, "$.date"),
        ({"date": "2026-02-30"}, "$.date"),
        ({"date": "1999-12-31"}, "$.date"),
        ({"minutes": 0}, "$.minutes"),
        ({"minutes": 1441}, "$.minutes"),
        ({"minutes": "lots"}, "$.minutes"),
        ({"activity": "napping"}, "$.activity"),
        ({"notes": "x" * 2001}, "$.notes"),
        ({"student_id": "nobody"}, "$.student_id"),
        ({"extra": 1}, "$"),
    ],
)
async def test_bad_entries_are_refused_with_the_field(client, team, fields, path):
    body = await problem(
        await client.post(
            f"/api/projects/{team.project_id}/engagement",
            json={"date": today().isoformat(), "minutes": 30, "activity": "lab_work", **fields},
            headers=team.member.headers,
        ),
        422,
    )
    assert path in [e["path"] for e in body["errors"]], body
    assert await entries(client, team, team.lead) == []


async def test_a_day_has_1440_minutes_across_entries_and_projects(client, team):
    day = (today() - timedelta(days=3)).isoformat()
    first = await log(client, team, team.lead, date=day, minutes=1000)
    second = await client.post(
        f"/api/projects/{team.project_id}/engagement", json={"date": day, "minutes": 441, "activity": "other"},
        headers=team.lead.headers,
    )  # fmt: skip
    body = await problem(second, 422)
    assert body["errors"][0]["path"] == "$.minutes"
    assert "1000" in body["detail"]
    other = await client.post("/api/projects", json={"name": "Second project"}, headers=team.lead.headers)
    other_id = (await other.json())["id"]
    elsewhere = await client.post(
        f"/api/projects/{other_id}/engagement", json={"date": day, "minutes": 500, "activity": "writing"},
        headers=team.lead.headers,
    )  # fmt: skip
    await problem(elsewhere, 422)
    fits = await client.post(
        f"/api/projects/{other_id}/engagement", json={"date": day, "minutes": 440, "activity": "writing"},
        headers=team.lead.headers,
    )  # fmt: skip
    assert fits.status == 201
    # raising an entry past the day's limit is refused and leaves it as it was
    grown = await client.patch(
        f"/api/engagement/{first['id']}", json={"minutes": 1001}, headers=team.lead.headers
    )
    await problem(grown, 422)
    mine = await entries(client, team, team.lead, student_id=team.lead.id)
    assert [(e["id"], e["minutes"]) for e in mine] == [(first["id"], 1000)]
    # moving it to an empty day is fine
    moved = await client.patch(
        f"/api/engagement/{first['id']}", json={"date": today().isoformat()}, headers=team.lead.headers
    )
    assert moved.status == 200


async def test_listing_by_date_range_and_pages(client, team):
    days = [today() - timedelta(days=n) for n in range(6)]
    for day in days:
        await log(client, team, date=day.isoformat(), minutes=10)
    window = await entries(
        client, team, team.member, **{"from": days[4].isoformat(), "to": days[1].isoformat()}
    )
    assert [e["date"] for e in window] == [d.isoformat() for d in days[1:5]]
    for account in (team.lead, team.head):  # everyone's entries: another index, the same bounds
        everyone = await entries(
            client, team, account, **{"from": days[4].isoformat(), "to": days[1].isoformat()}
        )
        assert [e["date"] for e in everyone] == [d.isoformat() for d in days[1:5]]
    seen, cursor = [], None
    while True:
        params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
        page = await (
            await client.get(
                f"/api/projects/{team.project_id}/engagement", params=params, headers=team.member.headers
            )
        ).json()
        seen += [e["date"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [d.isoformat() for d in days]
    backwards = await client.get(
        f"/api/projects/{team.project_id}/engagement", params={"from": days[0].isoformat(), "to": days[3].isoformat()},
        headers=team.member.headers,
    )  # fmt: skip
    assert (await problem(backwards, 422))["errors"][0]["path"] == "$.to"


# -- the summary -----------------------------------------------------------------------------------


async def known_activity(client, team) -> dict[str, Any]:
    """Mia (member): 255 logged minutes on three days, a meeting attended, two records, two uploads
    (a document and its second version) and one stored file. Vic (viewer): 90 minutes logged for
    him by the lead yesterday and the meeting missed."""
    t = today()
    for day, minutes, activity in ((t, 60, "lab_work"), (t, 30, "writing"), (t - timedelta(days=7), 120, "analysis"),
                                   (t - timedelta(days=40), 45, "reading")):  # fmt: skip
        await log(client, team, date=day.isoformat(), minutes=minutes, activity=activity)
    await log(client, team, team.lead, student_id=team.viewer.id, date=(t - timedelta(days=1)).isoformat(),
              minutes=90, activity="meeting")  # fmt: skip
    started = (datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)
    meeting = await client.post(
        f"/api/projects/{team.project_id}/meetings",
        json={
            "title": "Weekly",
            "starts_at": started.isoformat(),
            "attendee_ids": [team.member.id, team.viewer.id],
        },
        headers=team.lead.headers,
    )
    assert meeting.status == 201, await meeting.text()
    meeting_id = (await meeting.json())["id"]
    marked = await client.post(
        f"/api/meetings/{meeting_id}/attendance",
        json={"present_ids": [team.member.id], "absent_ids": [team.viewer.id]}, headers=team.lead.headers,
    )  # fmt: skip
    assert marked.status == 200, await marked.text()
    for title in ("run 1", "run 2"):
        made = await client.post(
            f"/api/projects/{team.project_id}/records",
            json={"kind": "run", "title": title},
            headers=team.member.headers,
        )
        assert made.status == 201
    document = await client.post(
        f"/api/projects/{team.project_id}/documents", data=file_form(b"v1", "protocol.txt", "text/plain"),
        headers=team.member.headers,
    )  # fmt: skip
    doc_id = (await document.json())["id"]
    version = await client.post(
        f"/api/documents/{doc_id}/versions", data=file_form(b"v2", "protocol.txt", "text/plain"),
        headers=team.member.headers,
    )  # fmt: skip
    assert version.status == 201, await version.text()
    stored = aiohttp.FormData()
    stored.add_field("manifest", json.dumps([{"ingest": False}]))
    stored.add_field("files", b"a,b\n1,2\n", filename="raw.csv", content_type="text/csv")
    ingested = await client.post(
        f"/api/projects/{team.project_id}/ingestions", data=stored, headers=team.member.headers
    )
    assert ingested.status in (201, 202), await ingested.text()
    return {"meeting_day": started.date()}


async def test_summary_arithmetic_on_known_data(client, team):
    known = await known_activity(client, team)
    t = today()
    start = t - timedelta(days=40)
    result = await summary(client, team, team.lead, **{"from": start.isoformat(), "to": t.isoformat()})
    assert (result["group"], result["start"], result["end"], result["timezone"]) == (
        "week", start.isoformat(), t.isoformat(), "UTC",
    )  # fmt: skip
    totals = {s["student_name"]: s for s in result["students"]}
    assert list(totals) == ["Mia Member", "Vic Viewer"]  # students by name; the lead logged nothing
    mia, vic = totals["Mia Member"], totals["Vic Viewer"]
    assert mia["minutes"] == 255
    assert mia["minutes_by_activity"] == {
        "lab_work": 60, "analysis": 120, "writing": 30, "reading": 45, "meeting": 0, "other": 0,
    }  # fmt: skip
    assert (mia["meetings_attended"], mia["meetings_missed"], mia["uploads"], mia["ingestions"], mia["records"]) == (
        1, 0, 2, 1, 2,
    )  # fmt: skip
    assert mia["last_active"] == t.isoformat()
    assert vic["minutes"] == 90
    assert vic["minutes_by_activity"]["meeting"] == 90
    assert (vic["meetings_attended"], vic["meetings_missed"], vic["uploads"], vic["records"]) == (0, 1, 0, 0)
    assert vic["last_active"] == (t - timedelta(days=1)).isoformat()  # a missed meeting is not activity

    weeks = []
    monday = start - timedelta(days=start.weekday())
    while monday <= t:
        weeks.append(monday)
        monday += timedelta(days=7)
    rows = [r for r in result["rows"] if r["student_id"] == team.member.id]
    assert [r["period_start"] for r in rows] == [w.isoformat() for w in weeks]
    assert [r["period"] for r in rows] == [f"{w.isocalendar()[0]}-W{w.isocalendar()[1]:02d}" for w in weeks]
    by_week = {r["period_start"]: r for r in rows}
    this_week = by_week[weeks[-1].isoformat()]
    assert this_week["minutes"] == 90
    assert this_week["records"] == 2
    assert this_week["uploads"] == 2
    meeting_week = known["meeting_day"] - timedelta(days=known["meeting_day"].weekday())
    assert by_week[meeting_week.isoformat()]["meetings_attended"] == 1
    assert by_week[weeks[-2].isoformat()]["minutes"] == 120
    assert by_week[weeks[0].isoformat()]["minutes"] == 45
    assert sum(r["minutes"] for r in rows) == 255
    assert sum(r["minutes"] for r in rows[1:-2]) == 0  # the weeks between hold nothing
    for key in ("minutes", "records", "uploads", "ingestions", "meetings_attended"):
        assert sum(r[key] for r in rows) == mia[key]

    months = await summary(
        client, team, team.head, group="month", **{"from": start.isoformat(), "to": t.isoformat()}
    )
    mia_months = [r for r in months["rows"] if r["student_id"] == team.member.id]
    days = [start + timedelta(days=n) for n in range(41)]
    assert [r["period"] for r in mia_months] == sorted({f"{d.year}-{d.month:02d}" for d in days})
    assert sum(r["minutes"] for r in mia_months) == 255
    assert mia_months[-1]["period_end"] >= t.isoformat()


async def test_students_get_only_their_own_rows(client, team):
    await known_activity(client, team)
    mine = await summary(client, team, team.member)
    assert {r["student_id"] for r in mine["rows"]} == {team.member.id}
    assert [s["student_name"] for s in mine["students"]] == ["Mia Member"]
    assert mine["students"][0]["minutes"] == 255  # the default range reaches back to the earliest entry
    viewer = await summary(client, team, team.viewer)
    assert [s["minutes"] for s in viewer["students"]] == [90]
    other = await client.get(
        "/api/engagement/summary", params={"project_id": team.project_id, "student_id": team.viewer.id},
        headers=team.member.headers,
    )  # fmt: skip
    assert (await problem(other, 403))["code"] == "own_only"
    one = await summary(client, team, team.lead, student_id=team.viewer.id)
    assert [s["student_id"] for s in one["students"]] == [team.viewer.id]
    outsider = await client.get(
        "/api/engagement/summary", params={"project_id": team.project_id}, headers=team.outsider.headers
    )
    await problem(outsider, 404)
    stranger = await client.get(
        "/api/engagement/summary", params={"project_id": team.project_id, "student_id": team.outsider.id},
        headers=team.lead.headers,
    )  # fmt: skip
    await problem(stranger, 404)
    missing = await client.get("/api/engagement/summary", headers=team.lead.headers)
    assert (await problem(missing, 422))["errors"][0]["path"] == "query.project_id"
    for params in ({"group": "year"}, {"from": "yesterday"}, {"from": "2026-05-02", "to": "2026-05-01"},
                   {"from": "1980-01-01", "to": "2026-01-01"}):  # fmt: skip
        bad = await client.get(
            "/api/engagement/summary",
            params={"project_id": team.project_id, **params},
            headers=team.lead.headers,
        )
        await problem(bad, 422)


async def test_summary_as_csv(client, team):
    await known_activity(client, team)
    await log(client, team, date=(today() - timedelta(days=2)).isoformat(), minutes=5, notes="=HYPERLINK(1)")
    response = await client.get(
        "/api/engagement/summary", params={"project_id": team.project_id, "format": "csv", "group": "month"},
        headers=team.lead.headers,
    )  # fmt: skip
    assert response.status == 200
    assert response.content_type == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert set(rows[0]) >= {"student_id", "student_name", "period", "minutes", "minutes_lab_work", "meetings_attended",
                            "meetings_missed", "uploads", "records", "last_active"}  # fmt: skip
    mia = [r for r in rows if r["student_id"] == team.member.id]
    assert sum(int(r["minutes"]) for r in mia) == 260
    assert sum(int(r["records"]) for r in mia) == 2
    assert mia[-1]["last_active"] == today().isoformat()
    student_csv = await client.get(
        "/api/engagement/summary",
        params={"project_id": team.project_id, "format": "csv"},
        headers=team.viewer.headers,
    )
    assert {r["student_id"] for r in csv.DictReader(io.StringIO(await student_csv.text()))} == {
        team.viewer.id
    }


# -- the plot ----------------------------------------------------------------------------------------


async def _finished(client, account, job_id):
    body = await (await client.get(f"/api/jobs/{job_id}", headers=account.headers)).json()
    return body if body["status"] in {"succeeded", "failed", "cancelled"} else None


async def test_engagement_plot_is_rendered_and_shown_to_the_right_people(client, team):
    await known_activity(client, team)
    response = await client.post(
        f"/api/projects/{team.project_id}/engagement/visualizations",
        json={"group": "week", "title": "Time $x$ <script>", "format": "png"}, headers=team.lead.headers,
    )  # fmt: skip
    assert response.status == 202, await response.text()
    plot = await response.json()
    assert plot["source"] == "engagement"
    assert plot["dataset_id"] is None
    assert plot["engagement"]["student_id"] is None
    assert plot["engagement"]["group"] == "week"
    job = await wait_until(lambda: _finished(client, team.lead, plot["job_id"]), timeout_s=60)
    assert job["status"] == "succeeded", job
    image = await client.get(f"/api/visualizations/{plot['id']}/image", headers=team.lead.headers)
    assert image.status == 200
    assert image.content_type == "image/png"
    assert (await image.read()).startswith(b"\x89PNG")
    stored = await (await client.get(f"/api/visualizations/{plot['id']}", headers=team.head.headers)).json()
    assert stored["image"]["points_drawn"] > 0
    assert stored["library_versions"]["matplotlib"]
    assert len(stored["dataset_version"]) == 64

    # everyone's time is for leads and heads: students neither see it nor find it listed
    await problem(await client.get(f"/api/visualizations/{plot['id']}", headers=team.member.headers), 404)
    await problem(
        await client.get(f"/api/visualizations/{plot['id']}/image", headers=team.member.headers), 404
    )
    listed = await client.get(f"/api/projects/{team.project_id}/visualizations", headers=team.member.headers)
    assert plot["id"] not in [v["id"] for v in (await listed.json())["items"]]

    # a student's own plot: theirs and the leads', nobody else's
    own = await client.post(
        f"/api/projects/{team.project_id}/engagement/visualizations", json={"group": "month", "format": "svg"},
        headers=team.member.headers,
    )  # fmt: skip
    assert own.status == 202, await own.text()
    own_plot = await own.json()
    assert own_plot["engagement"]["student_id"] == team.member.id
    job = await wait_until(lambda: _finished(client, team.member, own_plot["job_id"]), timeout_s=60)
    assert job["status"] == "succeeded", job
    svg = await client.get(f"/api/visualizations/{own_plot['id']}/image", headers=team.member.headers)
    assert svg.status == 200
    assert b"<script" not in await svg.read()
    assert (
        await client.get(f"/api/visualizations/{own_plot['id']}", headers=team.lead.headers)
    ).status == 200
    await problem(await client.get(f"/api/visualizations/{own_plot['id']}", headers=team.viewer.headers), 404)
    lead_list = await client.get(f"/api/projects/{team.project_id}/visualizations", headers=team.lead.headers)
    assert {plot["id"], own_plot["id"]} <= {v["id"] for v in (await lead_list.json())["items"]}

    others = await client.post(
        f"/api/projects/{team.project_id}/engagement/visualizations", json={"student_id": team.viewer.id},
        headers=team.member.headers,
    )  # fmt: skip
    assert (await problem(others, 403))["code"] == "own_only"
    for body, path in (
        ({"width": 50}, "$.width"),
        ({"group": "day"}, "$.group"),
        ({"title": "a\x00b"}, "$.title"),
    ):
        bad = await client.post(
            f"/api/projects/{team.project_id}/engagement/visualizations", json=body, headers=team.lead.headers
        )
        assert path in [e["path"] for e in (await problem(bad, 422))["errors"]]
    viewer = await client.post(
        f"/api/projects/{team.project_id}/engagement/visualizations", json={}, headers=team.viewer.headers
    )
    await problem(viewer, 403)


async def test_a_plots_job_is_no_more_visible_than_the_plot_and_holds_no_ones_minutes(client, team):
    """A student who may not see the project's plot of everyone's time gets 404 for its job too
    (the job, its events and its listing), and no job's params carry anyone's minutes."""
    await known_activity(client, team)
    response = await client.post(
        f"/api/projects/{team.project_id}/engagement/visualizations", json={"group": "week"},
        headers=team.lead.headers,
    )  # fmt: skip
    assert response.status == 202, await response.text()
    plot = await response.json()
    job = await wait_until(lambda: _finished(client, team.lead, plot["job_id"]), timeout_s=60)
    assert job["status"] == "succeeded", job
    assert "255" not in json.dumps(job["params"])  # Mia's minutes are not in the job
    assert set(job["params"]) == {"spec", "subject_id"}
    for account in (team.member, team.viewer):
        await problem(await client.get(f"/api/jobs/{plot['job_id']}", headers=account.headers), 404)
        await problem(await client.get(f"/api/jobs/{plot['job_id']}/events", headers=account.headers), 404)
        ticket = await (await client.post("/api/auth/sse-ticket", headers=account.headers)).json()
        await problem(await client.get(f"/api/jobs/{plot['job_id']}/events?ticket={ticket['ticket']}"), 404)
        await problem(await client.post(f"/api/jobs/{plot['job_id']}/cancel", headers=account.headers), 404)
    assert (await client.get(f"/api/jobs/{plot['job_id']}", headers=team.head.headers)).status == 200

    # a student's own plot: their job is theirs (and the leads'), not another student's
    own = await client.post(
        f"/api/projects/{team.project_id}/engagement/visualizations", json={"group": "month"},
        headers=team.member.headers,
    )  # fmt: skip
    own_job = (await own.json())["job_id"]
    await wait_until(lambda: _finished(client, team.member, own_job), timeout_s=60)
    assert (await client.get(f"/api/jobs/{own_job}", headers=team.lead.headers)).status == 200
    await problem(await client.get(f"/api/jobs/{own_job}", headers=team.viewer.headers), 404)

    # no stored job of any kind keeps anyone's logged minutes in its params
    async for stored in client.app[MONGO]["jobs"].find({"project_id": ObjectId(team.project_id)}):
        assert "table" not in stored["params"], stored["kind"]
        assert "Vic Viewer" not in json.dumps(stored["params"], default=str)  # nor whose they are


async def test_purging_the_project_removes_entries(client, team):
    entry = await log(client, team)
    purged = await client.delete(
        f"/api/projects/{team.project_id}", params={"purge": "true"}, headers=team.head.headers
    )
    assert purged.status == 204, await purged.text()
    assert await client.app[MONGO]["engagement"].count_documents({"_id": ObjectId(entry["id"])}) == 0
    await problem(await client.patch(f"/api/engagement/{entry['id']}", json={"minutes": 5},
                                     headers=team.head.headers), 404)  # fmt: skip
