"""How fast a queued job starts when a slot is free: LabHub's scheduler vs a bare process pool.

For each of N jobs (one at a time, so a slot is always free): the time from the job's insertion to
the scheduler's claim (the job's created_at -> started_at in MongoDB), and the same round for a
bare ProcessPoolExecutor (submit -> the worker function running), measured in the same run.

    .venv/bin/python bench/bench_jobs.py --jobs 50
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import labhub_server  # noqa: E402

from domain.accounts.models import Role  # noqa: E402
from handlers.keys import ACCOUNTS, JOBS, PROJECTS  # noqa: E402


def _started_at(_submitted: float) -> float:
    return time.time()


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def bare_pool(rounds: int) -> list[float]:
    latencies = []
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("forkserver")) as executor:
        executor.submit(_started_at, 0).result()  # warm
        for _ in range(rounds):
            submitted = time.time()
            latencies.append(executor.submit(_started_at, submitted).result() - submitted)
    return latencies


async def labhub(rounds: int, data_dir: Path) -> list[float]:
    # only wake-ups start jobs
    jobs = {"plugins": ["tests.jobkinds:SYSTEM_KINDS"], "poll_s": 30.0}
    async with labhub_server(data_dir, jobs=jobs) as server:
        app = server.app
        user = await app[ACCOUNTS].create(
            email="b@lab.example", password="bench password", name="B", role=Role.STUDENT
        )
        project = await app[PROJECTS].create(user, name="bench", description="")
        latencies = []
        for _ in range(rounds + 1):
            job = await app[JOBS].submit(user, project.id, "test.sleepy", {"steps": 1, "delay": 0})
            while not (current := await app[JOBS].get(user, job.id)).final:
                await asyncio.sleep(0.005)
            assert current.started_at is not None
            latencies.append((current.started_at - current.created_at).total_seconds())
        return latencies[1:]  # the first one warms the path


def main(rounds: int) -> None:
    bare = bare_pool(rounds)
    with tempfile.TemporaryDirectory(prefix="labhub-jobs-bench-") as tmp:
        ours = asyncio.run(labhub(rounds, Path(tmp)))
    print(f"queued -> started, {rounds} jobs one at a time (a slot always free)")
    for name, values in (("bare pool", bare), ("labhub", ours)):
        print(
            f"{name:>10}: p50 {1000 * percentile(values, 0.5):6.1f} ms   p99 {1000 * percentile(values, 0.99):6.1f} ms"
        )
    print(
        f"labhub/bare pool: p50 {percentile(ours, 0.5) / percentile(bare, 0.5):.0f}x, "
        f"+{1000 * (percentile(ours, 0.5) - percentile(bare, 0.5)):.1f} ms (a claim in MongoDB, a wake-up through Redis); "
        f"target: started within 100 ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=50)
    main(parser.parse_args().jobs)
