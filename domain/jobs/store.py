"""The jobs collection: atomic claims, leases, sweeps and attempt-guarded state changes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from domain.core.clock import utcnow
from domain.infra.bson_codec import from_document
from domain.infra.mongo import Database, Document, backup_rule, index, insert_once, object_id
from domain.infra.pagination import find_page
from domain.jobs.models import Attempt, Job, JobError, JobStatus, Progress

index("jobs", ("status", 1), ("created_at", 1), name="queue")
index("jobs", ("status", 1), ("lease.expires_at", 1), name="leases")
index("jobs", ("project_id", 1), ("kind", 1), ("created_at", -1), ("_id", -1), name="project_kind")
index("jobs", ("owner_id", 1), ("created_at", -1), ("_id", -1), name="owner_newest")


def _queued_again(doc: Document) -> Document | None:
    """A job running when a backup was taken, as a restore should find it: queued for its next
    attempt, no lease (it runs again after the restore)."""
    if doc.get("status") != JobStatus.RUNNING.value:
        return None
    return {**doc, "status": JobStatus.QUEUED.value, "lease": None, "progress": None}


backup_rule("jobs", rewrite=_queued_again, rewritten_as="requeued_jobs", rank=2)


def _progress_doc(progress: Progress) -> Document:
    return {
        "stage": progress.stage,
        "done": progress.done,
        "total": progress.total,
        "message": progress.message,
    }


def _job(doc: Document | None) -> Job | None:
    return from_document(Job, doc) if doc else None


class JobStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._jobs = db["jobs"]

    async def insert(
        self, *, kind: str, project_id: str, owner_id: str, params: dict[str, Any], max_attempts: int,
        job_id: str | None = None, claimed: tuple[str, float] | None = None,
    ) -> Job:  # fmt: skip
        """claimed: (owner, lease s) of a job inserted already claimed, as claim() would leave it."""
        now = utcnow()
        doc: Document = {
            "kind": kind,
            "project_id": ObjectId(project_id),
            "owner_id": ObjectId(owner_id),
            "params": params,
            "status": JobStatus.QUEUED.value,
            "attempt": 1,
            "max_attempts": max_attempts,
            "lease": None,
            "progress": None,
            "result": None,
            "error": None,
            "cancel_requested": False,
            "created_at": now,
            "updated_at": now,
            "started_at": None,
            "finished_at": None,
            **({"_id": ObjectId(job_id)} if job_id else {}),
        }
        if claimed is not None:
            owner, lease_s = claimed
            doc["status"], doc["started_at"] = JobStatus.RUNNING.value, now
            doc["lease"] = {"owner": owner, "expires_at": now + timedelta(seconds=lease_s)}
        await insert_once(self._jobs, doc)
        job = _job(doc)
        assert job is not None
        return job

    async def get(self, job_id: str) -> Job | None:
        return _job(await self._jobs.find_one({"_id": object_id(job_id, "job")}))

    async def get_many(self, job_ids: list[str]) -> dict[str, Job]:
        if not job_ids:
            return {}
        cursor = self._jobs.find({"_id": {"$in": [ObjectId(j) for j in job_ids]}})
        return {str(doc["_id"]): from_document(Job, doc) async for doc in cursor}

    async def delete(self, job_id: str) -> None:
        await self._jobs.delete_one({"_id": ObjectId(job_id)})

    async def claim(self, owner: str, kinds: list[str], lease_s: float) -> Job | None:
        """Take the oldest queued job of a known kind, atomically: no two instances get the same one."""
        now = utcnow()
        doc = await self._jobs.find_one_and_update(
            {"status": JobStatus.QUEUED.value, "kind": {"$in": kinds}},
            {
                "$set": {
                    "status": JobStatus.RUNNING.value,
                    "lease": {"owner": owner, "expires_at": now + timedelta(seconds=lease_s)},
                    "started_at": now,
                    "updated_at": now,
                    "error": None,
                }
            },
            sort=[("created_at", 1), ("_id", 1)],
            return_document=ReturnDocument.AFTER,
        )
        return _job(doc)

    async def renew(self, owner: str, job_ids: list[str], lease_s: float) -> None:
        if job_ids:
            await self._jobs.update_many(
                {
                    "_id": {"$in": [ObjectId(j) for j in job_ids]},
                    "status": JobStatus.RUNNING.value,
                    "lease.owner": owner,
                },
                {"$set": {"lease.expires_at": utcnow() + timedelta(seconds=lease_s)}},
            )

    async def held(self, owner: str, job_ids: list[str]) -> dict[str, Job]:
        """Those of job_ids this owner still holds a lease on (with their cancel flags)."""
        cursor = self._jobs.find(
            {
                "_id": {"$in": [ObjectId(j) for j in job_ids]},
                "status": JobStatus.RUNNING.value,
                "lease.owner": owner,
            }
        )
        return {str(doc["_id"]): from_document(Job, doc) async for doc in cursor}

    async def expired(self, now: datetime) -> list[Job]:
        cursor = self._jobs.find({"status": JobStatus.RUNNING.value, "lease.expires_at": {"$lt": now}})
        return [from_document(Job, doc) async for doc in cursor]

    async def requeue(
        self, attempt: Attempt | None, job: Job, *, bump: bool, expired_before: datetime | None = None
    ) -> Job | None:
        """Running → queued, for this exact attempt; bump counts it as a new attempt."""
        query: Document = {"_id": ObjectId(job.id), "status": JobStatus.RUNNING.value, "attempt": job.attempt}
        if attempt is not None:
            query["lease.owner"] = attempt.owner
        if expired_before is not None:
            query["lease.expires_at"] = {"$lt": expired_before}
        update: Document = {"$set": {"status": JobStatus.QUEUED.value, "lease": None, "updated_at": utcnow()}}
        if bump:
            update["$inc"] = {"attempt": 1}
        return _job(await self._jobs.find_one_and_update(query, update, return_document=ReturnDocument.AFTER))

    async def finish(
        self,
        job: Job,
        status: JobStatus,
        *,
        owner: str | None,
        result: dict[str, Any] | None = None,
        error: JobError | None = None,
        expired_before: datetime | None = None,
        progress: Progress | None = None,
    ) -> Job | None:
        """Running → final, only if the attempt (and lease owner) still match; None if stale."""
        now = utcnow()
        query: Document = {"_id": ObjectId(job.id), "status": JobStatus.RUNNING.value, "attempt": job.attempt}
        if owner is not None:
            query["lease.owner"] = owner
        if expired_before is not None:
            query["lease.expires_at"] = {"$lt": expired_before}
        fields: Document = {"status": status.value, "lease": None, "finished_at": now, "updated_at": now}
        if result is not None:
            fields["result"] = result
        if error is not None:
            fields["error"] = {"code": error.code, "message": error.message}
        if progress is not None:
            fields["progress"] = _progress_doc(progress)
        return _job(
            await self._jobs.find_one_and_update(
                query, {"$set": fields}, return_document=ReturnDocument.AFTER
            )
        )

    async def cancel_queued(self, job_id: str) -> Job | None:
        now = utcnow()
        doc = await self._jobs.find_one_and_update(
            {"_id": ObjectId(job_id), "status": JobStatus.QUEUED.value},
            {"$set": {"status": JobStatus.CANCELLED.value, "finished_at": now, "updated_at": now,
                      "error": {"code": "cancelled", "message": "the job was cancelled"}}},
            return_document=ReturnDocument.AFTER,
        )  # fmt: skip
        return _job(doc)

    async def request_cancel(self, job_id: str) -> Job | None:
        doc = await self._jobs.find_one_and_update(
            {"_id": ObjectId(job_id), "status": JobStatus.RUNNING.value},
            {"$set": {"cancel_requested": True, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )
        return _job(doc)

    async def retry(self, job_id: str, attempts: int) -> Job | None:
        """Failed or cancelled → queued as a new attempt, with a fresh budget of attempts."""
        doc = await self._jobs.find_one({"_id": ObjectId(job_id)})
        if doc is None or doc["status"] not in (JobStatus.FAILED.value, JobStatus.CANCELLED.value):
            return None
        new_attempt = doc["attempt"] + 1
        updated = await self._jobs.find_one_and_update(
            {"_id": doc["_id"], "status": doc["status"], "attempt": doc["attempt"]},
            {"$set": {"status": JobStatus.QUEUED.value, "attempt": new_attempt,
                      "max_attempts": new_attempt + attempts - 1, "error": None, "result": None,
                      "cancel_requested": False, "finished_at": None, "progress": None, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )  # fmt: skip
        return _job(updated)

    async def set_progress(self, job_id: str, attempt: int, progress: Progress) -> None:
        await self._jobs.update_one(
            {"_id": ObjectId(job_id), "attempt": attempt, "status": JobStatus.RUNNING.value},
            {"$set": {"progress": _progress_doc(progress)}},
        )

    async def still_current(self, attempt: Attempt) -> bool:
        count = await self._jobs.count_documents(
            {"_id": ObjectId(attempt.job_id), "attempt": attempt.attempt, "status": JobStatus.RUNNING.value,
             "lease.owner": attempt.owner},
            limit=1,
        )  # fmt: skip
        return count == 1

    async def active(self) -> list[Job]:
        cursor = self._jobs.find({"status": {"$in": [JobStatus.QUEUED.value, JobStatus.RUNNING.value]}})
        return [from_document(Job, doc) async for doc in cursor]

    async def counts(self) -> dict[str, int]:
        counts = {status.value: 0 for status in JobStatus}
        cursor = await self._jobs.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
        async for row in cursor:
            counts[str(row["_id"])] = int(row["n"])
        return counts

    async def page(
        self, project_id: str, kind: str, *, limit: int, cursor: str | None, extra: Document | None = None
    ) -> tuple[list[Job], str | None]:
        query: Document = {"project_id": ObjectId(project_id), "kind": kind, **(extra or {})}
        docs, next_cursor = await find_page(
            self._jobs, query, [("created_at", -1), ("_id", -1)], limit, cursor
        )
        return [from_document(Job, d) for d in docs], next_cursor

    async def list_page(
        self, *, owner_id: str | None, status: str | None, kind: str | None, project_id: str | None,
        limit: int, cursor: str | None, only_projects: frozenset[str] | None = None,
    ) -> tuple[list[Job], str | None]:  # fmt: skip
        """Jobs newest first: one owner's (None = everyone's), optionally of one status, kind, project."""
        query: Document = {}
        if owner_id is not None:
            query["owner_id"] = ObjectId(owner_id)
        if status is not None:
            query["status"] = status
        if kind is not None:
            query["kind"] = kind
        if project_id is not None:
            query["project_id"] = ObjectId(project_id)
        elif only_projects is not None:
            query["project_id"] = {"$in": [ObjectId(p) for p in only_projects]}
        docs, next_cursor = await find_page(
            self._jobs, query, [("created_at", -1), ("_id", -1)], limit, cursor
        )
        return [from_document(Job, d) for d in docs], next_cursor
