"""Fixtures for tests of the real server process started with ./labhub serve."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest
import redis.asyncio as aioredis
from pymongo import AsyncMongoClient

from domain.jobs.store import JobStore
from ops.children import free_port

ROOT = Path(__file__).resolve().parents[2]


def log_path(data_dir: Path, port: int) -> Path:
    return data_dir.parent / f"{data_dir.name}-server-{port}.log"


def start(data_dir: Path, port: int, **extra_env: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "LABHUB_SERVICES_DATA_DIR": str(data_dir),
        "LABHUB_HTTP_PORT": str(port),
        **extra_env,
    }
    # output goes to a file: a pipe nobody reads would fill up and block the server
    with log_path(data_dir, port).open("ab") as log:
        return subprocess.Popen(
            [str(ROOT / "labhub"), "serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )


def run_labhub(
    data_dir: Path, *args: str, stdin: bytes | None = None, **extra_env: str
) -> subprocess.CompletedProcess[bytes]:
    """A `./labhub` command (not serve) on data_dir, to the end; its output captured."""
    env = {**os.environ, "LABHUB_SERVICES_DATA_DIR": str(data_dir), **extra_env}
    return subprocess.run(
        [str(ROOT / "labhub"), *args], cwd=ROOT, env=env, input=stdin, capture_output=True, timeout=300,
        check=False,
    )  # fmt: skip


def output(data_dir: Path, port: int) -> str:
    return log_path(data_dir, port).read_text(errors="replace")


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as response:
                return json.load(response)
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server did not become ready")


def service_endpoints(data_dir: Path) -> dict[str, str]:
    """The running server's embedded services: mongo_uri, redis_url, s3_endpoint_url."""
    return json.loads((data_dir / "services.json").read_text())


async def queue_test_job(data_dir: Path, project_id: str, owner_id: str, **params: object) -> str:
    """Queue a test.sleepy job (LABHUB_JOBS_PLUGINS=tests.jobkinds:SYSTEM_KINDS) straight in the
    server's MongoDB, as the API has no route that submits arbitrary kinds, and wake the scheduler."""
    state = service_endpoints(data_dir)
    mongo = AsyncMongoClient(state["mongo_uri"], tz_aware=True)
    try:
        job = await JobStore(mongo["labhub"]).insert(
            kind="test.sleepy", project_id=project_id, owner_id=owner_id, params=dict(params), max_attempts=3
        )
    finally:
        await mongo.close()
    wake = aioredis.from_url(state["redis_url"])
    try:
        await wake.publish("labhub:jobs:wake", b"1")
    finally:
        await wake.aclose()
    return job.id


def service_pids(data_dir: Path) -> dict[str, int]:
    return json.loads((data_dir / "services.json").read_text())["pids"]


def all_gone(pids, timeout_s: float = 10) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                continue
        if not alive:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def server(tmp_path):
    port = free_port()
    process = start(tmp_path, port)
    try:
        ready = wait_ready(port, process)
        yield process, port, ready
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
