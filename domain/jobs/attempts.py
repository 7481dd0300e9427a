"""What the scheduler keeps of each running attempt, how an attempt ends, and how its server-side
steps ride out a restarting MongoDB, Redis or S3 (docs/architecture.md, "The job path")."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import attrs

from domain.infra.availability import unavailable_service
from domain.jobs.models import Job, JobError, JobStatus, Progress

log = logging.getLogger("labhub.scheduler")

# how long a job's server-side step waits for a restarting MongoDB, Redis or S3 before it leaves the
# job to its lease (which then runs out, and the job is tried again): an outage delays, never fails
OUTAGE_WAIT_S = 120.0
T = TypeVar("T")


@attrs.frozen
class SchedulerSettings:
    heartbeat_s: float
    lease_s: float
    poll_s: float
    cancel_grace_s: float
    shutdown_grace_s: float


@attrs.define
class Running:
    job: Job
    task: asyncio.Task[None] | None = None
    future: Future[Any] | None = None
    generation: int = 0
    kill_reason: str | None = None  # timeout | cancel | lost | shutdown
    started: float = attrs.field(factory=time.monotonic)
    progress: Progress | None = None
    # a job that ends within PROGRESS_TO_MONGO_S never writes progress to MongoDB (its final
    # state replaces it); progress is shown live from Redis all along
    progress_saved_at: float = attrs.field(factory=time.monotonic)
    # Progress is written by two tasks (the worker's events, the scheduler's own stages) and status
    # changes by a third: one lock puts them in order, and once the worker has returned (or the job
    # changed status) its late events are dropped, so progress never moves backwards or lands after
    # the job's terminal state.
    progress_lock: asyncio.Lock = attrs.field(factory=asyncio.Lock)
    worker_done: bool = False
    # set when the worker's "finished" event has come through the event pipe: every event it sent
    # before returning (its last stages) has been shown by then
    drained: asyncio.Event = attrs.field(factory=asyncio.Event)


@attrs.frozen
class Outcome:
    status: JobStatus
    result: dict[str, Any] | None = None
    error: JobError | None = None


class WorkerKilled(Exception):
    """The job's worker was stopped on purpose (timeout, cancel) before it could answer."""


async def through_outages(job_id: str, step: Callable[[], Awaitable[T]]) -> T:
    """A server-side step of a job, tried again while MongoDB, Redis or S3 is unreachable (a
    restart takes seconds); every step is idempotent, so trying it again is safe (docs/architecture.md, "The job path")."""
    deadline = time.monotonic() + OUTAGE_WAIT_S
    delay = 0.25
    while True:
        try:
            return await step()
        except Exception as exc:
            service = unavailable_service(exc)
            if service is None or time.monotonic() > deadline:
                raise
            log.warning(
                "job waits for a service",
                extra={"job_id": job_id, "service": service, "retry_in_s": delay},
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def log_failure(message: str, error: BaseException, **extra: Any) -> None:
    """A background loop's failure: one line when a service is only unreachable, a traceback else."""
    service = unavailable_service(error)
    if service is not None:
        log.warning(message, extra={"service": service, "error": repr(error)[:200], **extra})
    else:
        log.error(message, exc_info=error, extra=extra)
