"""A running job's progress: shown live (Redis) at once and kept in MongoDB now and then; best
effort (progress that cannot be shown while a store restarts is skipped, never a reason for the
job to fail), and never after the job's status changed."""

from __future__ import annotations

import logging
import time
from typing import Any

import attrs

from domain.infra.events import EventLog
from domain.jobs.attempts import Running, log_failure
from domain.jobs.models import Progress, job_snapshot
from domain.jobs.store import JobStore

log = logging.getLogger("labhub.scheduler")

PROGRESS_TO_MONGO_S = 1.0  # MongoDB gets a progress snapshot at most this often per job


async def show_progress(
    running: Running, payload: dict[str, Any], events: EventLog, store: JobStore, *, from_worker: bool
) -> None:
    """Show a job's progress (Redis, and MongoDB now and then); best effort: progress that cannot
    be shown (a store is restarting) is skipped, never a reason for the job to fail."""
    try:
        await _show(running, payload, events, store, from_worker=from_worker)
    except Exception as exc:  # noqa: BLE001 - see above
        log_failure("could not publish progress", exc, job_id=running.job.id)


async def _show(
    running: Running, payload: dict[str, Any], events: EventLog, store: JobStore, *, from_worker: bool
) -> None:
    job = running.job
    progress = Progress(
        stage=str(payload.get("stage", "")), done=payload.get("done"), total=payload.get("total"),
        message=str(payload.get("message", "")),
    )  # fmt: skip
    if from_worker and running.worker_done:
        return
    async with running.progress_lock:
        if from_worker and running.worker_done:  # the status changed while this waited
            return
        running.progress = progress
        snapshot = job_snapshot(attrs.evolve(job, progress=progress))
        log_ = events
        await log_.append(
            log_.job_stream(job.id),
            "progress",
            {"job_id": job.id, "attempt": job.attempt, **attrs.asdict(progress)},
            snapshot=(job.id, snapshot),
        )
        now = time.monotonic()
        if now - running.progress_saved_at >= PROGRESS_TO_MONGO_S:
            running.progress_saved_at = now
            await store.set_progress(job.id, job.attempt, progress)
