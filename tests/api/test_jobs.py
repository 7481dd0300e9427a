"""The job engine: claims, progress, failures, crashes, timeouts, cancel, retry, leases, shutdown."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer
from bson import ObjectId
from pymongo import AsyncMongoClient

from domain.accounts.models import Role
from domain.core.clock import utcnow
from domain.infra.mongo import write_attempt_output
from domain.jobs.models import JobStatus
from domain.jobs.store import JobStore
from handlers.keys import ACCOUNTS, JOBS, MONGO, POOL, PROJECTS, REDIS, SCHEDULER
from server import create_app
from tests.conftest import PASSWORD, job_settings, problem, wait_until
from tests.jobkinds import COMMIT_GATES


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    """The app with the test job kinds (this replaces the plain client for the whole module)."""
    return await aiohttp_client(create_app(job_settings(services, tmp_path)))


@pytest.fixture
def engine(client):
    return client


async def owner_and_project(client):
    email = f"owner-{ObjectId()}@lab.example"
    user = await client.app[ACCOUNTS].create(email=email, password=PASSWORD, name="Owner", role=Role.STUDENT)
    login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
    project = await client.app[PROJECTS].create(user, name="Jobs", description="")
    return user, project, headers


async def submit(client, user, project, kind="test.sleepy", **params):
    return await client.app[JOBS].submit(user, project.id, kind, params)


async def final_job(client, headers, job_id, timeout_s=90.0):
    async def check():
        body = await (await client.get(f"/api/jobs/{job_id}", headers=headers)).json()
        return body if body["status"] in {"succeeded", "failed", "cancelled"} else None

    return await wait_until(check, timeout_s)


async def test_job_runs_reports_progress_and_notifies(engine):
    client = engine
    user, project, headers = await owner_and_project(client)
    job = await submit(client, user, project, steps=6, delay=0.05)
    # the schedulers poll only every 30 s here: a start well within that proves the Redis wake-up
    # works (with room for a machine busy with other work)
    done = await final_job(client, headers, job.id, timeout_s=25)
    assert done["status"] == "succeeded"
    assert done["result"]["steps"] == 6
    assert done["attempt"] == 1
    assert done["error"] is None
    assert done["progress"]["stage"] == "commit"  # the last stage it went through
    stream = client.app[JOBS].stream(job.id)
    entries = await client.app[JOBS]._events.log.replay(stream, None)
    events = [event for _, event, _ in entries]
    assert events[0] == "status"
    assert "progress" in events
    assert entries[-1][2]["status"] == "succeeded"

    async def notified():  # the notice follows the final status; it is not part of the same write
        return (await (await client.get("/api/notifications", headers=headers)).json())["items"]

    notes = await wait_until(notified)
    assert notes[0]["title"] == "Test job finished"
    assert notes[0]["link"] == f"/api/jobs/{job.id}"


async def test_a_late_worker_event_never_moves_progress_back_or_lands_after_the_end(engine):
    """The worker's last progress travels through a pipe, its result through the executor: the result
    can win. An event that arrives once the commit stage began must not overwrite it."""
    client = engine
    scheduler = client.app[SCHEDULER]
    user, project, headers = await owner_and_project(client)
    key = str(ObjectId())
    gate = COMMIT_GATES[key] = asyncio.Event()
    job = await submit(client, user, project, steps=2, delay=0.01, hold_commit=key)
    stream = client.app[JOBS].stream(job.id)

    async def stages():
        return [data.get("stage") for _, event, data in await client.app[JOBS]._events.log.replay(stream, None)
                if event == "progress"]  # fmt: skip

    await wait_until(lambda: _holds(stages, "commit"))
    # a straggler from the worker, then a marker, queued as the pool's reader thread queues them (here
    # without the thread hop): once the loop has taken the marker, the straggler has been handled
    # completely (one consumer, in order)
    scheduler._worker_events.put_nowait(("progress", job.id, 1, {"stage": "done", "done": 2, "total": 2}))
    scheduler._worker_events.put_nowait(("progress", str(ObjectId()), 1, {"stage": "marker"}))
    await wait_until(_queue_drained(scheduler))
    gate.set()
    done = await final_job(client, headers, job.id)
    del COMMIT_GATES[key]
    assert done["status"] == "succeeded"
    assert done["progress"]["stage"] == "commit"

    async def published():  # MongoDB has the final state first; the live view (event, then snapshot) follows
        snapshot = await client.app[JOBS]._events.log.snapshot(job.id)
        return snapshot["status"] == "succeeded"

    await wait_until(published)
    entries = await client.app[JOBS]._events.log.replay(stream, None)
    after_commit = [event for _, event, data in entries][
        [data.get("stage") for _, _, data in entries].index("commit") + 1 :
    ]
    assert after_commit == ["status"], "nothing but the terminal status may follow the commit stage"
    snapshot = await client.app[JOBS]._events.log.snapshot(job.id)
    assert snapshot["status"] == "succeeded"
    assert snapshot["progress"]["stage"] == "commit"


async def _holds(stages, stage):
    return stage in await stages()


def _queue_drained(scheduler):
    async def check():
        return scheduler._worker_events.empty()

    return check


async def test_job_is_hidden_from_outsiders(engine, make_account):
    client = engine
    user, project, headers = await owner_and_project(client)
    outsider = await make_account("student")
    job = await submit(client, user, project, steps=1)
    await problem(await client.get(f"/api/jobs/{job.id}", headers=outsider.headers), 404)
    await problem(await client.post(f"/api/jobs/{job.id}/cancel", headers=outsider.headers), 404)
    await problem(await client.get(f"/api/jobs/{job.id}/events", headers=outsider.headers), 404)
    await problem(await client.get(f"/api/jobs/{job.id}"), 401)
    await problem(await client.get("/api/jobs/not-a-job", headers=headers), 404)


async def test_failure_carries_a_code_and_a_human_message(engine):
    client = engine
    user, project, headers = await owner_and_project(client)
    failed = await final_job(client, headers, (await submit(client, user, project, steps=1, fail=True)).id)
    assert failed["status"] == "failed"
    assert failed["error"] == {"code": "bad_input", "message": "the input file has no numeric columns"}
    assert failed["attempt"] == 1  # a deterministic failure is not retried
    crashed = await final_job(
        client, headers, (await submit(client, user, project, steps=1, **{"raise": True})).id
    )
    assert crashed["error"]["code"] == "internal_error"
    assert "secret internal detail" not in str(crashed)
    assert "Traceback" not in str(crashed)
    notes = await (await client.get("/api/notifications", headers=headers)).json()
    assert notes["items"][0]["title"] == "Test job failed"


async def test_worker_crash_rebuilds_the_pool_and_retries(engine):
    client = engine
    user, project, headers = await owner_and_project(client)
    generation = client.app[POOL].generation
    survivor = await submit(client, user, project, steps=40, delay=0.05)
    crasher = await submit(client, user, project, steps=2, crash_on=[1])
    crashed = await final_job(client, headers, crasher.id)
    assert crashed["status"] == "succeeded"
    assert crashed["attempt"] == 2
    assert client.app[POOL].generation > generation
    # the job that shared the broken pool was handed back and finished too
    other = await final_job(client, headers, survivor.id)
    assert other["status"] == "succeeded"
    assert (await client.get("/ready")).status == 200


async def test_segfault_on_every_attempt_gives_up(engine):
    client = engine
    user, project, headers = await owner_and_project(client)
    job = await submit(client, user, project, steps=1, segfault_on=[1, 2, 3])
    failed = await final_job(client, headers, job.id)
    assert failed["status"] == "failed"
    assert failed["attempt"] == 3
    assert failed["error"]["code"] == "worker_crashed"
    assert (await client.get("/ready")).status == 200


async def test_out_of_memory_fails_cleanly(engine):
    client = engine
    user, project, headers = await owner_and_project(client)
    failed = await final_job(client, headers, (await submit(client, user, project, steps=1, memory=True)).id)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "out_of_memory"


async def test_a_job_submitted_while_a_slot_is_idle_starts_without_a_claim(engine):
    client = engine
    user, project, headers = await owner_and_project(client)
    scheduler, jobs = client.app[SCHEDULER], client.app[MONGO]["jobs"]

    async def idle():  # its last claim found nothing and no wake-up came since
        return not scheduler._maybe_queued and not scheduler.running_jobs

    await wait_until(idle)
    started = await submit(client, user, project, steps=1)
    assert started.status.value == "running"
    assert started.lease is not None
    assert started.lease.owner == scheduler.instance_id
    stored = await jobs.find_one({"_id": ObjectId(started.id)})
    assert (stored["status"], stored["lease"]["owner"]) == ("running", scheduler.instance_id)
    assert (await final_job(client, headers, started.id))["status"] == "succeeded"
    # every slot busy: the next job is queued, and claimed once a slot is free
    blockers = [await submit(client, user, project, steps=200, delay=0.05) for _ in range(client.app[POOL].size)]
    queued = await submit(client, user, project, steps=1)
    assert queued.status.value == "queued"
    for blocker in blockers:
        await client.post(f"/api/jobs/{blocker.id}/cancel", headers=headers)
    assert (await final_job(client, headers, queued.id))["status"] == "succeeded"
    # a kind this instance does not run stays queued, idle slot or not (another instance may run it)
    await wait_until(idle)
    elsewhere = await client.app[JOBS].enqueue(user.id, project.id, "test.run-elsewhere", {})
    assert elsewhere.status.value == "queued"


async def test_timeout_kills_and_fails_once_attempts_are_used(engine):
    client = engine
    user, project, headers = await owner_and_project(client)
    job = await submit(client, user, project, kind="test.timeout", steps=3, delay=0.05, hang_at=1)
    failed = await final_job(client, headers, job.id)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "timeout"
    assert failed["attempt"] == 2


async def test_cancel_a_queued_job(engine):
    client = engine
    user, project, headers = await owner_and_project(client)
    blockers = [await submit(client, user, project, steps=100, delay=0.05) for _ in range(2)]
    await wait_until(lambda: _status_is(client, headers, blockers[1].id, "running"))
    queued = await submit(client, user, project, steps=1)
    response = await client.post(f"/api/jobs/{queued.id}/cancel", headers=headers)
    assert response.status == 202
    assert (await response.json())["status"] == "cancelled"
    await problem(await client.post(f"/api/jobs/{queued.id}/cancel", headers=headers), 409)
    for blocker in blockers:
        await client.post(f"/api/jobs/{blocker.id}/cancel", headers=headers)
        assert (await final_job(client, headers, blocker.id))["status"] == "cancelled"


async def _status_is(client, headers, job_id, status):
    return (await (await client.get(f"/api/jobs/{job_id}", headers=headers)).json())["status"] == status


async def test_cancel_a_running_job_at_its_next_progress_point(engine):
    client = engine
    user, project, headers = await owner_and_project(client)
    job = await submit(client, user, project, steps=200, delay=0.05)
    await wait_until(lambda: _status_is(client, headers, job.id, "running"))
    generation = client.app[POOL].generation
    response = await client.post(f"/api/jobs/{job.id}/cancel", headers=headers)
    assert (await response.json())["cancel_requested"] is True
    cancelled = await final_job(client, headers, job.id)  # had it not stopped, it would end "succeeded"
    assert cancelled["status"] == "cancelled"
    assert client.app[POOL].generation == generation  # stopped by itself, nothing killed


async def test_cancel_a_job_that_never_checks_is_killed_after_the_grace(engine):
    client = engine
    user, project, headers = await owner_and_project(client)
    job = await submit(client, user, project, steps=5, delay=0.01, hang_at=0)
    events = client.app[JOBS]._events.log

    async def hanging():  # the worker's one progress point has passed: from now on only a kill stops it
        # (the scheduler's own "prepare" stage comes first: the job may still be waiting for a worker)
        return any(
            event == "progress" and data.get("stage") == "working"
            for _, event, data in await events.replay(events.job_stream(job.id), None)
        )

    await wait_until(hanging)
    generation = client.app[POOL].generation
    await client.post(f"/api/jobs/{job.id}/cancel", headers=headers)
    cancelled = await final_job(client, headers, job.id)  # a loaded machine may take a while to kill and report it
    assert cancelled["status"] == "cancelled"

    async def rebuilt():  # killing its worker broke the pool, which the watchdog rebuilds
        return client.app[POOL].generation > generation and client.app[POOL].healthy

    await wait_until(rebuilt)


async def test_retry_a_failed_job_as_a_new_attempt(engine, make_account):
    client = engine
    user, project, headers = await owner_and_project(client)
    job = await submit(client, user, project, steps=1, fail=True)
    await final_job(client, headers, job.id)
    viewer = await make_account("student")
    await client.post(
        f"/api/projects/{project.id}/members", json={"user_id": viewer.id, "role": "viewer"}, headers=headers
    )
    await problem(await client.post(f"/api/jobs/{job.id}/retry", headers=viewer.headers), 403)
    response = await client.post(f"/api/jobs/{job.id}/retry", headers=headers)
    assert response.status == 202
    retried = await response.json()
    assert retried["status"] == "queued"
    assert retried["attempt"] == 2
    assert retried["error"] is None
    again = await final_job(client, headers, job.id)
    assert again["attempt"] == 2
    assert again["status"] == "failed"  # still bad input, but it ran again
    ok = await submit(client, user, project, steps=1)
    await final_job(client, headers, ok.id)
    await problem(await client.post(f"/api/jobs/{ok.id}/retry", headers=headers), 409)


async def test_a_final_job_is_read_from_its_copy_in_redis_which_follows_mongodb(engine):
    client = engine
    user, project, headers = await owner_and_project(client)
    job = await submit(client, user, project, steps=1)
    done = await final_job(client, headers, job.id)
    jobs, url = client.app[JOBS], f"/api/jobs/{job.id}"
    stored = await jobs.find(job.id)
    assert done["result"] == stored.result
    assert done["finished_at"] == stored.finished_at.isoformat()
    assert done["params"] == stored.params
    assert done["owner_id"] == user.id
    # without the copy (expired, or lost with Redis's last second) MongoDB answers the same
    await client.app[REDIS].client.delete(jobs._events.log.final_job_key(job.id))
    assert await (await client.get(url, headers=headers)).json() == done
    # with it, the copy answers: even with MongoDB's document gone behind LabHub's back
    await jobs._events.status(stored)
    await client.app[MONGO]["jobs"].delete_one({"_id": ObjectId(job.id)})
    assert await (await client.get(url, headers=headers)).json() == done
    outsider = await client.app[ACCOUNTS].create(
        email=f"out-{ObjectId()}@lab.example", password=PASSWORD, name="Out", role=Role.STUDENT
    )
    login = await client.post("/api/auth/login", json={"email": outsider.email, "password": PASSWORD})
    other = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
    await problem(await client.get(url, headers=other), 404)  # the copy is checked as the job is
    # a job removed with its record is gone from both
    failed = await final_job(client, headers, (await submit(client, user, project, steps=1, fail=True)).id)
    await jobs.forget(failed["id"])
    await problem(await client.get(f"/api/jobs/{failed['id']}", headers=headers), 404)


async def test_abandoned_lease_is_swept_and_run_again(engine):
    client = engine
    user, project, headers = await owner_and_project(client)
    store = JobStore(client.app[MONGO])
    job = await store.insert(
        kind="test.sleepy", project_id=project.id, owner_id=user.id, params={"steps": 1}, max_attempts=3
    )
    # another instance claimed it and died: its lease runs out and this instance sweeps it
    await client.app[MONGO]["jobs"].update_one(
        {"_id": ObjectId(job.id)},
        {"$set": {"status": "running", "lease": {"owner": "dead-instance", "expires_at": utcnow()}}},
    )
    done = await final_job(client, headers, job.id)
    assert done["status"] == "succeeded"
    assert done["attempt"] == 2


async def test_abandoned_lease_with_no_attempts_left_fails(engine):
    client = engine
    user, project, headers = await owner_and_project(client)
    store = JobStore(client.app[MONGO])
    job = await store.insert(
        kind="test.sleepy", project_id=project.id, owner_id=user.id, params={}, max_attempts=1
    )
    await client.app[MONGO]["jobs"].update_one(
        {"_id": ObjectId(job.id)},
        {"$set": {"status": "running", "lease": {"owner": "dead-instance", "expires_at": utcnow()}}},
    )
    failed = await final_job(client, headers, job.id)
    assert failed["error"]["code"] == "attempts_exhausted"


async def test_a_stale_attempt_cannot_overwrite_a_newer_one(engine):
    client = engine
    user, project, _ = await owner_and_project(client)
    store = JobStore(client.app[MONGO])
    job = await store.insert(
        kind="nobody.runs.this", project_id=project.id, owner_id=user.id, params={}, max_attempts=3
    )
    first = await store.claim("instance-a", ["nobody.runs.this"], 0.01)
    await asyncio.sleep(0.05)  # instance A's lease runs out
    requeued = await store.requeue(None, first, bump=True, expired_before=utcnow())
    assert requeued.attempt == 2
    second = await store.claim("instance-b", ["nobody.runs.this"], 60)
    outputs = client.app[MONGO]["test_outputs"]
    assert await write_attempt_output(outputs, job.id, {"value": "new"}, job_id=job.id, attempt=2)
    # instance A wakes up late with attempt 1: neither its output nor its status lands
    assert not await write_attempt_output(outputs, job.id, {"value": "old"}, job_id=job.id, attempt=1)
    assert await store.finish(first, status=JobStatus.SUCCEEDED, owner="instance-a") is None
    output = await client.app[MONGO]["test_outputs"].find_one({"_id": ObjectId(job.id)})
    assert output["value"] == "new"
    assert output["attempt"] == 2
    assert await store.finish(second, status=JobStatus.SUCCEEDED, owner="instance-b")


async def test_two_instances_share_one_queue_without_running_a_job_twice(aiohttp_client, services, tmp_path):
    settings = job_settings(services, tmp_path)
    first = await aiohttp_client(create_app(settings))
    second = await aiohttp_client(create_app(settings))
    user, project, headers = await owner_and_project(first)
    jobs = [await submit(first, user, project, steps=3, delay=0.05) for _ in range(10)]
    results = [await final_job(first, headers, job.id) for job in jobs]
    assert all(r["status"] == "succeeded" for r in results)
    assert all(r["attempt"] == 1 for r in results), "a job ran more than once"
    events = first.app[JOBS]._events.log
    for job in jobs:
        entries = await events.replay(events.job_stream(job.id), None)
        running = [data for _, event, data in entries if event == "status" and data["status"] == "running"]
        assert len(running) == 1, "a job was started twice"
    pids = {r["result"]["pid"] for r in results}
    assert pids & set(first.app[POOL].worker_pids()), "the first instance did none of the work"
    assert pids & set(second.app[POOL].worker_pids()), "the second instance did none of the work"


async def test_graceful_stop_puts_running_jobs_back_in_the_queue(aiohttp_client, services, tmp_path):
    settings = job_settings(services, tmp_path)
    client = await aiohttp_client(create_app(settings))
    user, project, headers = await owner_and_project(client)
    job = await submit(client, user, project, steps=400, delay=0.05)
    quick = await submit(client, user, project, steps=2, delay=0.01)
    await wait_until(lambda: _status_is(client, headers, job.id, "running"))
    await final_job(client, headers, quick.id)
    await client.close()  # SIGTERM path: stop claiming, grace, put the rest back
    mongo = AsyncMongoClient(settings.mongo.uri)
    try:
        stored = await mongo[settings.mongo.database]["jobs"].find_one({"_id": ObjectId(job.id)})
    finally:
        await mongo.close()
    assert stored["status"] == "queued"
    assert stored["attempt"] == 1
    assert stored["error"] is None
    # another instance picks it up as it was and finishes it
    again = await aiohttp_client(create_app(settings))
    assert (await final_job(again, headers, job.id, timeout_s=60))["status"] == "succeeded"


async def test_system_view_is_for_heads(client, make_account):
    head = await make_account("DH")
    student = await make_account("student")
    await problem(await client.get("/api/system", headers=student.headers), 403)
    response = await client.get("/api/system", headers=head.headers)
    assert response.status == 200
    view = await response.json()
    sizing = view["pool"]["sizing"]
    assert sizing["size"] == 2  # min_workers = max_workers = 2 in these tests
    assert {
        "cpu_count",
        "available_bytes",
        "ram_fraction",
        "worker_memory_bytes",
        "min_workers",
        "max_workers",
    } <= set(sizing)
    assert view["pool"]["healthy"] is True
    assert set(view["jobs"]) == {"queued", "running", "succeeded", "failed", "cancelled"}
    assert view["versions"]["python"]
    assert view["versions"]["aiohttp"]


async def test_a_server_stopped_just_after_it_started_stops_its_background_loops(services, tmp_path, caplog):
    """Found while timing the suite: a stop that landed while the scheduler's first sweep (pymongo)
    or its Redis subscription was under way was swallowed by the library, the loops went on, and
    every stop waited 15 s for them (and then left them running against closed clients)."""
    for round_ in range(3):
        client = TestClient(TestServer(create_app(job_settings(services, tmp_path / str(round_)))))
        await client.start_server()
        scheduler_tasks = set(client.app[SCHEDULER]._tasks)
        await client.close()
        assert all(task.done() for task in scheduler_tasks), [t for t in scheduler_tasks if not t.done()]
    assert "did not stop" not in caplog.text
