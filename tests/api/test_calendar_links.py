"""Calendar subscription links, fetched as a calendar app does: a plain HTTP client (httpx) with no
headers, the feed read back with the strict `ical` parser."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from ical.calendar_stream import IcsCalendarStream

from domain.accounts.models import Role
from domain.core.settings import Settings
from handlers.keys import ACCOUNTS
from server import create_app
from tests.conftest import PASSWORD, make_settings, problem


def soon(hours: float) -> str:
    return (datetime.now(UTC) + timedelta(hours=hours)).replace(microsecond=0).isoformat()


async def meeting(client, team, project_id: str | None = None, **fields) -> dict:
    body = {"title": "Group meeting", "starts_at": soon(24), "attendee_ids": [team.member.id], **fields}
    response = await client.post(
        f"/api/projects/{project_id or team.project_id}/meetings", json=body, headers=team.lead.headers
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def link_of(client, account) -> str:
    response = await client.post("/api/calendar/link", headers=account.headers)
    assert response.status == 201, await response.text()
    return (await response.json())["url"]


async def fetch(url: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as calendar_app:  # no Authorization, as a calendar app
        return await calendar_app.get(url, headers=headers)


async def test_the_feed_holds_my_meetings_with_my_answer_and_is_read_by_a_strict_parser(client, team):
    upcoming = await meeting(client, team, title="Tunnel review")
    cancelled = await meeting(client, team, title="Dropped")
    assert (await client.delete(f"/api/meetings/{cancelled['id']}", headers=team.lead.headers)).status == 204
    answered = await client.post(
        f"/api/meetings/{upcoming['id']}/rsvp", json={"response": "yes"}, headers=team.member.headers
    )
    assert answered.status == 200
    url = await link_of(client, team.member)
    assert url.startswith(str(client.make_url("/api/calendar/")))
    assert url.endswith(".ics")
    response = await fetch(url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    assert response.headers["cache-control"].startswith("private")
    calendar = IcsCalendarStream.calendar_from_ics(response.text)
    events = {e.summary: e for e in calendar.events}
    assert set(events) == {"Tunnel review", "Dropped"}
    assert events["Dropped"].status.value == "CANCELLED"
    statuses = {a.uri: a.status for a in events["Tunnel review"].attendees}
    assert statuses["mailto:" + team.member.email] == "ACCEPTED"
    # calendar apps poll: the same feed answers 304 to its ETag
    again = await fetch(url, **{"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


async def test_no_calendar_secret_reaches_a_log_line(client, team, caplog):
    url = await link_of(client, team.member)
    secret = url.rsplit("/", 1)[1].removesuffix(".ics")
    caplog.set_level(logging.DEBUG)
    assert (await fetch(url)).status_code == 200
    assert (await fetch(url.replace(secret, secret[:-4] + "abcd"))).status_code == 404  # a wrong one
    stray = await client.get(f"/api/calendars/{secret}/feed")  # no such route: the path is logged as is
    assert stray.status == 404
    # LabHub's own lines (the test server also has aiohttp's access log, which `serve` turns off)
    logged = "\n".join(r.getMessage() + str(vars(r)) for r in caplog.records if r.name.startswith("labhub"))
    assert "/api/calendar/***.ics" in logged  # the line is there, without the secret
    assert secret not in logged
    assert secret[4:20] not in logged


async def test_the_link_grants_nothing_else_and_rotation_kills_the_old_one(client, team):
    await meeting(client, team)
    old = await link_of(client, team.member)
    secret = old.rsplit("/", 1)[1].removesuffix(".ics")
    as_bearer = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {secret}"})
    await problem(as_bearer, 401)
    new = await link_of(client, team.member)
    assert new != old
    assert (await fetch(old)).status_code == 404
    assert (await fetch(new)).status_code == 200
    assert (await client.delete("/api/calendar/link", headers=team.member.headers)).status == 204
    assert (await fetch(new)).status_code == 404
    assert (await fetch(str(client.make_url("/api/calendar/lhc_nothing.ics")))).status_code == 404


async def test_a_removed_member_loses_that_projects_meetings_at_the_next_fetch(client, team):
    other = await client.post("/api/projects", json={"name": "Other"}, headers=team.lead.headers)
    other_id = (await other.json())["id"]
    added = await client.post(
        f"/api/projects/{other_id}/members", json={"user_id": team.member.id}, headers=team.lead.headers
    )
    assert added.status == 201
    await meeting(client, team, title="Here")
    await meeting(client, team, other_id, title="There")
    old = await meeting(
        client, team, title="Long ago", starts_at=(datetime.now(UTC) - timedelta(days=120)).isoformat()
    )
    assert old["id"]
    url = await link_of(client, team.member)
    summaries = {e.summary for e in IcsCalendarStream.calendar_from_ics((await fetch(url)).text).events}
    assert summaries == {"Here", "There"}  # not older than 90 days
    removed = await client.delete(
        f"/api/projects/{other_id}/members/{team.member.id}", headers=team.lead.headers
    )
    assert removed.status == 204
    summaries = {e.summary for e in IcsCalendarStream.calendar_from_ics((await fetch(url)).text).events}
    assert summaries == {"Here"}


async def test_a_token_cannot_make_a_link(client, team):
    token = await client.post(
        "/api/tokens", json={"name": "t", "scopes": ["write"]}, headers=team.member.headers
    )
    secret = (await token.json())["token"]
    refused = await client.post("/api/calendar/link", headers={"Authorization": f"Bearer {secret}"})
    assert (await problem(refused, 403))["code"] == "session_required"


@pytest.fixture
def public_settings(services, tmp_path) -> Settings:
    return make_settings(services, tmp_path, http={"public_url": "https://labhub.lab.example"})


async def test_links_are_based_on_the_public_url(aiohttp_client, public_settings):
    client = await aiohttp_client(create_app(public_settings))
    await client.app[ACCOUNTS].create(
        email="pub@lab.example", password=PASSWORD, name="Pub", role=Role.STUDENT
    )
    login = await client.post("/api/auth/login", json={"email": "pub@lab.example", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
    url = (await (await client.post("/api/calendar/link", headers=headers)).json())["url"]
    assert url.startswith("https://labhub.lab.example/api/calendar/lhc_")
