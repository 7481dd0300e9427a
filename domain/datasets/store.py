"""The datasets and ingestions collections."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import attrs
from bson import ObjectId
from pymongo import ReturnDocument

from domain.datasets.models import (
    Dataset,
    DatasetEntry,
    DatasetFile,
    DatasetSummary,
    Ingestion,
    NewDataset,
    StoredDataset,
    raw_key,
)
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

index("datasets", ("project_id", 1), ("created_at", -1), ("_id", -1), name="project_newest")
index("datasets", ("job_id", 1), name="job")
index("ingestions", ("project_id", 1), ("created_at", -1), ("_id", -1), name="project_newest")
index("ingestions", ("file.sha256", 1), name="sha256")
index("ingestions", ("upload_id", 1), name="upload")
backup_rule(
    "datasets", references=lambda d: (d.get("parquet_key"), nested(d, "source", "raw_key"), d.get("summary_key"))
)
backup_rule("ingestions", references=lambda d: (raw_key(sha) if (sha := nested(d, "file", "sha256")) else None,))

_SUMMARY = {"stats": 0, "sample": 0, "warnings": 0, "metadata": 0, "provenance": 0}
# A wide dataset's statistics and sample rows would not fit in one document (MongoDB's 16 MB): past
# this many columns they are kept in dataset_details, a document per this many columns
DETAIL_COLUMNS = 2000
index("dataset_details", ("dataset_id", 1), ("attempt", 1), ("part", 1), name="dataset_part")


def dataset_from(doc: Document, details: list[Document] | None = None) -> Dataset:
    """Stored documents keep stats, sample and metadata in key-safe shapes (column names may hold
    dots and dollars, which document keys may not); the model has them as maps again. A wide
    dataset's stats and sample come from its details documents, in column order."""
    names = [c["name"] for c in doc.get("schema", [])]
    fields = dict(doc)
    if details:
        fields["stats_list"] = [entry for part in details for entry in part.get("stats_list", [])]
        samples = [part.get("sample_rows", []) for part in details]
        fields["sample_rows"] = [
            [value for part in samples for value in (part[i] if i < len(part) else [])]
            for i in range(max((len(s) for s in samples), default=0))
        ]
    fields["stats"] = {
        e["column"]: {k: v for k, v in e.items() if k != "column"} for e in fields.get("stats_list", [])
    }
    fields["sample"] = [dict(zip(names, row, strict=False)) for row in fields.get("sample_rows", [])]
    fields["metadata"] = json.loads(doc.get("metadata_json") or "{}")
    return from_document(Dataset, fields)


def _summary(doc: Document) -> DatasetSummary:
    return from_document(DatasetSummary, {**doc, "columns": len(doc.get("schema") or [])})


