"""The process pool: sizing from the host, worker set-up, progress reporting and rebuilding.

Everything here is synchronous. Workers send ("started" | "progress" | "finished", job_id, attempt, payload)
tuples through a pipe created with each pool generation; a reader thread in the server hands them
to a callback. Cancellation reaches a running job through a flag file it checks at progress points.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.machinery
import logging
import math
import multiprocessing
import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Lock
from pathlib import Path
from typing import Any

import attrs
import psutil

log = logging.getLogger("labhub.pool")

WorkerEvent = tuple[str, str, int, dict[str, Any]]
WorkerFunction = Callable[[dict[str, Any], "Reporter"], dict[str, Any]]
# a worker function, or its "module:function" name: the server then never imports what only workers
# run (matplotlib, scipy, h5py, the Excel readers: ~80 MB it would hold for nothing)
WorkerTarget = WorkerFunction | str
# what every worker needs, imported once by the forkserver and shared with the workers it forks
PRELOAD = ["workers.preload"]
# Worker memory is capped with RLIMIT_AS, which counts address space, not use: BLAS thread pools,
# glibc's per-thread arenas (64 MiB each) and mimalloc's 1 GiB reservation (Arrow's default pool)
# would spend the budget on reservations, so workers use single-threaded math, two malloc arenas and
# Arrow's system allocator, with large blocks handed back to the kernel when freed.
WORKER_ENVIRONMENT = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
    "MALLOC_MMAP_THRESHOLD_": "1048576",
    "ARROW_DEFAULT_MEMORY_POOL": "system",
}
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


@attrs.frozen
class PoolSizing:
    cpu_count: int
    available_bytes: int
    ram_fraction: float
    worker_memory_bytes: int
    min_workers: int
    max_workers: int
    size: int


def choose_size(
    *,
    cpu_count: int,
    available_bytes: int,
    ram_fraction: float,
    worker_memory_bytes: int,
    min_workers: int,
    max_workers: int,
) -> PoolSizing:
    """clamp(min(cpus, floor(available RAM * fraction / per-worker budget)), min, max)."""
    by_memory = math.floor(available_bytes * ram_fraction / worker_memory_bytes)
    size = max(min_workers, min(max_workers, cpu_count, by_memory))
    return PoolSizing(
        cpu_count, available_bytes, ram_fraction, worker_memory_bytes, min_workers, max_workers, size
    )


def host_sizing(
    *, ram_fraction: float, worker_memory_bytes: int, min_workers: int, max_workers: int
) -> PoolSizing:
    cpus = _cpus()
    return choose_size(
        cpu_count=cpus,
        available_bytes=psutil.virtual_memory().available,
        ram_fraction=ram_fraction,
        worker_memory_bytes=worker_memory_bytes,
        min_workers=min_workers,
        max_workers=max_workers,
    )


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (psutil.cpu_count() or 1)


# -- inside a worker process ---------------------------------------------------------------------

_events: Connection | None = None
_events_lock: Lock | None = None
_cancel_dir: Path | None = None


def init_worker(memory_bytes: int, events: Connection, events_lock: Lock, cancel_dir: str) -> None:
    """Pool initializer: memory cap, no Ctrl-C (the server handles it), Agg plots, the event pipe."""
    global _events, _events_lock, _cancel_dir  # noqa: PLW0603 - per-process state is what an initializer sets up
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

        pyarrow.set_cpu_count(min(ARROW_MAX_THREADS, _cpus()))
    _events, _events_lock = events, events_lock
    _cancel_dir = Path(cancel_dir)


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
        return _cancel_dir is not None and (_cancel_dir / self.job_id).exists()

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
    """What the pool actually runs: announce the worker's pid, then the job's function."""
    _send(("started", job_id, attempt, {"pid": os.getpid()}))
    try:
        reporter = Reporter(job_id, attempt)
        reporter.check()
        return resolve(target)(params, reporter)
    finally:  # after every progress event on the same pipe: the server knows it has them all
        with contextlib.suppress(OSError):  # a gone server must not turn the job's outcome into this
            _send(("finished", job_id, attempt, {}))


def _noop(_index: int) -> int:
    return os.getpid()


# -- in the server -------------------------------------------------------------------------------


def _keep_main_out_of_workers() -> None:
    """Workers never need the program that started the pool (server.py: aiohttp, the stores and
    services, ~55 MB in every worker). multiprocessing re-runs a main *script* in each worker, as
    __mp_main__ (a forkserver preload of "__main__", which would share it, never got the script's
    path before CPython gh-126631 was fixed in 2025), but leaves alone a main module whose name is
    "__main__"."""
    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None:
        main.__spec__ = importlib.machinery.ModuleSpec("__main__", None)


class WorkerPool:
    """A ProcessPoolExecutor (forkserver, preloaded) that can be rebuilt when a worker dies."""

    def __init__(self, size: int, memory_bytes: int) -> None:
        self.size = size
        self.memory_bytes = memory_bytes
        self._on_event: Callable[[WorkerEvent], None] = lambda _event: None
        self._lock = threading.Lock()
        self._cancel_dir = Path(tempfile.mkdtemp(prefix="labhub-cancel-"))
        self.generation = 0
        self._executor: ProcessPoolExecutor | None = None
        self._pipe: tuple[Connection, Connection] | None = None
        self._reader: threading.Thread | None = None
        self._reader_stop = threading.Event()
        self._context = multiprocessing.get_context("forkserver")
        for name, value in WORKER_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        os.environ["_LABHUB_POOL_PARENT"] = str(os.getpid())  # checked by the forkserver (workers.preload)
        with contextlib.suppress(ValueError):  # the forkserver is per process and may be running already
            self._context.set_forkserver_preload(PRELOAD)
        _keep_main_out_of_workers()

    def listen(self, on_event: Callable[[WorkerEvent], None]) -> None:
        """Where started/progress events from the workers go (called from a reader thread)."""
        self._on_event = on_event

    def start(self) -> None:
        with self._lock:
            self._start_locked()
        # start the workers now (forkserver start-up and preload cost a second or two)
        list(self.executor.map(_noop, range(self.size)))

    def _start_locked(self) -> None:
        # a fresh pipe and lock per generation: a killed worker may have left the old ones torn or held
        receiver, sender = self._context.Pipe(duplex=False)
        self._pipe = (receiver, sender)
        self._executor = ProcessPoolExecutor(
            max_workers=self.size,
            mp_context=self._context,
            initializer=init_worker,
            initargs=(self.memory_bytes, sender, self._context.Lock(), str(self._cancel_dir)),
        )
        self.generation += 1
        self._reader_stop = threading.Event()
        self._reader = threading.Thread(
            target=self._read_events,
            args=(receiver, self._reader_stop),
            name=f"pool-events-{self.generation}",
            daemon=True,
        )
        self._reader.start()

    @property
    def executor(self) -> ProcessPoolExecutor:
        if self._executor is None:
            raise RuntimeError("the worker pool is not running")
        return self._executor

    @property
    def healthy(self) -> bool:
        executor = self._executor
        return executor is not None and not getattr(executor, "_broken", False)

    def _read_events(self, receiver: Connection, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                if not receiver.poll(0.2):
                    continue
                event = receiver.recv()
            except (EOFError, OSError):
                return  # every writer is gone: this pool generation is over
            except Exception:  # a worker killed mid-write can leave a torn message behind
                log.warning("unreadable worker event dropped", exc_info=True)
                continue
            try:
                self._on_event(event)
            except Exception:
                log.exception("worker event handler failed")

    def submit(
        self, target: WorkerTarget, job_id: str, attempt: int, params: dict[str, Any]
    ) -> tuple[int, Future[Any]]:
        with self._lock:
            return self.generation, self.executor.submit(run_job, target, job_id, attempt, params)

    def rebuild(self, generation: int) -> bool:
        """Replace a broken executor once, whoever notices first; False if already replaced."""
        with self._lock:
            if generation != self.generation:
                return False
            log.warning("worker pool broken; rebuilding", extra={"generation": generation})
            self._stop_locked(kill=True)
            self._start_locked()
            return True

    def request_cancel(self, job_id: str) -> None:
        (self._cancel_dir / job_id).touch()

    def clear_cancel(self, job_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self._cancel_dir / job_id).unlink()

    def worker_pids(self) -> list[int]:
        executor = self._executor
        processes = getattr(executor, "_processes", None) or {}
        return [p.pid for p in list(processes.values()) if p.pid is not None]

    def _stop_locked(self, *, kill: bool) -> None:
        executor, pipe, reader = self._executor, self._pipe, self._reader
        self._executor, self._pipe, self._reader = None, None, None
        if executor is not None:
            if kill:
                for pid in [p.pid for p in list((getattr(executor, "_processes", None) or {}).values())]:
                    with contextlib.suppress(ProcessLookupError, TypeError):
                        os.kill(pid, signal.SIGKILL)
            executor.shutdown(wait=not kill, cancel_futures=True)
        self._reader_stop.set()
        if reader is not None:
            reader.join(timeout=2)
        if pipe is not None:
            for end in pipe:
                end.close()

    def shutdown(self, *, kill: bool = True) -> None:
        with self._lock:
            self._stop_locked(kill=kill)
        shutil.rmtree(self._cancel_dir, ignore_errors=True)
