"""Job state as watchers see it: a snapshot and an event stream per job in Redis, and the
schedulers' wake-up and control signals (Redis pub/sub)."""

from __future__ import annotations

import json
import logging
from typing import Any

from redis.exceptions import RedisError

from domain.infra.bson_codec import from_bson, to_bson
from domain.infra.events import EventLog
from domain.infra.redis_store import RedisStore
from domain.jobs.models import Job, job_snapshot

log = logging.getLogger("labhub.jobs")

WAKE_CHANNEL = "jobs:wake"
CONTROL_CHANNEL = "jobs:control"


class JobEvents:
    """Publishes job state: Redis snapshot + event stream, and the scheduler's wake-up signal.

    A job's state is MongoDB's; Redis only shows it. So a change already stored never fails for
    want of Redis: a status Redis did not take is kept (`unpublished`) and goes out again with the
    scheduler's next heartbeat (watchers wait for it: a final status ends their streams), and a
    wake-up or cancellation that is lost is made up by the scheduler's polling and lease checks.
    A final job is also kept whole beside its snapshot: it changes no more (a retry publishes first
    thing), so reads of it take this copy instead of MongoDB's (docs/architecture.md, "The job path").
    One instance per process, shared by the jobs service and the scheduler.
    """

    def __init__(self, events: EventLog, redis: RedisStore) -> None:
        self.log = events
        self._redis = redis
        self.unpublished: set[str] = set()  # jobs whose last status did not reach Redis

    async def status(self, job: Job) -> None:
        try:
            snapshot = job_snapshot(job)
            await self.log.append(
                self.log.job_stream(job.id), "status", snapshot, expire=job.final, snapshot=(job.id, snapshot),
                final=to_bson(job) if job.final else b"",
            )
        except RedisError as exc:
            self.unpublished.add(job.id)
            log.warning(
                "could not publish job status; will try again",
                extra={"job_id": job.id, "error": repr(exc)[:200]},
            )
        else:
            self.unpublished.discard(job.id)

    async def final(self, job_id: str) -> Job | None:
        """The final job as last published (None: not final, not kept, or Redis unreachable)."""
        try:
            raw = await self.log.final_job(job_id)
        except RedisError:
            return None
        return from_bson(Job, raw) if raw else None

    async def forget(self, job_id: str) -> None:
        await self.log.forget_final_job(job_id)

    async def wake(self) -> None:
        await self._signal(WAKE_CHANNEL, b"1")

    async def control(self, message: dict[str, Any]) -> None:
        await self._signal(CONTROL_CHANNEL, json.dumps(message).encode())

    async def _signal(self, channel: str, data: bytes) -> None:
        try:
            await self._redis.client.publish(self._redis.key(channel), data)
        except RedisError as exc:
            log.warning(
                "could not signal the schedulers", extra={"channel": channel, "error": repr(exc)[:200]}
            )

    async def rebuild(self, active: list[Job]) -> None:
        """At start: Redis may have lost its last second, so the live snapshots of the jobs still
        queued or running are written again from MongoDB's view."""
        try:
            for job in active:
                await self.log.set_snapshot(job.id, job_snapshot(job))
        except RedisError:
            log.warning("could not rebuild live job snapshots", exc_info=True)