class DatasetStore:
    def __init__(self, db: Database) -> None:
        self._datasets = db["datasets"]
        self._details = db["dataset_details"]

    async def get(self, dataset_id: str) -> StoredDataset | None:
        doc = await self._datasets.find_one({"_id": object_id(dataset_id, "dataset")})
        if doc is None:
            return None
        details = None
        if doc.get("details_parts"):
            details = await self._details.find(
                {"dataset_id": doc["_id"], "attempt": doc.get("details_attempt")}
            ).sort("part", 1).to_list()
        return StoredDataset(
            dataset_from(doc, details), doc["parquet_key"], doc.get("parquet_sha256", ""), doc.get("summary_key")
        )

    async def set_summary(self, dataset_id: str, parquet_sha256: str, key: str, sorted_columns: list[str]) -> bool:
        """A summary made later for a dataset stored without one (False: the dataset is gone)."""
        same: Document = {"_id": ObjectId(dataset_id)}
        if parquet_sha256:  # datasets from before hashes were kept have none
            same["parquet_sha256"] = parquet_sha256
        result = await self._datasets.update_one(same, {"$set": {"summary_key": key, "sorted_columns": sorted_columns}})
        return result.matched_count == 1

    async def write_output(self, dataset_id: str, made: NewDataset, attempt: Attempt) -> bool:
        """A dataset an ingestion attempt made (False: a newer attempt wrote it already)."""
        fields = attrs.asdict(made, recurse=False)
        # kept as lists and text: column names may hold dots and dollars, which keys may not
        stats_list = [{"column": name, **values} for name, values in fields.pop("stats").items()]
        sample_rows = [[row.get(c["name"]) for c in made.schema] for row in fields.pop("sample")]
        fields["metadata_json"] = json.dumps(fields.pop("metadata"), default=str)
        if len(made.schema) > DETAIL_COLUMNS:
            # first the details of this attempt (a retry writes them again), then the dataset naming them
            parts = range(0, len(made.schema), DETAIL_COLUMNS)
            for part, start in enumerate(parts):
                end = start + DETAIL_COLUMNS
                await self._details.replace_one(
                    {"_id": f"{dataset_id}:{attempt.attempt}:{part}"},
                    {"dataset_id": ObjectId(dataset_id), "attempt": attempt.attempt, "part": part,
                     "stats_list": stats_list[start:end], "sample_rows": [row[start:end] for row in sample_rows]},
                    upsert=True,
                )  # fmt: skip
            stats_list, sample_rows = [], []
            fields["details_parts"], fields["details_attempt"] = len(parts), attempt.attempt
        fields["stats_list"], fields["sample_rows"] = stats_list, sample_rows
        stored = with_object_ids(fields, "project_id", "created_by")
        return await write_attempt_output(
            self._datasets, dataset_id, stored, job_id=attempt.job_id, attempt=attempt.attempt
        )

    async def page(
        self, project_id: str, *, dataset_type: str | None, tag: str | None, limit: int, cursor: str | None
    ) -> tuple[list[DatasetSummary], str | None]:
        query: dict[str, Any] = {"project_id": ObjectId(project_id)}
        if dataset_type:
            query["dataset_type"] = dataset_type
        if tag:
            query["tag"] = tag
        docs, next_cursor = await find_page(
            self._datasets, query, [("created_at", -1), ("_id", -1)], limit, cursor
        )
        return [_summary(d) for d in docs], next_cursor

    async def entries(self, project_ids: list[str], *, with_schema: bool) -> list[DatasetEntry]:
        """The datasets of these projects, as the SQL catalog names and lists them."""
        fields = ["project_id", "name", "row_count", "created_at", "parquet_key", "parquet_sha256"]
        cursor = self._datasets.find(
            {"project_id": {"$in": [ObjectId(p) for p in project_ids]}},
            dict.fromkeys([*fields, *(["schema"] if with_schema else [])], 1),
        )
        return [
            from_document(DatasetEntry, {**d, "schema": d.get("schema") or [], "row_count": d.get("row_count", 0)})
            async for d in cursor
        ]

    async def files(self, dataset_ids: list[str]) -> list[DatasetFile]:
        cursor = self._datasets.find(
            {"_id": {"$in": [ObjectId(i) for i in dataset_ids]}},
            {"project_id": 1, "parquet_key": 1, "parquet_sha256": 1},
        )
        return [
            DatasetFile(str(d["_id"]), str(d["project_id"]), d["parquet_key"], d.get("parquet_sha256", ""))
            async for d in cursor
        ]

    async def uses_key(self, parquet_key: str) -> bool:
        return await self._datasets.count_documents({"parquet_key": parquet_key}, limit=1) > 0

    async def ids_by_job(self, job_id: str) -> list[str]:
        return [str(d["_id"]) for d in await self._datasets.find({"job_id": ObjectId(job_id)}, {"_id": 1}).to_list()]

    async def delete(self, dataset_id: str) -> list[str] | None:
        """Remove a dataset; the keys of its objects (None: it was not there)."""
        doc = await self._datasets.find_one_and_delete(
            {"_id": ObjectId(dataset_id)}, {"parquet_key": 1, "summary_key": 1}
        )
        await self._details.delete_many({"dataset_id": ObjectId(dataset_id)})
        return None if doc is None else [k for k in (doc["parquet_key"], doc.get("summary_key")) if k]

    async def delete_project(self, project_id: str) -> list[str]:
        keys = [
            key
            async for d in self._datasets.find({"project_id": ObjectId(project_id)}, {"parquet_key": 1, "summary_key": 1})
            for key in (d["parquet_key"], d.get("summary_key"))
            if key
        ]
        ids = [d["_id"] async for d in self._datasets.find({"project_id": ObjectId(project_id)}, {"_id": 1})]
        await self._details.delete_many({"dataset_id": {"$in": ids}})
        await self._datasets.delete_many({"project_id": ObjectId(project_id)})
        return keys


