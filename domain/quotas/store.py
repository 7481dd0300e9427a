"""How much a person or a project stores, summed from the collections that hold the sizes.

Counted from the source every time (never a counter beside it that could drift after a failed
write): document versions, ingested files and the datasets made from them, plot images, and a
person's unfinished resumable uploads (what they declared they will send).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bson import ObjectId

from domain.infra.mongo import Database, index
from domain.jobs.models import JobStatus

index("document_versions", ("created_by", 1), name="creator")
index("ingestions", ("created_by", 1), name="creator")
index("datasets", ("created_by", 1), name="creator")
index("visualizations", ("created_by", 1), name="creator")
index("jobs", ("owner_id", 1), ("status", 1), name="owner_status")

# collection -> the field that holds each document's stored bytes
SIZES = {
    "document_versions": "$size",
    "ingestions": "$file.size",
    "datasets": "$parquet_bytes",
    "visualizations": "$image.size",
}


class UsageStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def _total(self, by: str, owner: ObjectId) -> int:
        total = 0
        for collection, size in SIZES.items():
            pipeline: list[dict[str, Any]] = [
                {"$match": {by: owner}},
                {"$group": {"_id": None, "bytes": {"$sum": {"$ifNull": [size, 0]}}}},
            ]
            async for row in await self._db[collection].aggregate(pipeline):
                total += int(row["bytes"] or 0)
        return total

    async def user_bytes(self, user_id: str, now: datetime) -> int:
        """What a person's uploads take, resumable uploads not yet used up included (their declared
        length: what they hold, or will)."""
        pending: list[dict[str, Any]] = [
            {"$match": {"owner_id": ObjectId(user_id), "expires_at": {"$gt": now}}},
            {"$group": {"_id": None, "bytes": {"$sum": "$length"}}},
        ]  # fmt: skip
        open_bytes = 0
        async for row in await self._db["uploads"].aggregate(pending):
            open_bytes += int(row["bytes"] or 0)
        return await self._total("created_by", ObjectId(user_id)) + open_bytes

    async def project_bytes(self, project_id: str) -> int:
        return await self._total("project_id", ObjectId(project_id))

    async def open_uploads(self, user_id: str, now: datetime) -> int:
        """A person's resumable uploads still receiving bytes."""
        return await self._db["uploads"].count_documents(
            {"owner_id": ObjectId(user_id), "status": "receiving", "expires_at": {"$gt": now}}
        )

    async def active_jobs(self, user_id: str) -> int:
        """A person's jobs that are waiting or running."""
        return await self._db["jobs"].count_documents(
            {"owner_id": ObjectId(user_id), "status": {"$in": [JobStatus.QUEUED.value, JobStatus.RUNNING.value]}}
        )
