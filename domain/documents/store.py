"""The documents and document_versions collections."""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import PyMongoError

from domain.core.clock import utcnow
from domain.core.errors import Conflict
from domain.documents.models import Document as DocumentModel
from domain.documents.models import DocumentVersion
from domain.infra.bson_codec import from_document
from domain.infra.mongo import Database, Document, backup_rule, index, insert_once, new_id, object_id
from domain.infra.pagination import find_page

index("documents", ("project_id", 1), ("created_at", -1), ("_id", -1), name="project_newest")
index("document_versions", ("document_id", 1), ("version", 1), unique=True, name="document_version")
index("document_versions", ("project_id", 1), name="project")
index("document_versions", ("created_at", 1), name="made")
index("documents", ("dataset_ids", 1), name="cited")
backup_rule("documents", rank=3)
backup_rule("document_versions", references=lambda d: (d.get("object_key"),))
VERSION_TRIES = 20


CITING_LIMIT = 500  # lineage shows at most this many citing documents per dataset


class DocumentStore:
    def __init__(self, db: Database) -> None:
        self._documents = db["documents"]
        self._versions = db["document_versions"]

    def new_id(self) -> str:
        return new_id()

    async def insert(
        self,
        *,
        document_id: str,
        project_id: str,
        name: str,
        content_type: str,
        size: int,
        sha256: str,
        object_key: str,
        created_by: str,
        dataset_ids: list[str] | None = None,
    ) -> DocumentModel:
        now = utcnow()
        doc: Document = {
            "_id": ObjectId(document_id),
            "project_id": ObjectId(project_id),
            "name": name,
            "name_lower": name.lower(),
            "content_type": content_type,
            "size": size,
            "sha256": sha256,
            "version": 1,
            "dataset_ids": [ObjectId(i) for i in dataset_ids or []],
            "object_key": object_key,  # the current version's: marks whose update made it current
            "created_by": ObjectId(created_by),
            "created_at": now,
            "updated_at": now,
        }
        await self._insert_version(doc, object_key=object_key, version=1, created_by=created_by, at=now)
        try:
            await insert_once(self._documents, doc)
        except BaseException:
            # no document came of it: its version row goes too (the sweep takes it if this fails)
            with contextlib.suppress(PyMongoError):
                await self._versions.delete_one({"document_id": doc["_id"]})
            raise
        return from_document(DocumentModel, doc)

    async def _insert_version(
        self, doc: Document, *, object_key: str, version: int, created_by: str, at: Any
    ) -> None:
        await insert_once(
            self._versions,
            {
                "document_id": doc["_id"],
                "project_id": doc["project_id"],
                "version": version,
                "name": doc["name"],
                "content_type": doc["content_type"],
                "size": doc["size"],
                "sha256": doc["sha256"],
                "dataset_ids": doc.get("dataset_ids", []),
                "object_key": object_key,
                "created_by": ObjectId(created_by),
                "created_at": at,
            },
        )

    async def add_version(
        self,
        *,
        document_id: str,
        name: str,
        content_type: str,
        size: int,
        sha256: str,
        object_key: str,
        created_by: str,
        dataset_ids: list[str] | None = None,
    ) -> DocumentModel | None:
        """Number the new version and make it current; None if the document is gone.

        The number is taken with an update guarded by the number read (not an $inc, which a retried
        write would apply twice), marked with this version's object key: a retry that finds its own
        mark is the success it was; someone else's version in between means read and try again."""
        now = utcnow()
        for _ in range(VERSION_TRIES):
            current = await self._documents.find_one(
                {"_id": ObjectId(document_id)}, {"version": 1, "object_key": 1}
            )
            if current is None:
                return None
            if current.get("object_key") == object_key:  # our own update landed, its answer was lost
                doc = await self._documents.find_one({"_id": ObjectId(document_id)})
                break
            doc = await self._documents.find_one_and_update(
                {"_id": ObjectId(document_id), "version": current["version"]},
                {"$set": {"version": current["version"] + 1, "object_key": object_key, "name": name,
                          "name_lower": name.lower(), "content_type": content_type, "size": size, "sha256": sha256,
                          "updated_at": now,
                          **({} if dataset_ids is None else {"dataset_ids": [ObjectId(i) for i in dataset_ids]})}},
                return_document=ReturnDocument.AFTER,
            )  # fmt: skip
            if doc is not None:
                break
        else:
            raise Conflict("the document changed too often while saving; try again", code="busy")
        if doc is None:
            return None
        await self._insert_version(
            doc, object_key=object_key, version=doc["version"], created_by=created_by, at=now
        )
        return from_document(DocumentModel, doc)

    async def citing(self, dataset_id: str) -> list[DocumentModel]:
        """The documents whose current version cites a dataset."""
        cursor = self._documents.find({"dataset_ids": ObjectId(dataset_id)}).limit(CITING_LIMIT)
        return [from_document(DocumentModel, d) async for d in cursor]

    async def get(self, document_id: str) -> DocumentModel | None:
        doc = await self._documents.find_one({"_id": object_id(document_id, "document")})
        return from_document(DocumentModel, doc) if doc else None

    async def page(
        self, project_id: str, *, q: str | None, limit: int, cursor: str | None
    ) -> tuple[list[DocumentModel], str | None]:
        query: dict[str, Any] = {"project_id": ObjectId(project_id)}
        if q:
            query["name_lower"] = {"$regex": re.escape(q.strip().lower())}
        docs, next_cursor = await find_page(
            self._documents, query, [("created_at", -1), ("_id", -1)], limit, cursor
        )
        return [from_document(DocumentModel, d) for d in docs], next_cursor

    async def versions(self, document_id: str) -> list[DocumentVersion]:
        cursor = self._versions.find({"document_id": ObjectId(document_id)}).sort("version", -1)
        return [from_document(DocumentVersion, d) async for d in cursor]

    async def version(self, document_id: str, version: int) -> tuple[DocumentVersion, str] | None:
        doc = await self._versions.find_one({"document_id": ObjectId(document_id), "version": version})
        return (from_document(DocumentVersion, doc), doc["object_key"]) if doc else None

    async def delete(self, document_id: str) -> list[str]:
        """Remove the document and its versions; the object keys to delete are returned."""
        oid = ObjectId(document_id)
        keys = [d["object_key"] async for d in self._versions.find({"document_id": oid}, {"object_key": 1})]
        await self._documents.delete_one({"_id": oid})
        await self._versions.delete_many({"document_id": oid})
        return keys

    async def orphan_versions(self, since: datetime, before: datetime) -> list[tuple[ObjectId, str]]:
        """(row id, object key) of version rows made between `since` and `before` whose document
        does not exist (a request that failed between its two writes and could not clean up)."""
        made = {"created_at": {"$gte": since, "$lt": before}}
        rows = await self._versions.find(made, {"document_id": 1, "object_key": 1}).to_list()
        ids = list({row["document_id"] for row in rows})
        alive = {doc["_id"] async for doc in self._documents.find({"_id": {"$in": ids}}, {"_id": 1})}
        return [(row["_id"], row["object_key"]) for row in rows if row["document_id"] not in alive]

    async def delete_versions(self, row_ids: list[ObjectId]) -> None:
        await self._versions.delete_many({"_id": {"$in": row_ids}})

    async def delete_project(self, project_id: str) -> list[str]:
        oid = ObjectId(project_id)
        keys = [d["object_key"] async for d in self._versions.find({"project_id": oid}, {"object_key": 1})]
        await self._documents.delete_many({"project_id": oid})
        await self._versions.delete_many({"project_id": oid})
        return keys
