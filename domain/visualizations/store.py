"""The visualizations collection (one document per plot; its _id is its job's id)."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from domain.infra.mongo import (
    Database,
    Document,
    backup_rule,
    index,
    insert_once,
    nested,
    new_id,
    object_id,
    with_object_ids,
    write_attempt_output,
)
from domain.infra.pagination import find_page
from domain.jobs.models import Attempt

index("visualizations", ("project_id", 1), ("created_at", -1), ("_id", -1), name="project_newest")
index("visualizations", ("dataset_id", 1), name="dataset")
backup_rule("visualizations", references=lambda d: (nested(d, "image", "key"),))


class VisualizationStore:
    def __init__(self, db: Database) -> None:
        self._visualizations = db["visualizations"]

    def new_id(self) -> str:
        return new_id()

    async def insert(self, doc: Document) -> None:
        """doc's ids as a service gives them (24 hex digits): stored as ObjectIds."""
        await insert_once(
            self._visualizations,
            with_object_ids(doc, "_id", "project_id", "job_id", "created_by", "dataset_id"),
        )

    async def write_output(self, visualization_id: str, fields: Document, attempt: Attempt) -> bool:
        """A plot's image, from an attempt of its job (False: a newer attempt wrote it already)."""
        return await write_attempt_output(
            self._visualizations, visualization_id, fields, job_id=attempt.job_id, attempt=attempt.attempt
        )

    async def get(self, visualization_id: str) -> Document | None:
        return await self._visualizations.find_one({"_id": object_id(visualization_id, "visualization")})

    async def page(
        self, project_id: str, *, dataset_id: str | None, limit: int, cursor: str | None,
        engagement_of: str | None = None,
    ) -> tuple[list[Document], str | None]:  # fmt: skip
        """engagement_of: show engagement plots of this person only (None: all of them)."""
        query: dict[str, Any] = {"project_id": ObjectId(project_id)}
        if engagement_of is not None:
            query["$or"] = [{"source": {"$ne": "engagement"}}, {"subject_id": engagement_of}]
        if dataset_id:
            query["dataset_id"] = object_id(dataset_id, "dataset")
        return await find_page(self._visualizations, query, [("created_at", -1), ("_id", -1)], limit, cursor)

    async def for_dataset(self, dataset_id: str) -> list[Document]:
        cursor = self._visualizations.find({"dataset_id": ObjectId(dataset_id)}).sort([("created_at", -1)])
        return await cursor.to_list()

    async def delete(self, visualization_id: str) -> Document | None:
        return await self._visualizations.find_one_and_delete({"_id": ObjectId(visualization_id)})

    async def delete_for_dataset(self, dataset_id: str) -> list[Document]:
        docs = await self.for_dataset(dataset_id)
        await self._visualizations.delete_many({"dataset_id": ObjectId(dataset_id)})
        return docs

    async def delete_project(self, project_id: str) -> list[Document]:
        docs = await self._visualizations.find({"project_id": ObjectId(project_id)}).to_list()
        await self._visualizations.delete_many({"project_id": ObjectId(project_id)})
        return docs
