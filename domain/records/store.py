"""The records collection: conditions from domain.records.models become MongoDB filters here, and only here."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from domain.core.clock import utcnow
from domain.infra.bson_codec import from_document
from domain.infra.mongo import Database, Document, at_least, at_most, index, insert_once, object_id
from domain.infra.pagination import SortSpec, find_page
from domain.records.models import Condition, Op, Record, RecordQuery

index("records", ("project_id", 1), ("created_at", -1), ("_id", -1), name="project_newest")
index("records", ("project_id", 1), ("kind", 1), name="project_kind")
index("records", ("project_id", 1), ("tags", 1), name="project_tags")
index("records", ("dataset_ids", 1), name="cited")
index("records", ("dataset_id", 1), name="about_dataset")

_STORED_FIELD = {"title": "title_lower"}  # title filters and sorting ignore case
_INCLUSIVE = {Op.GTE: at_least, Op.LTE: at_most}  # created_at/updated_at: see at_least
_OPERATOR = {Op.GTE: "$gte", Op.LTE: "$lte", Op.LT: "$lt", Op.IN: "$in", Op.ALL: "$all"}


def _value(field: str, value: Any) -> Any:
    if field in {"created_by", "dataset_id"}:
        return [ObjectId(v) for v in value]
    return value


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    stored = dict(fields)
    if "title" in stored:
        stored["title_lower"] = stored["title"].lower()
    if stored.get("dataset_id"):
        stored["dataset_id"] = ObjectId(stored["dataset_id"])
    if "dataset_ids" in stored:
        stored["dataset_ids"] = [ObjectId(i) for i in stored["dataset_ids"]]
    return stored


def build_filter(project_id: str, conditions: tuple[Condition, ...]) -> dict[str, Any]:
    query: dict[str, Any] = {"project_id": ObjectId(project_id)}
    for condition in conditions:
        field = _STORED_FIELD.get(condition.field, condition.field)
        if condition.op is Op.CONTAINS:
            clause = {"$regex": re.escape(str(condition.value).strip().lower())}
        elif condition.op in _INCLUSIVE and isinstance(condition.value, datetime):
            clause = _INCLUSIVE[condition.op](condition.value)
        else:
            clause = {_OPERATOR[condition.op]: _value(condition.field, condition.value)}
        existing = query.setdefault(field, {})
        existing.update(clause)
    return query


def sort_spec(query: RecordQuery) -> SortSpec:
    direction = -1 if query.descending else 1
    return [(_STORED_FIELD.get(query.sort_field, query.sort_field), direction), ("_id", direction)]


CITING_LIMIT = 500  # lineage shows at most this many citing records per dataset


class RecordStore:
    def __init__(self, db: Database) -> None:
        self._records = db["records"]

    async def insert(self, project_id: str, created_by: str, fields: dict[str, Any]) -> Record:
        now = utcnow()
        doc: Document = {
            "project_id": ObjectId(project_id),
            "data": {},
            "tags": [],
            "dataset_id": None,
            **_stored(fields),
            "created_by": ObjectId(created_by),
            "created_at": now,
            "updated_at": now,
        }
        await insert_once(self._records, doc)
        return from_document(Record, doc)

    async def get(self, record_id: str) -> Record | None:
        doc = await self._records.find_one({"_id": object_id(record_id, "record")})
        return from_document(Record, doc) if doc else None

    async def update(self, record_id: str, fields: dict[str, Any]) -> Record | None:
        changes = _stored(fields)
        changes["updated_at"] = utcnow()
        doc = await self._records.find_one_and_update(
            {"_id": ObjectId(record_id)}, {"$set": changes}, return_document=ReturnDocument.AFTER
        )
        return from_document(Record, doc) if doc else None

    async def citing(self, dataset_id: str) -> list[Record]:
        """The records that cite a dataset (dataset_ids, or the dataset_id they were made about)."""
        cited = ObjectId(dataset_id)
        cursor = self._records.find({"$or": [{"dataset_ids": cited}, {"dataset_id": cited}]}).limit(CITING_LIMIT)
        return [from_document(Record, d) async for d in cursor]

    async def delete(self, record_id: str) -> bool:
        return (await self._records.delete_one({"_id": ObjectId(record_id)})).deleted_count == 1

    async def page(self, project_id: str, query: RecordQuery) -> tuple[list[Record], str | None]:
        docs, next_cursor = await find_page(
            self._records,
            build_filter(project_id, query.conditions),
            sort_spec(query),
            query.limit,
            query.cursor,
        )
        return [from_document(Record, d) for d in docs], next_cursor

    async def stream(self, project_id: str, query: RecordQuery) -> AsyncIterator[Record]:
        cursor = self._records.find(build_filter(project_id, query.conditions)).sort(list(sort_spec(query)))
        async for doc in cursor.batch_size(500):
            yield from_document(Record, doc)

    async def data_keys(self, project_id: str, query: RecordQuery) -> list[str]:
        """The top-level data keys used by the matching records, in first-seen order."""
        keys: dict[str, None] = {}
        cursor = self._records.find(build_filter(project_id, query.conditions), {"data": 1})
        async for doc in cursor.batch_size(1000):
            keys.update(dict.fromkeys(doc.get("data") or {}))
        return list(keys)

    async def delete_project(self, project_id: str) -> None:
        await self._records.delete_many({"project_id": ObjectId(project_id)})
