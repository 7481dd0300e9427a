"""What the benchmarks share: LabHub serving on its own embedded MongoDB, Redis and S3, in a
directory of the caller's, with cheap password hashing, one pool worker and quiet logs."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from domain.core.config import structure_settings  # noqa: E402
from ops.embedded import EmbeddedServices  # noqa: E402
from server import create_app  # noqa: E402

S3_KEY, S3_SECRET = "labhub-bench", "labhub-bench-secret"
METRICS_SECRET = "labhub-bench-metrics"  # the scraper's bearer secret of every bench server


def start_server(
    data_dir: Path, port: int, *, log: Path | None = None, **settings: str
) -> subprocess.Popen[bytes]:
    """`server.py serve` as its own process (embedded services under data_dir); settings are
    LABHUB_* environment overrides such as LABHUB_POOL_MAX_WORKERS="1". log: a file for the server's
    log lines, written at the default level (INFO, an access line per request) as in production;
    without it the server logs warnings only, to this terminal."""
    # every simulated person signs up and in from this one address
    level = {"LABHUB_APP_LOG_LEVEL": "INFO" if log else "WARNING", "LABHUB_AUTH_REGISTRATIONS_PER_CLIENT": "100000",
             "LABHUB_AUTH_LOGIN_FAILURES_PER_CLIENT": "100000",
             # benches measure capacity: one simulated person may hold many streams and jobs
             "LABHUB_QUOTAS_STREAMS_PER_USER": "0", "LABHUB_QUOTAS_QUEUED_JOBS_PER_USER": "0",
             "LABHUB_METRICS_BEARER_SECRET": METRICS_SECRET}  # fmt: skip
    env = {**os.environ, "LABHUB_SERVICES_DATA_DIR": str(data_dir), "LABHUB_HTTP_PORT": str(port), **level,
           **settings}  # fmt: skip
    stderr = log.open("ab") if log else None
    try:
        command = [sys.executable, str(ROOT / "server.py"), "serve"]
        return subprocess.Popen(command, cwd=ROOT, env=env, stderr=stderr)  # noqa: S603
    finally:
        if stderr:
            stderr.close()


async def backend_calls(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    """The server's calls to its services so far, from GET /metrics: {"mongodb find": n, ...,
    "pool task": n}. Two readings subtracted give what happened in between."""
    from prometheus_client.parser import text_string_to_metric_families

    async with session.get(f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_SECRET}"}) as response:
        text = await response.text()
        assert response.status == 200, text[:200]
    calls: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "labhub_backend_calls_total":
                calls[f"{sample.labels['service']} {sample.labels['operation']}"] = sample.value
            elif sample.name == "labhub_pool_tasks_total":
                calls["pool task"] = calls.get("pool task", 0.0) + sample.value
    return calls


def calls_between(before: dict[str, float], after: dict[str, float], per: int) -> str:
    """Per unit (file, request): MongoDB commands, Redis round trips, S3 requests, pool tasks; then
    each MongoDB command and S3 operation."""
    delta = {k: (v - before.get(k, 0.0)) / per for k, v in after.items() if v - before.get(k, 0.0) > 0}

    def total(service: str) -> float:
        return sum(v for k, v in delta.items() if k.startswith(service + " "))

    detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(delta.items(), key=lambda kv: -kv[1])
                       if k.split()[0] in ("mongodb", "s3"))  # fmt: skip
    return (f"MongoDB commands {total('mongodb'):.2f}, Redis round trips {total('redis'):.2f}, "
            f"S3 requests {total('s3'):.2f}, pool tasks {delta.get('pool task', 0.0):.2f} ({detail})")  # fmt: skip


async def wait_ready(session: aiohttp.ClientSession, base: str, path: str = "/ready") -> None:
    for _ in range(600):
        try:
            async with session.get(f"{base}{path}") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("server did not become ready")


def size_and_rounds(doc: str | None) -> argparse.Namespace:
    """The command line of the transfer benches: --size-mib (default 1 GiB) and --rounds."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=1)
    return parser.parse_args()


def rows_and_rounds(doc: str | None) -> argparse.Namespace:
    """The command line of the benches over a generated table: --rows (default 1,000,000) and --rounds."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    return parser.parse_args()


async def sign_up(session: aiohttp.ClientSession, base: str) -> tuple[str, str]:
    """A bench account on a fresh server and a project of its own: (access token, project id)."""
    account = {"email": "bench@lab.example", "password": "bench password 1", "name": "Bench"}
    await session.post(f"{base}/api/auth/register", json=account)
    login = await session.post(f"{base}/api/auth/login", json={k: account[k] for k in ("email", "password")})
    token = str((await login.json())["access_token"])
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{base}/api/projects", json={"name": "bench"}, headers=headers) as response:
        project_id = str((await response.json())["id"])
    return token, project_id


async def client_sign_up(client: TestClient, email: str, project: str) -> tuple[dict[str, str], str]:
    """An account and a project of its own on a TestClient's server: (auth headers, project id)."""
    account = {"email": email, "password": "bench password 1", "name": "Bench"}
    await client.post("/api/auth/register", json=account)
    login = await client.post("/api/auth/login", json={k: account[k] for k in ("email", "password")})
    headers = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
    created = await (await client.post("/api/projects", json={"name": project}, headers=headers)).json()
    return headers, str(created["id"])


async def wait_final(client: TestClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    """A job once it has ended (polled)."""
    while True:
        job: dict[str, Any] = await (await client.get(f"/api/jobs/{job_id}", headers=headers)).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.01)


@asynccontextmanager
async def labhub_server(data_dir: Path, **sections: dict[str, Any]) -> AsyncIterator[TestServer]:
    """A started server (its app is `.app`); sections replace the default settings' sections."""
    services = EmbeddedServices(data_dir / "services", s3_access_key=S3_KEY, s3_secret_key=S3_SECRET)
    services.spawn()
    try:
        endpoints = await asyncio.to_thread(services.wait_ready)
        settings = structure_settings({
            "services": {"mode": "external", "data_dir": str(data_dir)},
            "mongo": {"uri": endpoints.mongo_uri},
            "redis": {"url": endpoints.redis_url},
            "s3": {"endpoint_url": endpoints.s3_endpoint_url, "access_key": S3_KEY, "secret_key": S3_SECRET},
            "auth": {"jwt_secret": "x" * 40, "argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1},
            "pool": {"max_workers": 1},
            "app": {"log_level": "WARNING"},
            **sections,
        })  # fmt: skip
        server = TestServer(create_app(settings))
        await server.start_server()
        try:
            yield server
        finally:
            await server.close()
    finally:
        services.stop()
