"""The process pool, as the server sees it: sizing from the host, starting the workers, reading
their events, and rebuilding the pool when a worker dies.

A worker that dies, busy or idle, breaks the whole ProcessPoolExecutor (every pending future fails
with BrokenProcessPool). A watchdog thread notices within a fraction of a second, records how each
worker of the broken generation ended (its own death, or stopped by the executor because another
died, or the forkserver under it died), and starts the next generation with all its workers
(`WorkerPool.rebuild`). The scheduler asks `worker_died` to tell the job whose worker died from the
bystanders, which are retried without spending an attempt.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib.machinery
import logging
import math
import multiprocessing
import multiprocessing.forkserver
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import attrs
import psutil

from workers.worker import (
    WorkerEvent,
    WorkerTarget,
    call,
    cancel_flag,
    cpus,
    init_worker,
    pid_file,
    run_job,
    whoami,
)

log = logging.getLogger("labhub.pool")

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
WATCH_EVERY_S = 0.2  # how often the watchdog looks at the pool
END_WAIT_S = 10.0  # at most this long for a broken executor to stop its other workers
START_WAIT_S = 120.0  # at most this long for a new generation's workers to start (a busy machine)
ENDS_KEPT = 32  # broken generations remembered for worker_died


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
    return choose_size(
        cpu_count=cpus(),
        available_bytes=psutil.virtual_memory().available,
        ram_fraction=ram_fraction,
        worker_memory_bytes=worker_memory_bytes,
        min_workers=min_workers,
        max_workers=max_workers,
    )


# a query-lane worker's address space beyond the memory a query may use (DuckDB's threads, Arrow)
LANE_HEADROOM_BYTES = 1024**3
LANE_IMPORTS = ("workers.sql",)  # DuckDB and sqlglot: in the lane's workers only


def lane_size() -> int:
    """The query lane's workers when config leaves it to the host: half the CPUs, 1 to 4."""
    return max(1, min(4, cpus() // 2))


@attrs.frozen
class GenerationEnd:
    """How the workers of a broken pool generation ended: pid -> exit code (minus the signal that
    ended it; None: still running when given up on), and whether the forkserver under them died."""

    exit_codes: dict[int, int | None]
    forkserver_died: bool


def _forkserver_pid() -> int | None:
    pid = getattr(multiprocessing.forkserver._forkserver, "_forkserver_pid", None)
    return pid if isinstance(pid, int) else None


def _dead(pid: int | None) -> bool:
    """A process that exited (a zombie not yet reaped counts: multiprocessing reaps the forkserver
    itself when it starts the next one, so this must not)."""
    if pid is None:
        return False
    try:
        status: str = psutil.Process(pid).status()
    except psutil.NoSuchProcess:
        return True
    return bool(status == psutil.STATUS_ZOMBIE)


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
    """A ProcessPoolExecutor (forkserver, preloaded) that a watchdog rebuilds when a worker dies."""

    def __init__(self, size: int, memory_bytes: int, imports: tuple[str, ...] = (), nice: int = 0) -> None:
        self.size = size
        self.memory_bytes = memory_bytes
        self.imports = imports  # modules every worker of this pool imports as it starts
        self.nice = nice  # how much its workers yield the CPU to other processes (0-19)
        self._on_event: Callable[[WorkerEvent], None] = lambda _event: None
        self._on_rebuild: Callable[[int, GenerationEnd], None] = lambda _generation, _end: None
        self._lock = threading.Lock()
        self._rebuilt = threading.Condition()
        self._control_dir = Path(tempfile.mkdtemp(prefix="labhub-jobs-"))
        self.generation = 0
        self._executor: ProcessPoolExecutor | None = None
        self._pipe: tuple[Connection, Connection] | None = None
        self._reader: threading.Thread | None = None
        self._reader_stop = threading.Event()
        self._ended: OrderedDict[int, GenerationEnd] = OrderedDict()
        self._stopping = threading.Event()
        self._watchdog: threading.Thread | None = None
        self._context = multiprocessing.get_context("forkserver")
        for name, value in WORKER_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        os.environ["_LABHUB_POOL_PARENT"] = str(os.getpid())  # checked by the forkserver (workers.preload)
        with contextlib.suppress(ValueError):  # the forkserver is per process and may be running already
            self._context.set_forkserver_preload(PRELOAD)
        _keep_main_out_of_workers()

    def listen(
        self,
        on_event: Callable[[WorkerEvent], None],
        on_rebuild: Callable[[int, GenerationEnd], None] | None = None,
    ) -> None:
        """Where progress events from the workers go (called from a reader thread), and who hears of
        each rebuild (the new generation and how the old one ended; called from the watchdog)."""
        self._on_event = on_event
        if on_rebuild is not None:
            self._on_rebuild = on_rebuild

    def start(self) -> None:
        """Start the first generation and the watchdog. Call from the main thread: the forkserver's
        PDEATHSIG is tied to the thread that starts it."""
        with self._lock:
            self._start_locked()
            # start the workers now (forkserver start-up and preload cost a second or two)
            self._start_workers_locked()
        self._watchdog = threading.Thread(target=self._watch, name="pool-watchdog", daemon=True)
        self._watchdog.start()

    def _start_locked(self) -> None:
        # a fresh pipe and lock per generation: a killed worker may have left the old ones torn or held
        receiver, sender = self._context.Pipe(duplex=False)
        self._pipe = (receiver, sender)
        self._executor = ProcessPoolExecutor(
            max_workers=self.size,
            mp_context=self._context,
            initializer=init_worker,
            initargs=(
                self.memory_bytes, sender, self._context.Lock(), str(self._control_dir), self.imports, self.nice,
            ),
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

    def _start_workers_locked(self) -> None:
        """One no-op per slot starts every worker of the generation at once, from this thread (the
        executor would start them one by one in whichever thread submits; the watchdog, which lives
        as long as the pool, is the one that may start a new forkserver)."""
        assert self._executor is not None
        started = [self._executor.submit(whoami, i) for i in range(self.size)]
        done, waiting = concurrent.futures.wait(started, timeout=START_WAIT_S)
        broken = [f for f in done if f.exception() is not None]
        if waiting or broken:  # a worker died while starting: the watchdog tries again
            log.warning(
                "worker pool did not start all its workers",
                extra={"generation": self.generation, "waiting": len(waiting), "failed": len(broken)},
            )

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
        """(generation, future) of one job; BrokenProcessPool at once if the pool is broken (the
        watchdog is rebuilding it: the job never reached a worker)."""
        with self._lock:
            return self.generation, self.executor.submit(run_job, target, job_id, attempt, params)

    def call(self, target: str, *args: Any) -> tuple[int, Future[Any]]:
        """(generation, future) of a plain function named "module:function" (no job around it)."""
        with self._lock:
            return self.generation, self.executor.submit(call, target, *args)

    @property
    def control_dir(self) -> Path:
        return self._control_dir

    # -- when a worker dies ----------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stopping.wait(WATCH_EVERY_S):
            if self.healthy:
                continue
            try:
                self.rebuild(self.generation)
            except Exception:  # the watchdog must outlive a failed rebuild: it tries again
                log.exception("rebuilding the worker pool failed; trying again")

    def rebuild(self, generation: int) -> bool:
        """Replace a broken generation once, whoever notices first; False if it was replaced already.
        Waits for the broken executor to stop its other workers, so that their exit codes say which
        one died by itself."""
        with self._lock:
            if generation != self.generation or self._stopping.is_set():
                return False
            ended = self._end_generation_locked()
            self._stop_locked(kill=True)
            self._start_locked()
            self._start_workers_locked()
            new = self.generation
        with self._rebuilt:
            self._ended[generation] = ended
            while len(self._ended) > ENDS_KEPT:
                self._ended.popitem(last=False)
            self._rebuilt.notify_all()
        log.warning(
            "worker pool rebuilt",
            extra={
                "generation": new,
                "exit_codes": ended.exit_codes,
                "forkserver_died": ended.forkserver_died,
            },
        )
        self._on_rebuild(new, ended)
        return True

    def _end_generation_locked(self) -> GenerationEnd:
        executor = self._executor
        manager = getattr(executor, "_executor_manager_thread", None)
        if isinstance(manager, threading.Thread):
            # a broken executor stops the workers still running (SIGTERM) and joins them all
            manager.join(timeout=END_WAIT_S)
        processes = dict(getattr(executor, "_processes", None) or {})
        return GenerationEnd(
            exit_codes={pid: process.exitcode for pid, process in processes.items()},
            forkserver_died=_dead(_forkserver_pid()),
        )

    def worker_died(self, generation: int, pid: int | None) -> bool:
        """Whether a job's worker (pid, of that generation) died by itself (a crash, running out of
        memory, a kill) rather than being stopped because another worker or the forkserver died.
        Blocks until that generation's end is known (the watchdog records it within a second or two)."""
        if pid is None or generation == 0:
            return False  # the job never reached a worker
        with self._rebuilt:
            self._rebuilt.wait_for(
                lambda: (
                    generation in self._ended
                    or self._stopping.is_set()
                    or (generation == self.generation and self.healthy)
                ),
                timeout=END_WAIT_S + START_WAIT_S,
            )
            ended = self._ended.get(generation)
        if ended is None:
            return True  # nothing known: count it against the job, so that a poison job still ends
        if ended.forkserver_died:
            return False
        return ended.exit_codes.get(pid) != -signal.SIGTERM

    # -- per-job control files -------------------------------------------------------------------

    def started_pid(self, job_id: str, attempt: int) -> int | None:
        """The pid of the worker that started this attempt of the job, if one did."""
        try:
            return int(pid_file(self._control_dir, job_id, attempt).read_text())
        except (OSError, ValueError):
            return None

    def request_cancel(self, job_id: str) -> None:
        cancel_flag(self._control_dir, job_id).touch()

    def forget(self, job_id: str, attempt: int) -> None:
        """An attempt is over: its cancel flag and pid file go."""
        for path in (cancel_flag(self._control_dir, job_id), pid_file(self._control_dir, job_id, attempt)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def worker_pids(self) -> list[int]:
        executor = self._executor
        processes = getattr(executor, "_processes", None) or {}
        return [p.pid for p in list(processes.values()) if p.pid is not None]

    @property
    def forkserver_pid(self) -> int | None:
        return _forkserver_pid()

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
        self._stopping.set()
        with self._rebuilt:
            self._rebuilt.notify_all()
        if self._watchdog is not None:
            self._watchdog.join(timeout=END_WAIT_S + START_WAIT_S)
        with self._lock:
            self._stop_locked(kill=kill)
        shutil.rmtree(self._control_dir, ignore_errors=True)
