"""The visualizations collection (one document per plot; its _id is its job's id)."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from domain.infra.bson_codec import from_document
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
from domain.visualizations.models import StoredPlot, Visualization

index("visualizations", ("project_id", 1), ("created_at", -1), ("_id", -1), name="project_newest")
index("visualizations", ("dataset_id", 1), name="dataset")
backup_rule("visualizations", references=lambda d: (nested(d, "image", "key"),))


ENGAGEMENT_TABLE = "engagement_table"  # the plotted minutes, in the plot's record (never in its job)


def _plot(doc: Document) -> StoredPlot:
    fields = {k: v for k, v in doc.items() if k not in {"subject_id", ENGAGEMENT_TABLE}}
    subject = doc.get("subject_id")
    return StoredPlot(
        from_document(Visualization, {**fields, "status": "unknown"}), None if subject is None else str(subject)
    )


class VisualizationStore:
    def __init__(self, db: Database) -> None:
        self._visualizations = db["visualizations"]

    def new_id(self) -> str:
        return new_id()

    async def insert(self, doc: Document) -> StoredPlot:
        """doc's ids as a service gives them (24 hex digits): stored as ObjectIds."""
        stored = with_object_ids(doc, "_id", "project_id", "job_id", "created_by", "dataset_id", "dataset_version_id")
        await insert_once(self._visualizations, stored)
        return _plot(stored)

    async def write_output(self, visualization_id: str, fields: Document, attempt: Attempt) -> bool:
        """A plot's image, from an attempt of its job (False: a newer attempt wrote it already)."""
        return await write_attempt_output(
            self._visualizations, visualization_id, fields, job_id=attempt.job_id, attempt=attempt.attempt
        )

    async def get(self, visualization_id: str) -> StoredPlot | None:
        doc = await self._visualizations.find_one({"_id": object_id(visualization_id, "visualization")})
        return _plot(doc) if doc else None

    async def engagement_table(self, visualization_id: str) -> Any:
        """The minutes an engagement plot draws (kept in its record, never in its job); None when
        the plot is gone."""
        doc = await self._visualizations.find_one({"_id": ObjectId(visualization_id)}, {ENGAGEMENT_TABLE: 1})
        return (doc or {}).get(ENGAGEMENT_TABLE)

    async def page(
        self, project_id: str, *, dataset_id: str | None, limit: int, cursor: str | None,
        engagement_of: str | None = None,
    ) -> tuple[list[StoredPlot], str | None]:  # fmt: skip
        """engagement_of: show engagement plots of this person only (None: all of them)."""
        query: dict[str, Any] = {"project_id": ObjectId(project_id)}
        if engagement_of is not None:
            query["$or"] = [{"source": {"$ne": "engagement"}}, {"subject_id": engagement_of}]
        if dataset_id:
            query["dataset_id"] = object_id(dataset_id, "dataset")
        docs, next_cursor = await find_page(
            self._visualizations, query, [("created_at", -1), ("_id", -1)], limit, cursor
        )
        return [_plot(d) for d in docs], next_cursor

    async def of_version(self, dataset_id: str, version_id: str) -> list[StoredPlot]:
        """The plots drawn from one version (plots from before versions name only their dataset: the first)."""
        cursor = self._visualizations.find({"$or": [
            {"dataset_version_id": ObjectId(version_id)},
            *([{"dataset_id": ObjectId(dataset_id), "dataset_version_id": {"$exists": False}}]
              if dataset_id == version_id else []),
        ]}).limit(500)  # fmt: skip
        return [_plot(d) async for d in cursor]

    async def for_dataset(self, dataset_id: str) -> list[StoredPlot]:
        cursor = self._visualizations.find({"dataset_id": ObjectId(dataset_id)}).sort([("created_at", -1)])
        return [_plot(d) async for d in cursor]

    async def delete(self, visualization_id: str) -> StoredPlot | None:
        doc = await self._visualizations.find_one_and_delete({"_id": ObjectId(visualization_id)})
        return _plot(doc) if doc else None

    async def delete_for_dataset(self, dataset_id: str, version_id: str) -> list[StoredPlot]:
        """The plots of one version (plots from before versions name only their dataset: the first)."""
        of_version: Document = {"$or": [
            {"dataset_version_id": ObjectId(version_id)},
            *([{"dataset_id": ObjectId(dataset_id), "dataset_version_id": {"$exists": False}}]
              if dataset_id == version_id else []),
        ]}  # fmt: skip
        plots = [_plot(d) async for d in self._visualizations.find(of_version)]
        await self._visualizations.delete_many(of_version)
        return plots

    async def delete_project(self, project_id: str) -> list[StoredPlot]:
        docs = await self._visualizations.find({"project_id": ObjectId(project_id)}).to_list()
        await self._visualizations.delete_many({"project_id": ObjectId(project_id)})
        return [_plot(d) for d in docs]
