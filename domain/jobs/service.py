"""Jobs service: submit, read, cancel and retry jobs; publish their state to the live view."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from domain.accounts.models import User
from domain.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from domain.core.ids import looks_like_id
from domain.core.pagination import Page, clamp_limit
from domain.jobs.events import JobEvents
from domain.jobs.models import FINAL_STATUSES, Job, JobKinds, JobStatus, job_snapshot
from domain.jobs.store import JobStore
from domain.projects.grant import project_filter
from domain.projects.models import Need, check_owner_or_lead
from domain.projects.service import ProjectGate
from domain.quotas.service import Quotas

log = logging.getLogger("labhub.jobs")


class RunsHere(Protocol):
    """This process's scheduler, for a job it can start at once (docs/architecture.md, "The job path")."""

    instance_id: str

    def reserve_slot(self, kind: str) -> float | None:
        """The lease (s) of a job held a free slot, or None: no slot, jobs may be queued, or this
        scheduler does not run the kind."""

    def release_slot(self) -> None: ...

    def run_claimed(self, job: Job) -> None: ...


class JobsService:
    def __init__(
        self, gate: ProjectGate, store: JobStore, events: JobEvents, kinds: JobKinds, quotas: Quotas
    ) -> None:
        self._gate = gate
        self.quotas = quotas
        self._store = store
        self._events = events
        self.kinds = kinds
        self._here: RunsHere | None = None

    def run_here(self, scheduler: RunsHere) -> None:
        """A serving process's scheduler: a job submitted while it has a free slot and nothing is
        queued is inserted already claimed and started here, without a claim (or a wake-up)."""
        self._here = scheduler

    async def submit(
        self,
        actor: User,
        project_id: str,
        kind: str,
        params: dict[str, Any],
        *,
        job_id: str | None = None,
    ) -> Job:
        job_kind = self.kinds.get(kind)
        if job_kind is None:
            raise InvalidInput(f"unknown job kind {kind!r}", code="unknown_job_kind")
        project = await self._gate.require(actor, project_id, Need.WRITE)
        await self.quotas.check_jobs(actor.id)
        return await self.enqueue(actor.id, project.id, kind, params, job_id=job_id)

    async def enqueue(
        self,
        owner_id: str,
        project_id: str,
        kind: str,
        params: dict[str, Any],
        *,
        job_id: str | None = None,
    ) -> Job:
        """Queue a job for a caller already checked (or for the system, on a user's behalf); job_id:
        the id of the record the job makes (an ingestion, a plot), which the job shares."""
        job_kind = self.kinds.get(kind)
        insert = functools.partial(
            self._store.insert, kind=kind, project_id=project_id, owner_id=owner_id, params=params,
            max_attempts=job_kind.max_attempts if job_kind else 3, job_id=job_id,
        )  # fmt: skip
        here = self._here
        lease_s = here.reserve_slot(kind) if here is not None else None
        if here is not None and lease_s is not None:
            # shielded: a request cancelled halfway must not leave the slot held or the job unstarted
            return await asyncio.shield(self._start_here(here, lease_s, insert))
        job = await insert()
        await self._events.status(job)
        await self._events.wake()
        return job

    async def _start_here(
        self, here: RunsHere, lease_s: float, insert: Callable[..., Awaitable[Job]]
    ) -> Job:
        """Insert the job (enqueue's insert) already claimed in the slot `here` holds, and start it."""
        try:
            job = await insert(claimed=(here.instance_id, lease_s))
        except BaseException:
            here.release_slot()
            raise
        here.run_claimed(job)  # its running status is published as the scheduler starts it
        return job

    async def list_jobs(
        self, actor: User, *, everyone: bool, status: str | None, kind: str | None,
        project_id: str | None, limit: int | None, cursor: str | None,
    ) -> Page[Job]:  # fmt: skip
        """The caller's jobs, newest first; heads may ask for everyone's (`everyone`)."""
        if everyone and not actor.is_head:
            raise Forbidden("only heads (GD, DH) can list everyone's jobs", code="not_head")
        if status is not None and status not in {s.value for s in JobStatus}:
            allowed = ", ".join(s.value for s in JobStatus)
            raise InvalidInput(
                f"status must be one of {allowed}",
                errors=[{"path": "$.status", "message": f"must be one of {allowed}"}],
            )
        if project_id is not None:
            project_id = (await self._gate.require(actor, project_id, Need.READ, allow_archived=True)).id
        jobs, next_cursor = await self._store.list_page(
            owner_id=None if everyone else actor.id, status=status, kind=kind, project_id=project_id,
            limit=clamp_limit(limit), cursor=cursor, only_projects=project_filter(),
        )  # fmt: skip
        return Page(jobs, next_cursor)

    async def get(self, actor: User, job_id: str, need: Need = Need.READ) -> Job:
        # a final job's copy in Redis is MongoDB's (JobEvents): reads take it when it is there
        job = await self._events.final(job_id) if need is Need.READ and looks_like_id(job_id) else None
        if job is None:
            job = await self._store.get(job_id)
        if job is None:
            raise NotFound("job not found")
        project = await self._gate.require(actor, job.project_id, Need.READ, what="job")
        kind = self.kinds.get(job.kind)
        if kind is not None and kind.visible is not None and not kind.visible(actor, project, job):
            raise NotFound("job not found")  # before any other refusal: a hidden job is not there
        if need is not Need.READ:
            project = await self._gate.require(actor, job.project_id, need, what="job")
        if need is Need.WRITE:
            check_owner_or_lead(actor, project, job.owner_id, "the job's owner")
        return job

    async def cancel(self, actor: User, job_id: str) -> Job:
        job = await self.get(actor, job_id, Need.WRITE)
        if job.final:
            raise Conflict(f"the job has already {job.status.value}", code="job_finished")
        cancelled = await self._store.cancel_queued(job.id)
        if cancelled is not None:
            await self._events.status(cancelled)
            return cancelled
        running = await self._store.request_cancel(job.id)
        if running is None:  # it finished or was requeued meanwhile: look again
            return await self.cancel(actor, job_id)
        await self._events.status(running)
        await self._events.control({"cancel": running.id})
        return running

    # -- for the areas whose records have jobs (ingestions, plots): they checked their caller --------

    async def find(self, job_id: str) -> Job | None:
        return await self._store.get(job_id)

    async def find_many(self, job_ids: list[str]) -> dict[str, Job]:
        return await self._store.get_many(job_ids)

    async def forget(self, job_id: str) -> None:
        """Remove a job whose record is removed (an ingestion deleted)."""
        await self._events.forget(job_id)  # first: should Redis fail, the job is still whole
        await self._store.delete(job_id)

    async def withdraw(self, job_id: str) -> None:
        """Cancel a job still queued, for the system (its request failed before it was accepted)."""
        cancelled = await self._store.cancel_queued(job_id)
        if cancelled is not None:
            await self._events.status(cancelled)

    async def retry(self, actor: User, job_id: str) -> Job:
        job = await self.get(actor, job_id, Need.WRITE)
        if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
            raise Conflict("only failed or cancelled jobs can be retried", code="job_not_retryable")
        kind = self.kinds.get(job.kind)
        retried = await self._store.retry(job.id, kind.max_attempts if kind else 3)
        if retried is None:
            raise Conflict("the job changed meanwhile; look at it again", code="job_changed")
        await self._events.status(retried)
        await self._events.wake()
        return retried

    async def snapshot(self, job: Job) -> dict[str, Any]:
        """The live snapshot (fresher progress from Redis) or, failing that, MongoDB's view."""
        live = await self._events.log.snapshot(job.id)
        stored = job_snapshot(job)
        if live and live.get("attempt") == job.attempt and live.get("status") == stored["status"]:
            return live
        return stored

    async def watch(self, actor: User, job_id: str) -> tuple[str, dict[str, Any], bool]:
        """(stream, snapshot, finished) for an event stream, from the live view when it has the job.

        Reconnect storms after a restart are thousands of these at once: the Redis snapshot carries
        the job's project, so no MongoDB round trip is needed while it is there.
        """
        if not looks_like_id(job_id):
            raise NotFound("job not found")
        live = await self._events.log.snapshot(job_id)
        kind = self.kinds.get(str(live.get("kind"))) if live else None
        if live and isinstance(live.get("project_id"), str) and (kind is None or kind.visible is None):
            await self._gate.require(actor, live["project_id"], Need.READ, what="job")
            return self.stream(job_id), live, live.get("status") in FINAL_STATUSES
        job = await self.get(actor, job_id)  # kinds seen by some members only: checked on the job itself
        return self.stream(job.id), await self.snapshot(job), job.final

    def stream(self, job_id: str) -> str:
        return self._events.log.job_stream(job_id)

    async def counts(self) -> dict[str, int]:
        return await self._store.counts()
