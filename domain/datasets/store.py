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
index("datasets", ("root_id", 1), ("version", -1), name="versions")
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
    fields["version_id"] = doc["_id"]
    fields["_id"] = _root(doc)
    fields["latest_version"] = fields["version"] = doc.get("version", 1)
    return from_document(Dataset, fields)


def _root(doc: Document) -> ObjectId:
    """The dataset a stored version belongs to: its first version's id (docs/architecture.md, "Versions")."""
    root: ObjectId = doc.get("root_id") or doc["_id"]
    return root


def _latest(doc: Document) -> bool:
    return doc.get("latest", True) is not False


def _summary(doc: Document) -> DatasetSummary:
    return from_document(
        DatasetSummary, {
            **doc, "_id": _root(doc), "columns": len(doc.get("schema") or []), "version": doc.get("version", 1),
            "version_id": doc["_id"], "source_name": nested(doc, "source", "name") or "",
        },
    )  # fmt: skip


LATEST: Document = {"latest": {"$ne": False}}  # versions before versions existed have no flag: each was its dataset


class DatasetStore:
    def __init__(self, db: Database) -> None:
        self._datasets = db["datasets"]
        self._details = db["dataset_details"]
        self._counters = db["dataset_versions"]  # per dataset: how many versions were added after the first

    async def get(self, dataset_id: str, version: int | None = None) -> StoredDataset | None:
        """A dataset's latest version, or the one numbered `version` (None: there is none). The id may
        also be a version's own id: then that version, unless it is an older one and no number is asked."""
        doc = await self._datasets.find_one({"_id": object_id(dataset_id, "dataset")})
        wanted = doc is not None and (
            doc.get("version", 1) == version if version is not None else _latest(doc)
        )
        if not wanted:
            root = _root(doc) if doc is not None else ObjectId(dataset_id)
            if version is None:
                found = await self._datasets.find({"root_id": root, "latest": True}).sort("version", -1).to_list(1)
                doc = found[0] if found else doc
            elif version == 1:
                doc = await self._datasets.find_one({"_id": root})
            else:
                doc = await self._datasets.find_one({"root_id": root, "version": version})
        if doc is None:
            return None
        return await self._stored(doc)

    async def get_version(self, version_id: str) -> StoredDataset | None:
        """Exactly this version (by its own id), latest or not: what a job made from it reads."""
        doc = await self._datasets.find_one({"_id": object_id(version_id, "dataset")})
        return None if doc is None else await self._stored(doc)

    async def _stored(self, doc: Document) -> StoredDataset:
        details = None
        if doc.get("details_parts"):
            details = await self._details.find(
                {"dataset_id": doc["_id"], "attempt": doc.get("details_attempt")}
            ).sort("part", 1).to_list()
        return StoredDataset(
            dataset_from(doc, details), doc["parquet_key"], doc.get("parquet_sha256", ""), doc.get("summary_key")
        )

    async def versions(self, dataset_id: str) -> list[DatasetSummary]:
        """Every version of a dataset (of which dataset_id is the first's id), oldest first."""
        root = ObjectId(dataset_id)
        cursor = self._datasets.find(
            {"$or": [{"_id": root}, {"root_id": root}]}, {"stats_list": 0, "sample_rows": 0, "metadata_json": 0}
        )
        return sorted([_summary(d) async for d in cursor], key=lambda s: s.version)

    async def latest_version(self, dataset_id: str) -> int:
        found = await self._datasets.find({"root_id": ObjectId(dataset_id)}, {"version": 1}).sort("version", -1).to_list(1)
        return int(found[0]["version"]) if found else 1

    async def version_number(self, dataset_id: str, version_id: str) -> int:
        """The number of the version that will be stored as version_id (the same on every attempt of
        the job that makes it; a crash between counting and storing leaves a number unused)."""
        made = await self._datasets.find_one({"_id": ObjectId(version_id)}, {"version": 1})
        if made is not None and made.get("version"):
            return int(made["version"])
        counter = await self._counters.find_one_and_update(
            {"_id": ObjectId(dataset_id)}, {"$inc": {"added": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return 1 + int((counter or {}).get("added", 1))

    async def settle_latest(self, dataset_id: str) -> bool:
        """Mark the dataset's highest version, and only it, as its latest (after a version came or
        went); False when no version is left."""
        root = ObjectId(dataset_id)
        docs = await self._datasets.find({"$or": [{"_id": root}, {"root_id": root}]}, {"version": 1, "latest": 1}).to_list()
        if not docs:
            await self._counters.delete_one({"_id": root})
            return False
        top = max(docs, key=lambda d: d.get("version", 1))["_id"]
        for doc in docs:
            if (doc["_id"] == top) != _latest(doc):
                await self._datasets.update_one({"_id": doc["_id"]}, {"$set": {"latest": doc["_id"] == top}})
        return True

    async def adjacent(self, dataset_id: str, version: int, *, later: bool) -> StoredDataset | None:
        """The version just before (or after) version `version` of a dataset."""
        root = ObjectId(dataset_id)
        order = 1 if later else -1
        found = await self._datasets.find(
            {"$or": [{"_id": root}, {"root_id": root}], "version": {"$gt" if later else "$lt": version}}
        ).sort("version", order).to_list(1)
        if not found and not later and version > 1:  # the first version of a dataset stored before versions
            found = await self._datasets.find({"_id": root, "version": {"$exists": False}}).to_list(1)
        return await self._stored(found[0]) if found else None

    async def made_from(self, version_id: str, dataset_id: str) -> list[tuple[str, str]]:
        """(version id, job id) of the datasets saved queries made from this version."""
        used: list[Document] = [{"provenance.inputs.version_id": version_id}]
        if version_id == dataset_id:  # saved before versions were recorded: named the dataset only
            used.append({"provenance.inputs": {"$elemMatch": {"dataset_id": dataset_id, "version_id": None}}})
        cursor = self._datasets.find({"$or": used}, {"job_id": 1}).limit(500)
        return [(str(d["_id"]), str(d["job_id"])) async for d in cursor]

    async def set_published(self, version_id: str, published: Document | None) -> None:
        change = {"$set": {"published": published}} if published else {"$unset": {"published": ""}}
        await self._datasets.update_one({"_id": ObjectId(version_id)}, change)

    async def set_key_columns(self, dataset_id: str, keys: list[str]) -> None:
        root = ObjectId(dataset_id)
        await self._datasets.update_many({"$or": [{"_id": root}, {"root_id": root}]}, {"$set": {"key_columns": keys}})

    async def set_summary(self, dataset_id: str, parquet_sha256: str, key: str, sorted_columns: list[str]) -> bool:
        """A summary made later for a dataset stored without one (False: the dataset is gone)."""
        same: Document = {"_id": ObjectId(dataset_id)}
        if parquet_sha256:  # datasets from before hashes were kept have none
            same["parquet_sha256"] = parquet_sha256
        result = await self._datasets.update_one(same, {"$set": {"summary_key": key, "sorted_columns": sorted_columns}})
        return result.matched_count == 1

    async def write_output(
        self, dataset_id: str, made: NewDataset, attempt: Attempt, *, version_of: str | None = None, version: int = 1
    ) -> bool:
        """A dataset an ingestion attempt made (False: a newer attempt wrote it already); with
        version_of, version `version` of that dataset (settle_latest then makes it the latest)."""
        fields = attrs.asdict(made, recurse=False)
        fields["version"] = version
        if version_of is not None:
            root = ObjectId(version_of)
            fields["root_id"], fields["latest"] = root, False
            current = await self._datasets.find_one(
                {"$or": [{"_id": root}, {"root_id": root}], **LATEST}, {"key_columns": 1}
            )  # a dataset's key columns go on with its versions
            fields["key_columns"] = (current or {}).get("key_columns") or []
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
        query: dict[str, Any] = {"project_id": ObjectId(project_id), **LATEST}
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
            {"project_id": {"$in": [ObjectId(p) for p in project_ids]}, **LATEST},
            dict.fromkeys([*fields, "root_id", "version", *(["schema"] if with_schema else [])], 1),
        )
        return [
            from_document(DatasetEntry, {
                **d, "_id": _root(d), "schema": d.get("schema") or [], "row_count": d.get("row_count", 0),
                "version": d.get("version", 1), "version_id": d["_id"],
            })
            async for d in cursor
        ]  # fmt: skip

    async def files(self, dataset_ids: list[str]) -> list[DatasetFile]:
        """Where these datasets' latest versions are."""
        ids = [ObjectId(i) for i in dataset_ids]
        cursor = self._datasets.find(
            {"$or": [{"_id": {"$in": ids}}, {"root_id": {"$in": ids}}], **LATEST},
            {"project_id": 1, "parquet_key": 1, "parquet_sha256": 1, "root_id": 1, "version": 1},
        )
        return [
            DatasetFile(str(_root(d)), str(d["project_id"]), d["parquet_key"], d.get("parquet_sha256", ""),
                        d.get("version", 1), str(d["_id"]))
            async for d in cursor
        ]  # fmt: skip

    async def uses_key(self, parquet_key: str) -> bool:
        return await self._datasets.count_documents({"parquet_key": parquet_key}, limit=1) > 0

    async def made_by(self, job_id: str) -> list[StoredDataset]:
        """The dataset versions a job made, read at once."""
        return [await self._stored(d) for d in await self._datasets.find({"job_id": ObjectId(job_id)}).to_list()]

    async def existing(self, dataset_ids: list[str]) -> set[str]:
        """Of these dataset ids, the datasets that still have a version."""
        ids = [ObjectId(i) for i in dict.fromkeys(dataset_ids)]
        if not ids:
            return set()
        query = {"$or": [{"_id": {"$in": ids}}, {"root_id": {"$in": ids}}]}
        return {str(_root(d)) for d in await self._datasets.find(query, {"_id": 1, "root_id": 1}).to_list()}

    async def ids_by_job(self, job_id: str) -> list[str]:
        return [str(d["_id"]) for d in await self._datasets.find({"job_id": ObjectId(job_id)}, {"_id": 1}).to_list()]

    async def delete(self, version_id: str) -> tuple[str, list[str]] | None:
        """Remove one stored version; its dataset's id and the keys of its objects (None: it was not there)."""
        doc = await self._datasets.find_one_and_delete(
            {"_id": ObjectId(version_id)}, {"parquet_key": 1, "summary_key": 1, "root_id": 1}
        )
        await self._details.delete_many({"dataset_id": ObjectId(version_id)})
        if doc is None:
            return None
        return str(_root(doc)), [k for k in (doc["parquet_key"], doc.get("summary_key")) if k]

    async def delete_project(self, project_id: str) -> list[str]:
        keys = [
            key
            async for d in self._datasets.find({"project_id": ObjectId(project_id)}, {"parquet_key": 1, "summary_key": 1})
            for key in (d["parquet_key"], d.get("summary_key"))
            if key
        ]
        ids = [d["_id"] async for d in self._datasets.find({"project_id": ObjectId(project_id)}, {"_id": 1})]
        await self._details.delete_many({"dataset_id": {"$in": ids}})
        await self._counters.delete_many({"_id": {"$in": ids}})
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

    async def delete(self, ingestion_id: str) -> None:
        await self._ingestions.delete_one({"_id": ObjectId(ingestion_id)})

    async def with_file(self, sha256: str, project_ids: set[str] | None) -> list[str]:
        """The ingestions of these bytes (in these projects; None: any), newest first."""
        query: Document = {"file.sha256": sha256}
        if project_ids is not None:
            query["project_id"] = {"$in": [ObjectId(p) for p in project_ids]}
        cursor = self._ingestions.find(query, {"_id": 1}).sort("created_at", -1).limit(100)
        return [str(d["_id"]) async for d in cursor]

    async def sha_in_use(self, sha256: str) -> bool:
        return await self._ingestions.count_documents({"file.sha256": sha256}, limit=1) > 0

    async def delete_project(self, project_id: str) -> list[str]:
        shas = await self._ingestions.distinct("file.sha256", {"project_id": ObjectId(project_id)})
        await self._ingestions.delete_many({"project_id": ObjectId(project_id)})
        return [str(s) for s in shas]


def _ingestion(doc: Document) -> Ingestion:
    """As stored, before its job's live status is folded in (models.with_job)."""
    return from_document(Ingestion, {**doc, "status": "stored"})
