"""Two `./labhub serve` processes in external mode on one set of services (`./labhub services`):
jobs run once each and spread over both pools, event streams and revocations cross instances,
and a SIGKILLed instance's job is taken over by the other when its lease runs out."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
from pymongo import AsyncMongoClient

from ops.children import free_port
from tests.api.test_metrics import samples, value
from tests.sse_client import SseParser, collect
from tests.system.conftest import ROOT, queue_test_job, start, wait_ready

pytestmark = pytest.mark.system

LEASE_S = 3.0
SCRAPER = "the-scraper-secret-of-this-test-0123456789"
CACHE_S = 2.0  # auth.identity_cache_s: how long another instance may still honour a revoked token
CSV = b"t,v,w\n" + b"".join(b"%d,%d,%d\n" % (i, i * 3, i % 7) for i in range(60_000))


def run_services(data_dir: Path, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """./labhub services on data_dir, and the lines it prints once the services are up."""
    env = {**os.environ, "LABHUB_SERVICES_DATA_DIR": str(data_dir)}
    with (data_dir.parent / f"{data_dir.name}-services.log").open("ab") as log:
        process = subprocess.Popen(
            [str(ROOT / "labhub"), "services", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=log, text=True,
        )  # fmt: skip
    assert process.stdout is not None
    first = process.stdout.readline()  # blocks until the services answer (or the command fails)
    assert first, f"./labhub services printed nothing (exit {process.poll()})"
    lines = [first.strip()]
    if args:  # --env: the remaining export lines came with the first
        lines += [process.stdout.readline().strip() for _ in range(6)]
    return process, lines


@pytest.fixture
def services(tmp_path) -> Iterator[dict[str, str]]:
    process, [line] = run_services(tmp_path / "services")
    try:
        yield json.loads(line)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0


def instance_env(found: dict[str, str]) -> dict[str, str]:
    return {
        "LABHUB_SERVICES_MODE": "external",
        "LABHUB_MONGO_URI": found["mongo_uri"],
        "LABHUB_REDIS_URL": found["redis_url"],
        "LABHUB_S3_ENDPOINT_URL": found["s3_endpoint_url"],
        "LABHUB_S3_ACCESS_KEY": found["s3_access_key"],
        "LABHUB_S3_SECRET_KEY_FILE": found["s3_secret_key_file"],
        "LABHUB_AUTH_JWT_SECRET_FILE": found["jwt_secret_file"],
        "LABHUB_JOBS_PLUGINS": "tests.jobkinds:SYSTEM_KINDS",
        "LABHUB_JOBS_LEASE_S": str(LEASE_S),
        "LABHUB_JOBS_HEARTBEAT_S": "0.5",
        "LABHUB_AUTH_IDENTITY_CACHE_S": str(CACHE_S),
        "LABHUB_POOL_MIN_WORKERS": "1",
        "LABHUB_POOL_MAX_WORKERS": "1",  # one slot each: while one instance is busy the other claims
        "LABHUB_METRICS_BEARER_SECRET": SCRAPER,
    }


async def job_doc(mongo_uri: str, job_id: str) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        found = await client["labhub"]["jobs"].find_one({"_id": __import__("bson").ObjectId(job_id)})
        assert found is not None
        return found
    finally:
        await client.close()


async def wait_for(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while not (value := await check()):
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)
    return value


def owner_pid(job: dict[str, Any]) -> int:
    return int(job["lease"]["owner"].split(":")[1])  # the scheduler's instance id: host:pid:random


def runs_in(pid: int, server: subprocess.Popen[bytes]) -> bool:
    return pid in {p.pid for p in psutil.Process(server.pid).children(recursive=True)}


async def test_two_instances_share_jobs_streams_revocations_and_take_over_a_killed_ones_job(
    services, tmp_path
):
    env = instance_env(services)
    ports = [free_port(), free_port()]
    servers = [start(tmp_path / name, port, **env) for name, port in zip("ab", ports, strict=True)]
    try:
        for port, server in zip(ports, servers, strict=True):
            await asyncio.to_thread(wait_ready, port, server)
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        a, b = (httpx.AsyncClient(base_url=base, timeout=60) for base in bases)
        async with a, b:
            account = {"email": "head@lab.example", "password": "two instances, one lab", "name": "H"}
            user = (await a.post("/api/auth/register", json=account)).json()
            login = (
                await b.post("/api/auth/login", json={k: account[k] for k in ("email", "password")})
            ).json()
            auth = {"Authorization": f"Bearer {login['access_token']}"}  # made by B, honoured by A
            project = (await a.post("/api/projects", json={"name": "Shared"}, headers=auth)).json()["id"]

            # a job watched over SSE on the instance that does not run it, from start to end
            job_id = await queue_test_job(tmp_path / "services", project, user["id"], steps=15, delay=0.1)
            running = await wait_for(lambda: _running(services, job_id), 60, "the job never started")
            watcher = b if owner_pid(running) == servers[0].pid else a  # the one not running it
            async with watcher.stream("GET", f"/api/jobs/{job_id}/events", headers=auth) as response:
                events, ended = await collect(response.aiter_lines(), SseParser(), timeout_s=60)
            assert ended
            statuses = [e.data["status"] for e in events if e.event == "status"]
            assert statuses[0] == "running"
            assert statuses[-1] == "succeeded"
            progress = [
                e.data["done"] for e in events if e.event == "progress" and e.data["stage"] == "working"
            ]
            # progress is sent at most so often (coalesced), from the first step on, in order
            assert progress[0] == 0
            assert progress == sorted(set(progress))
            assert len(progress) >= 3

            # ingestions posted to both run once each, on both pools
            posted = await asyncio.gather(*(
                http.post(f"/api/projects/{project}/ingestions", headers=auth,
                          files={"files": (f"run{i}.csv", CSV, "text/csv")})
                for i, http in enumerate([a, b, a, b, a, b])
            ))  # fmt: skip
            ids = [r.json()["jobs"][0]["id"] for r in posted]
            for job in ids:
                done = await wait_for(
                    lambda job=job: _final(services, job), 180, "an ingestion never finished"
                )
                assert done["status"] == "succeeded", done
                assert done["attempt"] == 1
            scraper = {"Authorization": f"Bearer {SCRAPER}"}
            ran = [value(samples((await http.get("/metrics", headers=scraper)).text), "labhub_jobs_finished_total",
                         kind="ingest", status="succeeded") for http in (a, b)]  # fmt: skip
            assert sum(ran) == len(ids), ran  # each exactly once
            assert min(ran) >= 1, f"one instance ran them all: {ran}"
            datasets = (await a.get(f"/api/projects/{project}/datasets", headers=auth)).json()["items"]
            assert sorted(d["job_id"] for d in datasets) == sorted(ids)

            # a token revoked on A is refused by B once B's identity cache has run out
            token = (
                await a.post("/api/tokens", json={"name": "pc", "scopes": ["read"]}, headers=auth)
            ).json()
            pat = {"Authorization": f"Bearer {token['token']}"}
            assert (await b.get("/api/projects", headers=pat)).status_code == 200
            assert (await a.delete(f"/api/tokens/{token['id']}", headers=auth)).status_code == 204
            await asyncio.sleep(CACHE_S + 0.1)  # the documented delay, not a wait for luck
            refused = await b.get("/api/projects", headers=pat)
            assert refused.status_code == 401, refused.text

            # SIGKILL the instance running a job: the other takes it over after the lease and finishes it
            job_id = await queue_test_job(tmp_path / "services", project, user["id"], steps=60, delay=0.1)
            running = await wait_for(lambda: _running(services, job_id), 60, "the job never started")
            victim = next(s for s in servers if s.pid == owner_pid(running))
            survivor = next(s for s in servers if s is not victim)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            done = await wait_for(
                lambda: _final(services, job_id), LEASE_S + 120, "the job was not taken over"
            )
            assert done["status"] == "succeeded", done
            assert done["attempt"] == 2
            assert runs_in(done["result"]["pid"], survivor), "the survivor's pool ran the second attempt"
    finally:
        for server in servers:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                server.wait(timeout=60)


async def _running(found: dict[str, str], job_id: str) -> dict[str, Any] | None:
    job = await job_doc(found["mongo_uri"], job_id)
    return job if job["status"] == "running" and job.get("lease") else None


async def _final(found: dict[str, str], job_id: str) -> dict[str, Any] | None:
    job = await job_doc(found["mongo_uri"], job_id)
    return job if job["status"] in {"succeeded", "failed", "cancelled"} else None


def test_services_env_lines_can_be_sourced(tmp_path):
    process, lines = run_services(tmp_path / "services", "--env")
    try:
        exported = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in lines)
        assert exported["LABHUB_SERVICES_MODE"] == "external"
        # the services ask for passwords, which the URLs carry (never shown by check-config)
        mongo, redis_url = urlsplit(exported["LABHUB_MONGO_URI"]), urlsplit(exported["LABHUB_REDIS_URL"])
        assert (mongo.scheme, mongo.hostname, mongo.username) == ("mongodb", "127.0.0.1", "labhub")
        assert (redis_url.scheme, redis_url.hostname) == ("redis", "127.0.0.1")
        assert mongo.password
        assert redis_url.password
        assert Path(exported["LABHUB_S3_SECRET_KEY_FILE"]).read_text().strip()
        assert oct(Path(exported["LABHUB_S3_SECRET_KEY_FILE"]).stat().st_mode & 0o777) == "0o600"
        # the printed settings are accepted as they are by the configuration loader
        checked = subprocess.run(
            [str(ROOT / "labhub"), "check-config"], cwd=ROOT, env={**os.environ, **exported},
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stderr
        assert "mode='external'" in checked.stdout
        assert mongo.password not in checked.stdout
        assert redis_url.password not in checked.stdout
        assert "labhub:***@127.0.0.1" in checked.stdout
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
