"""The scheduler: claims jobs into free pool slots, keeps their leases, sweeps the abandoned ones.

No broker: MongoDB holds the queue (claims are one atomic find_one_and_update), Redis carries the
wake-up signal, cancellations and live progress. Every state change is guarded by the job's
attempt, so a stale attempt (a lost lease, a slow instance) can never overwrite a newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import BrokenExecutor
from typing import Any

from domain.core.background import stop_if_cancelled
from domain.core.errors import DomainError
from domain.core.metrics import Metrics
from domain.infra.availability import unavailable_service
from domain.infra.redis_store import RedisStore
from domain.jobs.attempts import (
    Outcome,
    Running,
    SchedulerSettings,
    WorkerKilled,
    log_failure,
    through_outages,
)
from domain.jobs.events import CONTROL_CHANNEL, WAKE_CHANNEL, JobEvents
from domain.jobs.models import Attempt, Job, JobError, JobKind, JobKinds, JobStatus, job_error
from domain.jobs.progress import show_progress
from domain.jobs.store import JobStore
from domain.jobs.sweep import sweep_expired
from workers.pool import GenerationEnd, WorkerPool
from workers.worker import JobCancelled, JobFailed, WorkerEvent

log = logging.getLogger("labhub.scheduler")

DRAIN_WAIT_S = 5.0  # at most this long for a finished worker's last progress events
KILL_WAIT_S = 15.0


class Scheduler:
    def __init__(
        self,
        store: JobStore,
        events: JobEvents,
        kinds: JobKinds,
        pool: WorkerPool,
        redis: RedisStore,
        settings: SchedulerSettings,
        metrics: Metrics | None = None,
    ) -> None:
        self.instance_id = f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._store = store
        self._events = events
        self._kinds = kinds
        self._pool = pool
        self._redis = redis
        self._settings = settings
        self._metrics = metrics or Metrics()
        self._running: dict[str, Running] = {}
        self._wake = asyncio.Event()
        # False once a claim found nothing, until a wake-up says work may have come (a submission, a
        # requeue, a poll): a job that ends then frees its slot without asking MongoDB again
        self._maybe_queued = True
        self._work_wakes = 0
        self._reserved = 0  # slots held for jobs being inserted already claimed (reserve_slot)
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._worker_events: asyncio.Queue[WorkerEvent] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._finish_listeners: list[Callable[[Job, str], Awaitable[None]]] = []

    def on_finished(self, listener: Callable[[Job, str], Awaitable[None]]) -> None:
        """Also tell listener(job, kind title) about each job that succeeded or failed (mail, say)."""
        self._finish_listeners.append(listener)

    # -- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._events.rebuild(await self._store.active())
        for name, coroutine in (
            ("claims", self._claim_loop()),
            ("heartbeat", self._heartbeat_loop()),
            ("signals", self._signal_loop()),
            ("progress", self._progress_loop()),
        ):
            self._tasks.append(asyncio.create_task(coroutine, name=f"scheduler-{name}"))
        log.info("scheduler started", extra={"instance": self.instance_id, "slots": self._pool.size})

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop claiming, let running jobs finish within the grace period, put the rest back."""
        self._stopping = True
        self._wake.set()
        grace = self._settings.shutdown_grace_s if grace_s is None else grace_s
        tasks = [r.task for r in self._running.values() if r.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for running in list(self._running.values()):
                if running.task in pending:
                    running.kill_reason = "shutdown"
                    running.task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=KILL_WAIT_S)
        for task in self._tasks:
            task.cancel()
        _, stuck = await asyncio.wait(self._tasks, timeout=KILL_WAIT_S) if self._tasks else (set(), set())
        if stuck:  # never hold the shutdown up forever
            log.error("scheduler tasks did not stop", extra={"tasks": [t.get_name() for t in stuck]})
        self._tasks.clear()

    def on_worker_event(self, event: WorkerEvent) -> None:
        """Called from the pool's reader thread."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._worker_events.put_nowait, event)

    def on_pool_rebuilt(self, _generation: int, _ended: GenerationEnd) -> None:
        """Called from the pool's watchdog once a broken pool works again: count it, claim again."""
        self._metrics.pool_rebuilds.inc()
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._work_may_be_queued)

    @property
    def running_jobs(self) -> list[str]:
        return list(self._running)

    # -- claiming ----------------------------------------------------------------------------------

    def _free_slot(self) -> bool:
        return len(self._running) + self._reserved < self._pool.size and self._pool.healthy and not self._stopping

    def reserve_slot(self, kind: str) -> float | None:
        """For a job submitted here: the lease it is inserted with, holding a free slot for it, when
        the claim loop would leave that slot idle (its last claim found nothing, and no wake-up came
        since) and would claim a job of this kind; None otherwise, and the job is queued (for another
        instance, maybe, that knows its kind). See JobsService.run_here."""
        if self._maybe_queued or not self._free_slot() or self._kinds.get(kind) is None:
            return None
        self._reserved += 1
        return self._settings.lease_s

    def release_slot(self) -> None:
        self._reserved -= 1

    def run_claimed(self, job: Job) -> None:
        """Start a job inserted already claimed in a slot reserve_slot held."""
        self._reserved -= 1
        if self._stopping:  # the lease runs out and another instance (or this one, again) takes it
            return
        self._launch(job)

    def _work_may_be_queued(self) -> None:
        self._maybe_queued = True
        self._work_wakes += 1
        self._wake.set()

    async def _claim_loop(self) -> None:
        while not self._stopping:
            stop_if_cancelled()
            self._wake.clear()  # before claiming: a wake-up while a claim is under way is kept
            try:
                # nothing is claimed while the pool is broken: the watchdog is rebuilding it, and
                # wakes this loop when it is done
                while self._maybe_queued and self._free_slot():
                    seen = self._work_wakes
                    job = await self._store.claim(
                        self.instance_id, self._kinds.names(), self._settings.lease_s
                    )
                    if job is None:
                        if self._work_wakes == seen:
                            self._maybe_queued = False
                        break
                    self._launch(job)
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one failure
                log_failure("claiming jobs failed; trying again", exc)
                await asyncio.sleep(1)
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that races a wake-up
            try:
                async with asyncio.timeout(self._settings.poll_s):
                    await self._wake.wait()
            except TimeoutError:
                self._maybe_queued = True  # the poll: the fallback for wake-ups that were missed

    def _launch(self, job: Job) -> None:
        running = Running(job)
        self._running[job.id] = running
        running.task = asyncio.create_task(self._run(running), name=f"job-{job.id}")

    # -- one job -----------------------------------------------------------------------------------

    async def _run(self, running: Running) -> None:
        job = running.job
        kind = self._kinds.get(job.kind)
        try:
            outcome = await self._attempt(running, kind)
            if outcome is not None:
                await self._finish(job, outcome.status, result=outcome.result, error=outcome.error)
        except asyncio.CancelledError:
            if running.kill_reason == "shutdown":
                # the server is stopping: never fail a job for that, put it back as it was
                await asyncio.shield(self._requeue(job, bump=False))
            raise
        except Exception as exc:
            if service := unavailable_service(exc):
                # never failed for an outage: the lease runs out and the job is tried again
                log.warning(
                    "job interrupted: a service stayed unavailable",
                    extra={"job_id": job.id, "service": service},
                )
            else:
                log.exception("job failed unexpectedly", extra={"job_id": job.id, "kind": job.kind})
                try:
                    await self._finish(job, JobStatus.FAILED, error=job_error("internal_error"))
                except Exception as again:  # noqa: BLE001 - nothing is left to tell; the lease decides
                    log_failure("could not record the job's failure", again, job_id=job.id)
        finally:
            # only this attempt's entry: a requeued job may have been claimed again already, and the
            # new attempt's entry is what keeps its lease renewed
            if self._running.get(job.id) is running:
                del self._running[job.id]
                self._pool.forget(job.id, job.attempt)
            self._wake.set()
            if kind is not None:
                await asyncio.shield(self._cleanup(kind, job))

    async def _attempt(self, running: Running, kind: JobKind | None) -> Outcome | None:
        """Run one attempt to its outcome; None when a lost worker was handled (requeued or ended)."""
        job = running.job
        try:
            await self._publish(job)
            if kind is None:
                raise JobFailed("unknown_kind", f"this server cannot run jobs of kind {job.kind!r}")
            if job.cancel_requested:
                raise JobCancelled(job.id)
            await self._stage(running, kind.prepare_stage)
            inputs = await through_outages(job.id, lambda: kind.prepare(job))
            result = await self._execute(running, kind, inputs)
            # the result and the worker's last events come by different ways: its last stages are
            # shown before the commit stage (a busy machine can delay them; they are not waited for long)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_WAIT_S):
                    await running.drained.wait()
            running.worker_done = True
            await self._stage(running, kind.commit_stage)
            attempt = Attempt(job.id, job.attempt, self.instance_id)
            output = await through_outages(job.id, lambda: kind.commit(job, result, attempt))
            return Outcome(JobStatus.SUCCEEDED, result=output)
        except JobCancelled:
            return Outcome(JobStatus.CANCELLED, error=job_error("cancelled"))
        except JobFailed as failure:
            return Outcome(JobStatus.FAILED, error=JobError(failure.code, failure.message))
        except DomainError as failure:
            return Outcome(JobStatus.FAILED, error=JobError(failure.code, failure.detail))
        except MemoryError:
            return Outcome(JobStatus.FAILED, error=job_error("out_of_memory"))
        except (BrokenExecutor, WorkerKilled):
            await self._after_lost_worker(running)
            return None

    async def _stage(self, running: Running, stage: str) -> None:
        await show_progress(
            running, {"stage": stage, "done": 0, "total": 1}, self._events.log, self._store, from_worker=False
        )

    async def _cleanup(self, kind: JobKind, job: Job) -> None:
        try:
            await kind.cleanup(job)
        except Exception:
            log.exception("job cleanup failed", extra={"job_id": job.id})

    async def _execute(self, running: Running, kind: JobKind, inputs: dict[str, Any]) -> dict[str, Any]:
        job = running.job
        # in a thread: the pool's lock may be held by a rebuild that waits for workers to start
        running.generation, future = await asyncio.to_thread(
            self._pool.submit, kind.worker, job.id, job.attempt, inputs
        )
        running.future = future
        self._metrics.pool_tasks.labels(job.kind).inc()
        waiting = asyncio.wrap_future(future)
        # if this task is cancelled (shutdown) the outcome is dropped on purpose, not "never retrieved"
        waiting.add_done_callback(lambda f: f.cancelled() or f.exception())
        done, _ = await asyncio.wait({waiting}, timeout=kind.timeout_s)
        if not done:
            log.warning("job timed out", extra={"job_id": job.id, "timeout_s": kind.timeout_s})
            self._kill(running, "timeout")
        if future.cancelled():
            raise WorkerKilled
        try:
            async with asyncio.timeout(KILL_WAIT_S):
                result: dict[str, Any] = await waiting
        except TimeoutError:
            raise WorkerKilled from None
        return result

    def _kill(self, running: Running, reason: str) -> None:
        """Stop a job's worker the hard way: this breaks the pool, which is then rebuilt."""
        if running.future is None or running.future.done():
            return
        running.kill_reason = running.kill_reason or reason
        if running.future.cancel():
            return  # it had not started yet
        pid = self._pool.started_pid(running.job.id, running.job.attempt)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    async def _after_lost_worker(self, running: Running) -> None:
        """The pool broke under a job. Its own worker's death (a crash, running out of memory, our
        kill at a timeout) spends an attempt; a job whose worker was stopped because another worker
        or the forkserver died, or that never reached a worker, is put back as it was."""
        job = running.job
        reason = running.kill_reason
        if reason is None:
            pid = self._pool.started_pid(job.id, job.attempt)
            if not await asyncio.to_thread(self._pool.worker_died, running.generation, pid):
                self._metrics.job_retries.labels(job.kind, "pool_lost").inc()
                await self._requeue(job, bump=False)
                return
        self._metrics.worker_crashes.labels(reason or "crash").inc()
        if reason == "lost":
            return  # another instance owns this job now
        if reason == "cancel":
            await self._finish(job, JobStatus.CANCELLED, error=job_error("cancelled"))
        elif job.attempt < job.max_attempts:
            self._metrics.job_retries.labels(job.kind, "worker_lost").inc()
            await self._requeue(job, bump=True)
        else:
            await self._finish(
                job, JobStatus.FAILED, error=job_error("timeout" if reason == "timeout" else "worker_crashed")
            )

    async def _requeue(self, job: Job, *, bump: bool) -> None:
        async with self._status_change(job.id):
            requeued = await through_outages(
                job.id,
                lambda: self._store.requeue(Attempt(job.id, job.attempt, self.instance_id), job, bump=bump),
            )
            if requeued is not None:
                await self._publish(requeued)
        if requeued is not None:
            await self._events.wake()

    @contextlib.asynccontextmanager
    async def _status_change(self, job_id: str) -> AsyncIterator[Running | None]:
        """Around a running job's status change: progress already on its way lands first, none after."""
        running = self._running.get(job_id)
        if running is None:
            yield None
            return
        # set before waiting for the lock: the worker's events are dropped from now on rather than
        # queued behind a status change that may wait out an outage
        running.worker_done = True
        async with running.progress_lock:
            yield running

    async def _finish(
        self,
        job: Job,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: JobError | None = None,
    ) -> None:
        async with self._status_change(job.id) as running:
            finished = await through_outages(job.id, lambda: self._store.finish(
                job, status, owner=self.instance_id, result=result, error=error,
                progress=running.progress if running is not None else None,
            ))  # fmt: skip
            if finished is None:
                log.info("stale attempt not committed", extra={"job_id": job.id, "attempt": job.attempt})
                return
            await self._publish(finished)
        seconds = time.monotonic() - running.started if running is not None else None
        self._metrics.job_finished(job.kind, status.value, seconds)
        await self._notify(finished)

    async def _publish(self, job: Job) -> None:
        await self._events.status(job)  # never fails: what Redis does not take goes out again (_republish)

    async def _republish(self) -> None:
        """Statuses Redis did not take (this process's, the jobs service's too) go out again."""
        for job_id in list(self._events.unpublished):
            job = await self._store.get(job_id)
            if job is None:
                self._events.unpublished.discard(job_id)
            else:
                await self._publish(job)

    async def _notify(self, job: Job) -> None:
        if job.status is JobStatus.CANCELLED:
            return
        kind = self._kinds.get(job.kind)
        title = kind.title if kind else "Job"
        try:
            for listener in self._finish_listeners:
                await listener(job, title)
        except Exception as exc:  # noqa: BLE001 - a notice that cannot go out is not the job's failure
            log_failure("could not notify the job's owner", exc, job_id=job.id)

    # -- leases, sweeps, signals -------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        await self._sweep()
        while True:
            stop_if_cancelled()
            await asyncio.sleep(self._settings.heartbeat_s)
            try:
                await self._heartbeat()
                await self._sweep()
                await self._republish()
            except Exception as exc:  # noqa: BLE001 - the loop must outlive any one failure
                log_failure("heartbeat failed; trying again", exc)

    async def _heartbeat(self) -> None:
        ids = [job_id for job_id, r in self._running.items() if r.kill_reason is None]
        if not ids:
            return
        await self._store.renew(self.instance_id, ids, self._settings.lease_s)
        held = await self._store.held(self.instance_id, ids)
        for job_id in ids:
            running = self._running.get(job_id)
            if running is None:
                continue
            current = held.get(job_id)
            if current is None and running.future is not None and not running.future.done():
                log.warning("lease lost; stopping our copy", extra={"job_id": job_id})
                self._kill(running, "lost")
            elif current is not None and current.cancel_requested:
                self._cancel(job_id)

    async def _sweep(self) -> None:
        """Jobs whose lease ran out (a crashed instance) go back to the queue, or end."""
        if await sweep_expired(self._store, self._metrics, set(self._running), self._publish, self._notify):
            self._work_may_be_queued()

    def _cancel(self, job_id: str) -> None:
        running = self._running.get(job_id)
        if running is None or running.kill_reason is not None:
            return
        self._pool.request_cancel(job_id)  # the worker stops at its next progress point
        if running.future is not None and running.future.cancel():
            running.kill_reason = "cancel"
            return
        loop = asyncio.get_running_loop()
        loop.call_later(self._settings.cancel_grace_s, self._kill, running, "cancel")

    async def _signal_loop(self) -> None:
        """Wake-ups and cancellations from any instance, over Redis pub/sub (polling is the fallback)."""
        wake, control = self._redis.key(WAKE_CHANNEL), self._redis.key(CONTROL_CHANNEL)

        def on_message(channel: str, data: bytes) -> None:
            if channel == wake:
                self._work_may_be_queued()
            elif channel == control:
                self._on_control(data)

        await self._redis.listen([wake, control], on_message, "signal")

    def _on_control(self, raw: bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        job_id = message.get("cancel") if isinstance(message, dict) else None
        if isinstance(job_id, str) and job_id in self._running:
            self._cancel(job_id)

    async def _progress_loop(self) -> None:
        while True:
            kind, job_id, attempt, payload = await self._worker_events.get()
            running = self._running.get(job_id)
            if running is None or running.job.attempt != attempt:
                continue
            if kind == "finished":
                running.drained.set()
                continue
            await show_progress(running, payload, self._events.log, self._store, from_worker=True)
