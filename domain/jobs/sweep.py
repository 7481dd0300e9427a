"""The sweep every scheduler runs with its heartbeat: jobs whose lease ran out (their instance
crashed, or this one before a restart) go back to the queue with their next attempt, or end
(cancelled when that was asked, failed when out of attempts). Guarded by the expiry, so two
instances sweeping at once move each job once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Collection

from domain.core.clock import utcnow
from domain.core.metrics import Metrics
from domain.jobs.models import Job, JobStatus, job_error
from domain.jobs.store import JobStore

log = logging.getLogger("labhub.scheduler")


async def sweep_expired(
    store: JobStore, metrics: Metrics, ours: Collection[str], publish: Callable[[Job], Awaitable[None]],
    notify: Callable[[Job], Awaitable[None]],
) -> bool:  # fmt: skip
    """Move every expired job but ours (still running here); True when one went back to the queue."""
    requeued_any = False
    now = utcnow()
    for job in await store.expired(now):
        if job.id in ours:
            continue
        if job.cancel_requested:
            finished = await store.finish(
                job, JobStatus.CANCELLED, owner=None, error=job_error("cancelled"), expired_before=now
            )
            if finished is not None:
                metrics.job_finished(job.kind, JobStatus.CANCELLED.value, None)
                await publish(finished)
            continue
        if job.attempt < job.max_attempts:
            requeued = await store.requeue(None, job, bump=True, expired_before=now)
            if requeued is not None:
                metrics.job_retries.labels(job.kind, "lease_expired").inc()
                log.info("abandoned job requeued", extra={"job_id": job.id, "attempt": requeued.attempt})
                await publish(requeued)
                requeued_any = True
            continue
        finished = await store.finish(
            job, JobStatus.FAILED, owner=None, error=job_error("attempts_exhausted"), expired_before=now
        )
        if finished is not None:
            metrics.job_finished(job.kind, JobStatus.FAILED.value, None)
            await publish(finished)
            await notify(finished)
    return requeued_any
