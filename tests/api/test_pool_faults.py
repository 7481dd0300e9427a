"""A worker or the forkserver dies, idle or busy, once or twice at once: the pool comes back by
itself, the job whose worker died spends one attempt, every other job is retried as it was."""

from __future__ import annotations

import os
import signal

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from handlers.keys import POOL
from server import create_app
from tests.api.test_jobs import final_job, owner_and_project, submit
from tests.conftest import job_settings, wait_until


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    return await aiohttp_client(create_app(job_settings(services, tmp_path)))


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def working_pool(client, after_generation: int) -> list[int]:
    """Wait for a generation newer than after_generation with every worker alive; its pids."""
    pool = client.app[POOL]

    async def check():
        pids = pool.worker_pids()
        fresh = pool.generation > after_generation and pool.healthy
        return pids if fresh and len(pids) == pool.size and all(_alive(p) for p in pids) else None

    pids = await wait_until(check, timeout_s=60)
    assert (await client.get("/ready")).status == 200
    return pids


async def rebuilds_counted(client, head) -> float:
    """labhub_pool_rebuilds_total as a Prometheus scrape reads it."""
    response = await client.get("/metrics", headers=head.headers)
    assert response.status == 200
    for family in text_string_to_metric_families(await response.text()):
        if family.name == "labhub_pool_rebuilds":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    raise AssertionError("no labhub_pool_rebuilds in /metrics")


async def worker_of(client, job, attempt=1) -> int:
    return await wait_until(lambda: _started(client, job.id, attempt), timeout_s=60)


async def _started(client, job_id, attempt):
    return client.app[POOL].started_pid(job_id, attempt)


async def test_a_killed_idle_worker_is_replaced_and_jobs_still_run(client, make_account):
    head = await make_account("DH")
    pool = client.app[POOL]
    generation = pool.generation
    pids = await working_pool(client, generation - 1)
    assert await rebuilds_counted(client, head) == 0
    os.kill(pids[0], signal.SIGKILL)
    await working_pool(client, generation)
    assert await rebuilds_counted(client, head) == 1
    user, project, headers = await owner_and_project(client)
    jobs = [await submit(client, user, project, steps=2) for _ in range(3)]
    for job in jobs:
        done = await final_job(client, headers, job.id, timeout_s=60)
        assert done["status"] == "succeeded"
        assert done["attempt"] == 1  # no attempt was spent on a pool that was not there


async def test_every_worker_killed_at_once_and_again_while_the_pool_is_rebuilt(client):
    pool = client.app[POOL]
    generation = pool.generation
    for pid in await working_pool(client, generation - 1):
        os.kill(pid, signal.SIGKILL)
    # as soon as the next generation has a worker, kill it too: a death during the rebuild
    newer = await wait_until(lambda: _newer_worker(pool, generation), timeout_s=60, every_s=0.01)
    os.kill(newer, signal.SIGKILL)
    await working_pool(client, generation + 1)
    user, project, headers = await owner_and_project(client)
    done = await final_job(client, headers, (await submit(client, user, project, steps=2)).id, timeout_s=60)
    assert (done["status"], done["attempt"]) == ("succeeded", 1)


async def _newer_worker(pool, generation):
    if pool.generation <= generation:
        return None
    pids = [p for p in pool.worker_pids() if _alive(p)]
    return pids[0] if pids else None


async def test_a_busy_workers_death_costs_its_own_job_one_attempt_and_no_one_else(client):
    user, project, headers = await owner_and_project(client)
    victim = await submit(client, user, project, steps=80, delay=0.05)
    bystander = await submit(client, user, project, steps=80, delay=0.05)
    victim_pid = await worker_of(client, victim)
    await worker_of(client, bystander)
    os.kill(victim_pid, signal.SIGKILL)
    killed = await final_job(client, headers, victim.id, timeout_s=90)
    other = await final_job(client, headers, bystander.id, timeout_s=90)
    assert (killed["status"], killed["attempt"]) == ("succeeded", 2)
    assert (other["status"], other["attempt"]) == ("succeeded", 1)
    await working_pool(client, 0)


async def test_a_killed_forkserver_costs_no_job_an_attempt(client):
    pool = client.app[POOL]
    user, project, headers = await owner_and_project(client)
    jobs = [await submit(client, user, project, steps=80, delay=0.05) for _ in range(2)]
    for job in jobs:
        await worker_of(client, job)
    forkserver = pool.forkserver_pid
    assert forkserver is not None
    generation = pool.generation
    os.kill(forkserver, signal.SIGKILL)  # its workers die with it (PDEATHSIG)
    for job in jobs:
        done = await final_job(client, headers, job.id, timeout_s=120)
        assert (done["status"], done["attempt"]) == ("succeeded", 1)
    await working_pool(client, generation)
    assert pool.forkserver_pid not in (None, forkserver)
