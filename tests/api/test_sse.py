"""Server-sent events: snapshot, replay after Last-Event-ID, live tail, end, 204, tickets."""

from __future__ import annotations

import asyncio
import logging

import pytest
from bson import ObjectId

from domain.accounts.models import Role
from domain.infra.events import stream_id
from handlers.keys import ACCOUNTS, JOBS, NOTIFICATIONS, PROJECTS
from server import create_app
from tests.conftest import PASSWORD, job_settings, problem, wait_until
from tests.sse_client import read_events


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    # one person opens 25 streams in the fan-out test below
    return await aiohttp_client(
        create_app(job_settings(services, tmp_path, {"quotas": {"streams_per_user": 50}}))
    )


async def setup_job(client, **params):
    email = f"sse-{ObjectId()}@lab.example"
    user = await client.app[ACCOUNTS].create(
        email=email, password=PASSWORD, name="Watcher", role=Role.STUDENT
    )
    login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
    project = await client.app[PROJECTS].create(user, name="SSE", description="")
    job = await client.app[JOBS].submit(user, project.id, "test.sleepy", params)
    return user, headers, job


async def stored_ids(client, job_id):
    log = client.app[JOBS]._events.log
    return [entry_id for entry_id, _, _ in await log.replay(log.job_stream(job_id), None)]


