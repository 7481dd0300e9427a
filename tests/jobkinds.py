"""Job kinds that exist only for tests: a worker that sleeps, reports progress and misbehaves on request."""

from __future__ import annotations

import asyncio
import ctypes
import os
import sys
import time
from typing import Any

from domain.jobs.models import Attempt, Job, JobKind
from workers.worker import JobFailed, Reporter


def sleepy(params: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """steps × delay of work with progress; crash_on (attempts), fail, raise, hang, memory on request."""
    steps = int(params.get("steps", 5))
    delay = float(params.get("delay", 0.02))
    for step in range(steps):
        reporter.progress("working", step, steps, f"step {step + 1} of {steps}")
        time.sleep(delay)
        if params.get("hang_at") == step:
            time.sleep(3600)  # no more progress points: only a kill stops this
    if reporter.attempt in params.get("crash_on", []):
        os._exit(7)
    if reporter.attempt in params.get("segfault_on", []):
        ctypes.string_at(0)
    if params.get("fail"):
        raise JobFailed("bad_input", "the input file has no numeric columns")
    if params.get("raise"):
        raise ValueError("secret internal detail")
    if params.get("memory"):
        bytearray(4 * 1024**3)
    reporter.progress("done", steps, steps)
    return {"steps": steps, "pid": os.getpid(), "attempt": reporter.attempt}


def loaded_modules(params: dict[str, Any], _reporter: Reporter) -> dict[str, Any]:
    """Which of params["names"] this worker has imported."""
    return {name: name in sys.modules for name in params["names"]}


# a test holds a job in its commit step until it sets the event it put here under params["hold_commit"]
COMMIT_GATES: dict[str, asyncio.Event] = {}


async def commit_when_released(job: Job, result: dict[str, Any], _attempt: Attempt) -> dict[str, Any]:
    gate = COMMIT_GATES.get(str(job.params.get("hold_commit", "")))
    if gate is not None:
        await gate.wait()
    return result


SLEEPY = JobKind(
    "test.sleepy", sleepy, title="Test job", commit=commit_when_released, timeout_s=60, max_attempts=3
)
TIMEOUTS = JobKind("test.timeout", sleepy, title="Timed job", timeout_s=1.0, max_attempts=2)

# for the real server in system tests: LABHUB_JOBS_PLUGINS=tests.jobkinds:SYSTEM_KINDS
SYSTEM_KINDS = [SLEEPY]
TEST_KINDS = [SLEEPY, TIMEOUTS]