class IngestionStore:
    def __init__(self, db: Database) -> None:
        self._ingestions = db["ingestions"]

    def new_id(self) -> str:
        return new_id()

    async def insert(self, doc: Document) -> None:
        await insert_once(self._ingestions, with_object_ids(doc, "_id", "project_id", "job_id", "created_by"))

    async def get(self, ingestion_id: str) -> Ingestion | None:
        doc = await self._ingestions.find_one({"_id": object_id(ingestion_id, "ingestion")})
        return _ingestion(doc) if doc else None

    async def page(
        self, project_id: str, *, limit: int, cursor: str | None
    ) -> tuple[list[Ingestion], str | None]:
        docs, next_cursor = await find_page(
            self._ingestions, {"project_id": ObjectId(project_id)}, [("created_at", -1), ("_id", -1)], limit, cursor
        )
        return [_ingestion(d) for d in docs], next_cursor

    async def batch_from_upload(self, owner_id: str, upload_id: str) -> list[Ingestion]:
        """The whole batch (in the order it was made) in which the caller used this resumable upload."""
        first = await self._ingestions.find_one({"upload_id": upload_id, "created_by": ObjectId(owner_id)})
        if first is None:
            return []
        cursor = self._ingestions.find({"batch_id": first["batch_id"]}).sort([("_id", 1)])
        return [_ingestion(doc) async for doc in cursor]

    async def hold_raw(self, batch_id: str, until: datetime) -> None:
        """The request storing a batch's raw files is at work until `until` (a lease it renews;
        a time in the past says nobody will store them)."""
        await self._ingestions.update_many({"batch_id": batch_id}, {"$set": {"raw_until": until}})

    async def raw_held(self, ingestion_id: str, now: datetime) -> bool:
        """Whether someone may still be storing this ingestion's raw file (ingestions made before
        the lease existed: yes, until the job's own deadline)."""
        found = await self._ingestions.count_documents(
            {"_id": ObjectId(ingestion_id), "$or": [
                {"raw_until": {"$exists": False}}, {"raw_until": {"$gte": now}},
            ]},
            limit=1,
        )  # fmt: skip
        return found > 0

    async def record_outcome(self, ingestion_id: str, fields: Document) -> None:
        await self._ingestions.find_one_and_update(
            {"_id": ObjectId(ingestion_id)}, {"$set": fields}, return_document=ReturnDocument.AFTER
        )

    async def forget_dataset(self, dataset_id: str) -> None:
        await self._ingestions.update_many(
            {"dataset_ids": dataset_id}, {"$pull": {"dataset_ids": dataset_id}}
        )

    async def delete(self, ingestion_id: str) -> None:
        await self._ingestions.delete_one({"_id": ObjectId(ingestion_id)})

    async def sha_in_use(self, sha256: str) -> bool:
        return await self._ingestions.count_documents({"file.sha256": sha256}, limit=1) > 0

    async def delete_project(self, project_id: str) -> list[str]:
        shas = await self._ingestions.distinct("file.sha256", {"project_id": ObjectId(project_id)})
        await self._ingestions.delete_many({"project_id": ObjectId(project_id)})
        return [str(s) for s in shas]


def _ingestion(doc: Document) -> Ingestion:
    """As stored, before its job's live status is folded in (models.with_job)."""
    return from_document(Ingestion, {**doc, "status": "stored"})
