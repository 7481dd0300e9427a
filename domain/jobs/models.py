"""Jobs (docs/architecture.md, "The job path"): the durable record of long work, its kinds and the states it moves through."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from domain.accounts.models import User
    from domain.projects.models import Project
    from workers.worker import WorkerTarget


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})


@attrs.frozen
class JobError:
    code: str
    message: str


@attrs.frozen
class Progress:
    stage: str
    done: float | None = None
    total: float | None = None
    message: str = ""


@attrs.frozen
class Lease:
    owner: str
    expires_at: datetime


@attrs.frozen
class Job:
    id: str
    kind: str
    project_id: str
    owner_id: str
    params: dict[str, Any]
    status: JobStatus
    attempt: int
    max_attempts: int
    created_at: datetime
    updated_at: datetime
    lease: Lease | None = None
    progress: Progress | None = None
    result: dict[str, Any] | None = None
    error: JobError | None = None
    cancel_requested: bool = False
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


@attrs.frozen
class Attempt:
    """One try of a job: what a commit must still match to be allowed to write."""

    job_id: str
    attempt: int
    owner: str


Prepare = Callable[[Job], Awaitable[dict[str, Any]]]
Commit = Callable[[Job, dict[str, Any], Attempt], Awaitable[dict[str, Any]]]
Cleanup = Callable[[Job], Awaitable[None]]
# whether a member of the job's project may see the job (its params, progress and result)
Visible = Callable[["User", "Project", Job], bool]


async def _params_as_inputs(job: Job) -> dict[str, Any]:
    return dict(job.params)


async def _result_as_is(_job: Job, result: dict[str, Any], _attempt: Attempt) -> dict[str, Any]:
    return result


async def _nothing(_job: Job) -> None:
    return None


@attrs.frozen
class JobKind:
    """A kind of job: a pure worker function plus the async steps around it.

    prepare turns the stored job into the worker's small picklable inputs (object keys, options);
    commit writes the worker's result where it belongs, keyed by job or output id so that a retry
    overwrites instead of duplicating, and returns what the job document keeps as its result;
    cleanup runs after every attempt, however it ended (temporary files); visible, when set, narrows
    who in the project sees a job of this kind: a job is never more visible than what it makes (and
    its params hold references, never other people's data).
    """

    name: str
    worker: WorkerTarget  # the function, or its "module:function" name (imported by the workers only)
    title: str = "Job"
    prepare: Prepare = _params_as_inputs
    commit: Commit = _result_as_is
    cleanup: Cleanup = _nothing
    timeout_s: float = 3600.0
    max_attempts: int = 3
    prepare_stage: str = "prepare"  # progress stage names shown while the server-side steps run
    commit_stage: str = "commit"
    visible: Visible | None = None  # None: every member of the project


class JobKinds:
    """The kinds this server instance can run; it only claims jobs of these kinds."""

    def __init__(self) -> None:
        self._kinds: dict[str, JobKind] = {}

    def register(self, kind: JobKind) -> None:
        self._kinds[kind.name] = kind

    def get(self, name: str) -> JobKind | None:
        return self._kinds.get(name)

    def names(self) -> list[str]:
        return sorted(self._kinds)


ERROR_MESSAGES = {
    "worker_crashed": "the worker process died while running this job (a crash or running out of memory)",
    "attempts_exhausted": "the job was interrupted on every attempt and was given up",
    "timeout": "the job ran longer than its time limit and was stopped",
    "cancelled": "the job was cancelled",
    "out_of_memory": "the job needed more memory than a worker may use",
    "internal_error": "the job failed because of an error in LabHub; it has been logged",
}


def job_error(code: str, message: str | None = None) -> JobError:
    return JobError(code, message or ERROR_MESSAGES.get(code, code))


def error_map(job: Job) -> dict[str, str] | None:
    """A job's error as the API shows it: on the job, and on what the job makes (ingestions, plots)."""
    return None if job.error is None else {"code": job.error.code, "message": job.error.message}


def job_snapshot(job: Job) -> dict[str, Any]:
    """What a watcher needs to draw a job: the same shape in the snapshot and in status events."""
    return {
        "id": job.id,
        "kind": job.kind,
        "project_id": job.project_id,
        "status": job.status.value,
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "progress": None
        if job.progress is None
        else {"stage": job.progress.stage, "done": job.progress.done, "total": job.progress.total,
              "message": job.progress.message},
        "result": job.result,
        "error": error_map(job),
        "cancel_requested": job.cancel_requested,
        "updated_at": job.updated_at.isoformat(),
    }  # fmt: skip