async def test_snapshot_then_every_event_until_the_job_ends(client):
    _, headers, job = await setup_job(client, steps=8, delay=0.05)
    response = await client.get(f"/api/jobs/{job.id}/events", headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["X-Accel-Buffering"] == "no"
    events, ended = await read_events(response)
    assert ended, "the stream ends after the terminal event"
    snapshot = events[0]
    assert snapshot.event == "snapshot"
    assert snapshot.id is None  # never moves the client's Last-Event-ID
    assert snapshot.retry is not None
    assert snapshot.data["id"] == job.id
    rest = events[1:]
    ids = [e.id for e in rest]
    assert all(ids)
    assert ids == sorted(ids, key=stream_id)
    assert len(set(ids)) == len(ids)
    assert {e.event for e in rest} <= {"status", "progress"}
    assert rest[-1].event == "status"
    assert rest[-1].data["status"] == "succeeded"
    assert ids == await stored_ids(client, job.id), "the client saw exactly what was logged"


async def test_reconnect_with_last_event_id_has_no_gap_and_no_duplicate(client):
    _, headers, job = await setup_job(client, steps=40, delay=0.05)
    first = await client.get(f"/api/jobs/{job.id}/events", headers=headers)
    seen, ended = await read_events(first, limit=6)
    assert not ended
    first.close()  # the browser lost its connection
    last_id = [e.id for e in seen if e.id][-1]
    await asyncio.sleep(0.3)  # events keep coming while it is away
    second = await client.get(f"/api/jobs/{job.id}/events", headers={**headers, "Last-Event-ID": last_id})
    more, ended = await read_events(second)
    assert ended
    assert more[0].event == "snapshot"
    received = [e.id for e in seen[1:] + more[1:]]
    assert len(received) == len(set(received)), "an event came twice"
    assert received == await stored_ids(client, job.id), "an event was missed"


async def test_a_finished_job_replays_what_is_missing_then_ends_or_answers_204(client):
    _, headers, job = await setup_job(client, steps=5, delay=0.01)
    await wait_until(lambda: _final(client, headers, job.id))
    ids = await stored_ids(client, job.id)
    middle = ids[len(ids) // 2]
    response = await client.get(f"/api/jobs/{job.id}/events", headers={**headers, "Last-Event-ID": middle})
    events, ended = await read_events(response)
    assert ended
    assert [e.id for e in events[1:]] == ids[ids.index(middle) + 1 :]
    nothing = await client.get(f"/api/jobs/{job.id}/events", headers={**headers, "Last-Event-ID": ids[-1]})
    assert nothing.status == 204
    fresh = await client.get(f"/api/jobs/{job.id}/events", headers=headers)
    everything, ended = await read_events(fresh)
    assert ended
    assert [e.id for e in everything[1:]] == ids


async def test_a_new_watcher_of_a_retried_job_follows_the_attempt_running_now(client):
    _, headers, job = await setup_job(client, steps=2, delay=0.01, fail=True)
    await wait_until(lambda: _final(client, headers, job.id))
    retried = await client.post(f"/api/jobs/{job.id}/retry", headers=headers)
    assert retried.status == 202
    # a watcher that never saw the first attempt (it failed before the page asked): the stream still
    # holds that attempt's events and its terminal "failed", which must neither end this stream nor
    # be told as news after a snapshot that says attempt 2
    response = await client.get(f"/api/jobs/{job.id}/events", headers=headers)
    events, ended = await read_events(response)
    assert ended
    assert events[0].event == "snapshot"
    assert events[0].data["attempt"] == 2
    assert {e.data["attempt"] for e in events[1:]} == {2}
    assert (events[-1].event, events[-1].data["status"]) == ("status", "failed")


async def _final(client, headers, job_id):
    """The job is final and its terminal event is in the log (the record is written before the event)."""
    body = await (await client.get(f"/api/jobs/{job_id}", headers=headers)).json()
    if body["status"] not in {"succeeded", "failed", "cancelled"}:
        return False
    log = client.app[JOBS]._events.log
    entries = await log.replay(log.job_stream(job_id), None)
    return bool(entries) and entries[-1][1] == "status" and entries[-1][2].get("status") == body["status"]


async def test_many_watchers_of_one_job_get_the_same_events(client):
    _, headers, job = await setup_job(client, steps=20, delay=0.03)
    responses = [await client.get(f"/api/jobs/{job.id}/events", headers=headers) for _ in range(25)]
    results = await asyncio.gather(*(read_events(r) for r in responses))
    expected = await stored_ids(client, job.id)
    for events, ended in results:
        assert ended
        assert [e.id for e in events[1:]] == expected


async def test_ticket_auth_for_event_source_and_no_ticket_in_logs(client, caplog):
    _, headers, job = await setup_job(client, steps=2, delay=0.01)
    ticket = (await (await client.post("/api/auth/sse-ticket", headers=headers)).json())["ticket"]
    caplog.set_level(logging.INFO)
    response = await client.get(f"/api/jobs/{job.id}/events", params={"ticket": ticket})
    assert response.status == 200
    events, _ = await read_events(response)
    assert events[0].event == "snapshot"
    assert ticket not in "\n".join(r.getMessage() + str(vars(r)) for r in caplog.records)
    await problem(await client.get(f"/api/jobs/{job.id}/events", params={"ticket": "forged"}), 401)
    access_token = headers["Authorization"].split()[1]
    await problem(await client.get(f"/api/jobs/{job.id}/events", params={"ticket": access_token}), 401)
    await problem(await client.get(f"/api/jobs/{job.id}/events"), 401)


async def test_notifications_stream_and_api(client, make_account):
    user, headers, job = await setup_job(client, steps=1)
    other = await make_account("student")
    notifications = client.app[NOTIFICATIONS]
    await wait_until(lambda: _unread(client, headers))  # the job's "finished" notification
    response = await client.get("/api/notifications/events", headers=headers)
    events, _ = await read_events(response, limit=2)
    assert events[0].event == "snapshot"
    assert events[0].data == {"unread": 1}
    assert events[1].event == "notification"  # replayed from the user's stream
    live_reader = asyncio.create_task(read_events(response, limit=2))
    await asyncio.sleep(0.3)
    sent = await notifications.notify(
        user.id, project_id=job.project_id, category="meeting", title="Invited", body="Monday", link="/x"
    )
    await client.post("/api/notifications/read-all", headers=headers)
    live, _ = await live_reader
    assert [e.event for e in live] == ["notification", "unread"]
    assert live[0].data["id"] == sent.id
    assert live[1].data == {"unread": 0}
    listing = await (await client.get("/api/notifications", headers=headers)).json()
    assert [n["title"] for n in listing["items"]] == ["Invited", "Test job finished"]
    assert all(n["read_at"] for n in listing["items"])
    newer = await notifications.notify(user.id, project_id=job.project_id, category="x", title="New")
    unread = await (await client.get("/api/notifications", params={"unread": "true"}, headers=headers)).json()
    assert [n["id"] for n in unread["items"]] == [newer.id]
    assert (await (await client.get("/api/notifications/unread-count", headers=headers)).json()) == {
        "unread": 1
    }
    await problem(await client.post(f"/api/notifications/{newer.id}/read", headers=other.headers), 404)
    marked = await (await client.post(f"/api/notifications/{newer.id}/read", headers=headers)).json()
    assert marked["read_at"]
    assert (await (await client.get("/api/notifications/unread-count", headers=headers)).json()) == {
        "unread": 0
    }


async def _unread(client, headers):
    return (await (await client.get("/api/notifications/unread-count", headers=headers)).json())["unread"]
