"""Meetings: scheduling, who may change what, answers, attendance, notifications and iCalendar."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ical.calendar_stream import IcsCalendarStream

from tests.conftest import problem


def at(hours: float) -> str:
    """A time `hours` from now, with an explicit offset (not UTC) to show zones are honoured."""
    moment = datetime.now(UTC) + timedelta(hours=hours)
    return moment.astimezone(datetime.now().astimezone().tzinfo).replace(microsecond=0).isoformat()


async def schedule(client, team, *, by=None, **fields: Any) -> dict[str, Any]:
    body = {"title": "Group meeting", "starts_at": at(24), "duration_minutes": 45, **fields}
    response = await client.post(
        f"/api/projects/{team.project_id}/meetings", json=body, headers=(by or team.lead).headers
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def notifications(client, account) -> list[dict[str, Any]]:
    response = await client.get("/api/notifications", headers=account.headers)
    assert response.status == 200
    return (await response.json())["items"]


def parse_ics(text: str):
    """Read a calendar back with ical, a strict RFC 5545 parser independent of the writer."""
    return IcsCalendarStream.calendar_from_ics(text)


async def test_schedule_and_read_a_meeting(client, team):
    meeting = await schedule(
        client, team, title="  Tunnel   review ", location="Room 2.14", agenda="1. results\n2. plan",
        attendee_ids=[team.member.id, team.viewer.id],
        action_items=[{"text": "calibrate probe", "assignee_id": team.member.id, "due": "2030-01-31"}],
    )  # fmt: skip
    assert meeting["title"] == "Tunnel review"
    assert meeting["status"] == "scheduled"
    assert meeting["sequence"] == 0
    assert meeting["starts_at"].endswith("+00:00")  # stored and shown in UTC
    start = datetime.fromisoformat(meeting["starts_at"])
    assert datetime.fromisoformat(meeting["ends_at"]) - start == timedelta(minutes=45)
    assert meeting["action_items"] == [
        {"text": "calibrate probe", "assignee_id": team.member.id, "due": "2030-01-31", "done": False}
    ]
    for account in (team.member, team.viewer, team.head):
        got = await client.get(f"/api/meetings/{meeting['id']}", headers=account.headers)
        assert got.status == 200
        assert (await got.json())["id"] == meeting["id"]
    hidden = await client.get(f"/api/meetings/{meeting['id']}", headers=team.outsider.headers)
    await problem(hidden, 404)


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"starts_at": "2030-01-01T10:00:00"}, "$.starts_at"),  # no timezone
        ({"starts_at": "next tuesday"}, "$.starts_at"),
        ({"starts_at": "1999-12-31T10:00:00Z"}, "$.starts_at"),
        ({"duration_minutes": 0}, "$.duration_minutes"),
        ({"duration_minutes": 1441}, "$.duration_minutes"),
        ({"title": "   "}, "$.title"),
        ({"link": "javascript:alert(1)"}, "$.link"),
        ({"attendee_ids": ["not-an-id"]}, "$.attendee_ids[0]"),
        ({"action_items": [{"text": ""}]}, "$.action_items[0].text"),
        ({"action_items": [{"text": "x", "due": "2030-02-30"}]}, "$.action_items[0].due"),
        ({"surprise": True}, "$"),
    ],
)
async def test_bad_meetings_are_refused_with_the_field(client, team, fields, path):
    body = {"title": "Group meeting", "starts_at": at(24), **fields}
    response = await client.post(
        f"/api/projects/{team.project_id}/meetings", json=body, headers=team.lead.headers
    )
    error = await problem(response, 422)
    assert any(e["path"] == path for e in error["errors"]), error


async def test_attendees_and_assignees_must_be_members(client, team):
    url = f"/api/projects/{team.project_id}/meetings"
    body = {"title": "x", "starts_at": at(2), "attendee_ids": [team.member.id, team.outsider.id]}
    error = await problem(await client.post(url, json=body, headers=team.lead.headers), 422)
    assert error["errors"][0]["path"] == "$.attendee_ids[1]"
    body = {
        "title": "x",
        "starts_at": at(2),
        "action_items": [{"text": "y", "assignee_id": team.outsider.id}],
    }
    error = await problem(await client.post(url, json=body, headers=team.lead.headers), 422)
    assert error["errors"][0]["path"] == "$.action_items[0].assignee_id"


async def test_who_may_schedule(client, team):
    url = f"/api/projects/{team.project_id}/meetings"
    body = {"title": "x", "starts_at": at(2)}
    assert (await client.post(url, json=body, headers=team.member.headers)).status == 201
    assert (await client.post(url, json=body, headers=team.head.headers)).status == 201
    await problem(await client.post(url, json=body, headers=team.viewer.headers), 403)
    await problem(await client.post(url, json=body, headers=team.outsider.headers), 404)


async def test_list_puts_upcoming_first_then_past_and_pages_cleanly(client, team):
    hours = [-72, 5, -1, 48, 2, -200, 30]
    for h in hours:
        await schedule(client, team, title=f"m{h}", starts_at=at(h), duration_minutes=30)
    url = f"/api/projects/{team.project_id}/meetings"
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get(url, params=params, headers=team.member.headers)).json()
        seen += [m["title"] for m in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["m2", "m5", "m30", "m48", "m-1", "m-72", "m-200"]
    ranged = await client.get(
        url, params={"from": at(-100)[:19] + "Z", "to": at(10)[:19] + "Z"}, headers=team.member.headers
    )
    assert [m["title"] for m in (await ranged.json())["items"]] == ["m2", "m5", "m-1", "m-72"]
    await problem(await client.get(url, params={"from": "soon"}, headers=team.member.headers), 422)
    await problem(await client.get(url, params={"cursor": "garbage"}, headers=team.member.headers), 400)
    await problem(await client.get(url, headers=team.outsider.headers), 404)


async def test_invitation_change_and_cancellation_notify_the_attendees(client, team):
    meeting = await schedule(client, team, title="Design review", attendee_ids=[team.member.id, team.lead.id])
    invited = [n for n in await notifications(client, team.member) if n["category"] == "meeting.invited"]
    assert len(invited) == 1
    assert "Design review" in invited[0]["title"]
    assert invited[0]["link"] == f"/api/meetings/{meeting['id']}"
    assert not [n for n in await notifications(client, team.lead) if n["category"].startswith("meeting.")]

    url = f"/api/meetings/{meeting['id']}"
    moved = await client.patch(
        url,
        json={"starts_at": at(50), "attendee_ids": [team.member.id, team.viewer.id]},
        headers=team.lead.headers,
    )
    assert moved.status == 200, await moved.text()
    assert (await moved.json())["sequence"] == 1
    assert (await notifications(client, team.member))[0]["category"] == "meeting.changed"
    assert [n["category"] for n in await notifications(client, team.viewer)] == ["meeting.invited"]

    assert (await client.delete(url, headers=team.lead.headers)).status == 204
    assert (await notifications(client, team.member))[0]["category"] == "meeting.cancelled"
    cancelled = await (await client.get(url, headers=team.member.headers)).json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["sequence"] == 2
    assert (
        await client.delete(url, headers=team.lead.headers)
    ).status == 204  # already cancelled: same answer
    await problem(await client.patch(url, json={"title": "again"}, headers=team.lead.headers), 409)


async def test_who_may_change_and_cancel(client, team):
    meeting = await schedule(client, team, by=team.member, attendee_ids=[team.member.id, team.viewer.id])
    url = f"/api/meetings/{meeting['id']}"
    # the organiser (a member), the lead and a head change anything
    for account, title in ((team.member, "a"), (team.lead, "b"), (team.head, "c")):
        response = await client.patch(url, json={"title": title}, headers=account.headers)
        assert response.status == 200, await response.text()
    # an unchanged value makes no new revision
    same = await client.patch(url, json={"title": "c"}, headers=team.lead.headers)
    assert (await same.json())["sequence"] == 3
    # a viewer, even invited, changes nothing; an outsider does not see it
    await problem(await client.patch(url, json={"notes": "x"}, headers=team.viewer.headers), 403)
    await problem(await client.patch(url, json={"title": "x"}, headers=team.outsider.headers), 404)
    await problem(await client.delete(url, headers=team.viewer.headers), 403)
    await problem(await client.delete(url, headers=team.outsider.headers), 404)
    await problem(await client.patch(url, json={}, headers=team.lead.headers), 422)


async def test_attendees_may_edit_notes_and_action_items_only(client, team, make_account):
    other = await make_account("student")
    await client.post(
        f"/api/projects/{team.project_id}/members", json={"user_id": other.id, "role": "member"},
        headers=team.lead.headers,
    )  # fmt: skip
    meeting = await schedule(client, team, starts_at=at(-3), attendee_ids=[team.member.id])
    url = f"/api/meetings/{meeting['id']}"
    notes = await client.patch(
        url, json={"notes": "We agreed on the new probe.\n- order parts",
                   "action_items": [{"text": "order parts", "assignee_id": team.member.id, "done": True}]},
        headers=team.member.headers,
    )  # fmt: skip
    assert notes.status == 200, await notes.text()
    assert (await notes.json())["action_items"][0]["done"] is True
    error = await problem(await client.patch(url, json={"title": "mine"}, headers=team.member.headers), 403)
    assert error["code"] == "not_owner"
    await problem(await client.patch(url, json={"notes": "x"}, headers=other.headers), 403)  # not invited


async def test_rsvp_by_attendees(client, team):
    meeting = await schedule(client, team, attendee_ids=[team.member.id, team.viewer.id])
    url = f"/api/meetings/{meeting['id']}/rsvp"
    answered = await client.post(url, json={"response": "maybe"}, headers=team.member.headers)
    assert answered.status == 200
    answered = await client.post(url, json={"response": "yes"}, headers=team.member.headers)
    rsvps = (await answered.json())["rsvps"]
    assert [(r["user_id"], r["response"]) for r in rsvps] == [(team.member.id, "yes")]
    # a viewer who was invited may answer too; answering changes nothing else
    assert (await client.post(url, json={"response": "no"}, headers=team.viewer.headers)).status == 200
    assert (await (await client.get(f"/api/meetings/{meeting['id']}", headers=team.lead.headers)).json())[
        "sequence"
    ] == 0
    error = await problem(await client.post(url, json={"response": "yes"}, headers=team.lead.headers), 403)
    assert error["code"] == "not_attendee"
    await problem(await client.post(url, json={"response": "yes"}, headers=team.outsider.headers), 404)
    await problem(await client.post(url, json={"response": "perhaps"}, headers=team.member.headers), 422)
    await client.delete(f"/api/meetings/{meeting['id']}", headers=team.lead.headers)
    error = await problem(await client.post(url, json={"response": "yes"}, headers=team.member.headers), 409)
    assert error["code"] == "meeting_cancelled"


async def test_attendance_by_leads_and_heads_after_the_start(client, team):
    future = await schedule(client, team, attendee_ids=[team.member.id])
    error = await problem(
        await client.post(
            f"/api/meetings/{future['id']}/attendance", json={"present_ids": [team.member.id]},
            headers=team.lead.headers,
        ),
        409,
    )  # fmt: skip
    assert error["code"] == "meeting_not_started"

    held = await schedule(client, team, starts_at=at(-2), attendee_ids=[team.member.id, team.viewer.id])
    url = f"/api/meetings/{held['id']}/attendance"
    body = {"present_ids": [team.member.id], "absent_ids": [team.viewer.id]}
    await problem(await client.post(url, json=body, headers=team.member.headers), 403)
    await problem(await client.post(url, json=body, headers=team.outsider.headers), 404)
    recorded = await client.post(url, json=body, headers=team.lead.headers)
    assert recorded.status == 200, await recorded.text()
    marks = {m["user_id"]: m["presence"] for m in (await recorded.json())["attendance"]}
    assert marks == {team.member.id: "present", team.viewer.id: "absent"}
    # a correction by a head replaces just that person's mark
    fixed = await client.post(url, json={"present_ids": [team.viewer.id]}, headers=team.head.headers)
    marks = {m["user_id"]: m["presence"] for m in (await fixed.json())["attendance"]}
    assert marks == {team.member.id: "present", team.viewer.id: "present"}
    both = {"present_ids": [team.member.id], "absent_ids": [team.member.id]}
    await problem(await client.post(url, json=both, headers=team.lead.headers), 422)
    stranger = {"present_ids": [team.outsider.id]}
    await problem(await client.post(url, json=stranger, headers=team.lead.headers), 422)
    await problem(await client.post(url, json={}, headers=team.lead.headers), 422)


async def test_one_meeting_as_icalendar(client, team):
    meeting = await schedule(
        client, team, title="Budget; review, Q3 \\ draft", location="Room 1", link="https://meet.example/abc",
        agenda="Line one\nLine two, with comma", attendee_ids=[team.member.id, team.viewer.id],
    )  # fmt: skip
    await client.post(
        f"/api/meetings/{meeting['id']}/rsvp", json={"response": "yes"}, headers=team.member.headers
    )
    response = await client.get(f"/api/meetings/{meeting['id']}.ics", headers=team.viewer.headers)
    assert response.status == 200
    assert response.content_type == "text/calendar"
    assert "attachment" in response.headers["Content-Disposition"]
    text = await response.text()
    assert "\r\n" in text
    assert all(len(line.encode()) <= 75 for line in text.split("\r\n"))
    calendar = parse_ics(text)
    (event,) = calendar.events
    assert event.uid == f"{meeting['id']}@meetings.labhub"
    assert event.summary == "Budget; review, Q3 \\ draft"
    assert event.dtstart == datetime.fromisoformat(meeting["starts_at"])
    assert event.dtend - event.dtstart == timedelta(minutes=45)
    assert event.location == "Room 1"
    assert event.description.startswith("Line one\nLine two, with comma")
    assert event.sequence == 0
    assert event.status.value == "CONFIRMED"
    partstat = {a.uri: a.status for a in event.attendees}
    assert partstat == {
        "mailto:" + team.member.email: "ACCEPTED",
        "mailto:" + team.viewer.email: "NEEDS-ACTION",
    }
    await problem(await client.get(f"/api/meetings/{meeting['id']}.ics", headers=team.outsider.headers), 404)
    await problem(
        await client.get("/api/meetings/000000000000000000000000.ics", headers=team.lead.headers), 404
    )


async def test_project_feed_keeps_uids_and_marks_changes_and_cancellations(client, team):
    kept = await schedule(client, team, title="Weekly")
    moved = await schedule(client, team, title="Review")
    dropped = await schedule(client, team, title="Social")
    await client.patch(f"/api/meetings/{moved['id']}", json={"starts_at": at(72)}, headers=team.lead.headers)
    await client.delete(f"/api/meetings/{dropped['id']}", headers=team.lead.headers)

    response = await client.get(f"/api/projects/{team.project_id}/meetings.ics", headers=team.member.headers)
    assert response.status == 200
    assert response.content_type == "text/calendar"
    calendar = parse_ics(await response.text())
    events = {e.uid: e for e in calendar.events}
    assert set(events) == {f"{m['id']}@meetings.labhub" for m in (kept, moved, dropped)}
    assert events[f"{kept['id']}@meetings.labhub"].sequence == 0
    assert events[f"{moved['id']}@meetings.labhub"].sequence == 1
    assert events[f"{moved['id']}@meetings.labhub"].dtstart > datetime.now(UTC) + timedelta(hours=71)
    cancelled = events[f"{dropped['id']}@meetings.labhub"]
    assert cancelled.status.value == "CANCELLED"
    assert cancelled.sequence == 1
    await problem(
        await client.get(f"/api/projects/{team.project_id}/meetings.ics", headers=team.outsider.headers), 404
    )
