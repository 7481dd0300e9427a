"""Inside a pool worker: set-up, progress reporting, cancellation and the wrapper every job runs in.

Workers send ("progress" | "finished", job_id, attempt, payload) tuples through a pipe made with
each pool generation (workers.pool reads them). Before a job starts, its worker writes its pid to
the pool's control directory; cancellation comes back through a flag file in the same directory,
checked at progress points.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import resource
import signal
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Lock
from pathlib import Path
from typing import Any

import psutil

WorkerEvent = tuple[str, str, int, dict[str, Any]]
WorkerFunction = Callable[[dict[str, Any], "Reporter"], dict[str, Any]]
# a worker function, or its "module:function" name: the server then never imports what only workers
# run (matplotlib, scipy, h5py, the Excel readers: ~80 MB it would hold for nothing)
WorkerTarget = WorkerFunction | str
# Arrow takes OMP_NUM_THREADS=1 as its own thread count, which made a worker read Parquet and parse
# CSV on one core (3x slower on 5M rows); its pool is set explicitly, capped because each thread's
# stack is address space under RLIMIT_AS
ARROW_MAX_THREADS = 4
MIN_EVENT_INTERVAL_S = 0.2  # at most about five progress events per second per job


class JobCancelled(Exception):
    """Raised inside a worker at a progress point once its job has been cancelled."""


class JobFailed(Exception):
    """Raised by worker functions for a failure a lab member can act on (bad input and the like)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message


def cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (psutil.cpu_count() or 1)


def pid_file(control_dir: Path, job_id: str, attempt: int) -> Path:
    """Where the worker running this attempt of the job leaves its pid."""
    return control_dir / f"{job_id}.{attempt}.pid"


def query_pid_file(control_dir: Path, query_id: str) -> Path:
    """Where the worker running a query (the query lane) leaves its pid."""
    return control_dir / f"q-{query_id}.pid"


def cancel_flag(control_dir: Path, job_id: str) -> Path:
    return control_dir / job_id


_events: Connection | None = None
_events_lock: Lock | None = None
_control_dir: Path | None = None


def init_worker(
    memory_bytes: int,
    events: Connection,
    events_lock: Lock,
    control_dir: str,
    imports: tuple[str, ...] = (),
    nice: int = 0,
) -> None:
    """Pool initializer: memory cap, no Ctrl-C (the server handles it), Agg plots, the event pipe, and
    the modules only this pool's workers need (the query lane's DuckDB: 78 MB of address space that
    the jobs' workers keep for their data)."""
    global _events, _events_lock, _control_dir  # noqa: PLW0603 - per-process state is what an initializer sets up
    # die with the forkserver, which dies with the server: no orphan workers after a SIGKILL
    with contextlib.suppress(AttributeError, OSError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    with contextlib.suppress(ImportError):
        import matplotlib

        matplotlib.use("Agg")
    with contextlib.suppress(ImportError):
        import pyarrow

        pyarrow.set_cpu_count(min(ARROW_MAX_THREADS, cpus()))
    _events, _events_lock = events, events_lock
    _control_dir = Path(control_dir)
    for name in imports:
        importlib.import_module(name)
    if nice > 0:  # batch work yields the CPU to the server and the query lane
        with contextlib.suppress(OSError):
            os.nice(nice)


def _send(event: WorkerEvent) -> None:
    if _events is not None and _events_lock is not None:
        with _events_lock:
            _events.send(event)


class Reporter:
    """Progress from a worker function: (stage, done, total, message), rate limited.

    Holds only the job id and attempt, so it pickles; it is also where a cancelled job stops.
    """

    def __init__(self, job_id: str, attempt: int) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self._last_sent = 0.0
        self._last_stage: str | None = None

    def cancelled(self) -> bool:
        return _control_dir is not None and cancel_flag(_control_dir, self.job_id).exists()

    def check(self) -> None:
        if self.cancelled():
            raise JobCancelled(self.job_id)

    def progress(
        self, stage: str, done: float | None = None, total: float | None = None, message: str = ""
    ) -> None:
        self.check()
        now = time.monotonic()
        finished_stage = total is not None and done is not None and done >= total
        if stage == self._last_stage and not finished_stage and now - self._last_sent < MIN_EVENT_INTERVAL_S:
            return
        self._last_sent, self._last_stage = now, stage
        payload = {"stage": stage, "done": done, "total": total, "message": message[:500]}
        _send(("progress", self.job_id, self.attempt, payload))


def resolve(target: WorkerTarget) -> WorkerFunction:
    if not isinstance(target, str):
        return target
    module, _, name = target.partition(":")
    function: WorkerFunction = getattr(importlib.import_module(module), name)
    return function


def run_job(target: WorkerTarget, job_id: str, attempt: int, params: dict[str, Any]) -> dict[str, Any]:
    """What the pool actually runs: leave the worker's pid where the server looks for it (written
    before the job starts, so a worker that dies in the job is always known as that job's), then the
    job's function."""
    if _control_dir is not None:
        pid_file(_control_dir, job_id, attempt).write_text(str(os.getpid()))
    try:
        reporter = Reporter(job_id, attempt)
        reporter.check()
        return resolve(target)(params, reporter)
    finally:  # after every progress event on the same pipe: the server knows it has them all
        with contextlib.suppress(OSError):  # a gone server must not turn the job's outcome into this
            _send(("finished", job_id, attempt, {}))


def call(target: str, *args: Any) -> Any:
    """A plain function by its "module:function" name, outside any job (the query lane)."""
    return resolve(target)(*args)


def control_dir() -> Path | None:
    """The pool's control directory, as this worker was started with it."""
    return _control_dir


def whoami(_index: int) -> int:
    """A job that does nothing: submitting one per slot starts every worker of a new pool."""
    return os.getpid()
