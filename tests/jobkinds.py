"""Job kinds that exist only for tests: a worker that sleeps, reports progress and misbehaves on request."""

from __future__ import annotations

import ctypes
import os
import time
from typing import Any

from domain.jobs import JobKind
from workers.pool import JobFailed, Reporter


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


SLEEPY = JobKind("test.sleepy", sleepy, title="Test job", timeout_s=60, max_attempts=3)
TIMEOUTS = JobKind("test.timeout", sleepy, title="Timed job", timeout_s=1.0, max_attempts=2)

# for the real server in system tests: LABHUB_JOBS_PLUGINS=tests.jobkinds:SYSTEM_KINDS
SYSTEM_KINDS = [SLEEPY]
TEST_KINDS = [SLEEPY, TIMEOUTS]
