"""SIGKILL the real server in the middle of a job: after a restart the job finishes, and an SSE
client that reconnects with Last-Event-ID has seen every event exactly once."""

from __future__ import annotations

import asyncio
import signal
import time

import aiohttp
import psutil
import pytest
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from domain.infra.events import stream_id
from ops.children import free_port
from tests.sse_client import read_events
from tests.system.conftest import all_gone, queue_test_job, service_endpoints, start, wait_ready

pytestmark = pytest.mark.system

LEASE_S = 3.0
ENV = {"LABHUB_JOBS_PLUGINS": "tests.jobkinds:SYSTEM_KINDS", "LABHUB_JOBS_LEASE_S": str(LEASE_S),
       "LABHUB_JOBS_HEARTBEAT_S": "0.5"}  # fmt: skip


async def job_status(mongo_uri, job_id):
    client = AsyncMongoClient(mongo_uri)
    try:
        return await client["labhub"]["jobs"].find_one({"_id": __import__("bson").ObjectId(job_id)})
    finally:
        await client.close()


async def test_sigkill_mid_job_then_restart_finishes_it_without_gaps(tmp_path):
    port = free_port()
    server = start(tmp_path, port, **ENV)
    second = None
    try:
        await asyncio.to_thread(wait_ready, port, server)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            account = {"email": "kill@lab.example", "password": "kill -9 password", "name": "K"}
            user = await (await http.post(f"{base}/api/auth/register", json=account)).json()
            login = await http.post(
                f"{base}/api/auth/login", json={"email": account["email"], "password": account["password"]}
            )
            headers = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
            project = await (
                await http.post(f"{base}/api/projects", json={"name": "Restart"}, headers=headers)
            ).json()
            job_id = await queue_test_job(tmp_path, project["id"], user["id"], steps=50, delay=0.1)

            first = await http.get(f"{base}/api/jobs/{job_id}/events", headers=headers)
            seen, _ = await read_events(first, limit=8)
            first.close()
            assert [e.event for e in seen[1:]].count("progress") >= 1
            descendants = [p.pid for p in psutil.Process(server.pid).children(recursive=True)]
            server.send_signal(signal.SIGKILL)
            server.wait()
            assert all_gone(descendants)

        port = free_port()
        second = start(tmp_path, port, **ENV)
        restarted = time.monotonic()
        await asyncio.to_thread(wait_ready, port, second)
        base = f"http://127.0.0.1:{port}"
        state = service_endpoints(tmp_path)
        mongo_uri, redis_url = state["mongo_uri"], state["redis_url"]
        while (await job_status(mongo_uri, job_id))["attempt"] < 2:
            assert time.monotonic() - restarted < LEASE_S + 5 + 30, (
                "the abandoned job was not picked up again"
            )
            await asyncio.sleep(0.2)
        async with aiohttp.ClientSession() as http:
            last_id = [e.id for e in seen if e.id][-1]
            again = await http.get(
                f"{base}/api/jobs/{job_id}/events", headers={**headers, "Last-Event-ID": last_id}
            )
            assert again.status == 200
            rest, ended = await read_events(again, timeout_s=60)
            assert ended
        final = await job_status(mongo_uri, job_id)
        assert final["status"] == "succeeded"
        assert final["attempt"] == 2
        assert rest[-1].event == "status"
        assert rest[-1].data["status"] == "succeeded"
        received = [e.id for e in seen[1:] + rest[1:]]
        assert len(received) == len(set(received)), "an event was delivered twice"
        assert received == sorted(received, key=stream_id)
        redis = aioredis.from_url(redis_url)
        stored = [entry_id.decode() for entry_id, _ in await redis.xrange(f"labhub:job:{job_id}:events")]
        await redis.aclose()
        assert received == stored, "the client missed an event"
    finally:
        for process in (server, second):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
