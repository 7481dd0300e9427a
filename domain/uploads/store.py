"""Resumable uploads in MongoDB: the durable offset and the list of parts (each its own S3 object).

A part is committed by one update guarded by the offset it starts at, so of two requests writing at
the same offset only one lands; the other's objects are deleted by its writer.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import attrs
from bson import ObjectId
from pymongo import ReturnDocument

from domain.infra.mongo import Database, Document, backup_rule, index, insert_once, object_id
from domain.uploads.models import Upload, UploadStatus

index("uploads", ("expires_at", 1), name="expires_at")
index("uploads", ("owner_id", 1), ("created_at", -1), name="owner_newest")
backup_rule("uploads", references=lambda d: (p.get("key") for p in d.get("parts") or [] if isinstance(p, dict)))


@attrs.frozen
class Part:
    key: str
    size: int


def _upload(doc: Document) -> Upload:
    return Upload(
        id=str(doc["_id"]), owner_id=str(doc["owner_id"]), length=doc["length"], offset=doc["offset"],
        metadata=dict(doc.get("metadata") or {}), status=UploadStatus(doc["status"]), created_at=doc["created_at"],
        expires_at=doc["expires_at"], sha256=doc.get("sha256"),
    )  # fmt: skip


class UploadStore:
    def __init__(self, db: Database) -> None:
        self._uploads = db["uploads"]

    async def insert(
        self, *, owner_id: str, length: int, metadata: dict[str, str], now: datetime, expires_at: datetime
    ) -> Upload:
        doc: Document = {
            "owner_id": ObjectId(owner_id), "length": length, "offset": 0, "parts": [], "metadata": metadata,
            # an empty file is whole the moment it is created
            "status": (UploadStatus.RECEIVING if length else UploadStatus.COMPLETE).value, "created_at": now,
            "updated_at": now, "expires_at": expires_at, "sha256": None if length else hashlib.sha256().hexdigest(),
        }  # fmt: skip
        await insert_once(self._uploads, doc)
        return _upload(doc)

    async def get(self, upload_id: str) -> Upload | None:
        doc = await self._uploads.find_one({"_id": object_id(upload_id, "upload")}, {"parts": 0})
        return _upload(doc) if doc else None

    async def parts(self, upload_id: str) -> list[Part]:
        doc = await self._uploads.find_one({"_id": ObjectId(upload_id)}, {"parts": 1})
        return [Part(p["key"], p["size"]) for p in (doc or {}).get("parts", [])]

    async def commit(
        self, upload: Upload, parts: list[Part], *, now: datetime, expires_at: datetime, sha256: str | None
    ) -> Upload | None:
        """Append parts written from upload.offset on; None if another request moved the offset first."""
        added = sum(p.size for p in parts)
        changes: dict[str, Any] = {
            "offset": upload.offset + added,
            "updated_at": now,
            "expires_at": expires_at,
        }
        if upload.offset + added == upload.length:
            changes |= {"status": UploadStatus.COMPLETE.value, "sha256": sha256}
        doc = await self._uploads.find_one_and_update(
            {"_id": ObjectId(upload.id), "offset": upload.offset, "status": UploadStatus.RECEIVING.value},
            {"$set": changes, "$push": {"parts": {"$each": [attrs.asdict(p) for p in parts]}}},
            projection={"parts": 0}, return_document=ReturnDocument.AFTER,
        )  # fmt: skip
        return _upload(doc) if doc else None

    async def claim(
        self, upload_id: str, *, now: datetime, until: datetime, expires_at: datetime
    ) -> Upload | None:
        """Complete -> in use (or an in-use claim whose holder died, past its lease); None if taken.
        expires_at: not before the lease ends, so that the sweep leaves a use under way alone."""
        doc = await self._uploads.find_one_and_update(
            {"_id": ObjectId(upload_id), "$or": [
                {"status": UploadStatus.COMPLETE.value},
                {"status": UploadStatus.IN_USE.value, "claimed_until": {"$lt": now}},
            ]},
            {"$set": {"status": UploadStatus.IN_USE.value, "claimed_until": until, "expires_at": expires_at}},
            projection={"parts": 0}, return_document=ReturnDocument.AFTER,
        )  # fmt: skip
        return _upload(doc) if doc else None

    async def unclaim(self, upload_id: str, *, expires_at: datetime) -> None:
        """In use -> complete again, with a fresh expiry to be used again."""
        await self._uploads.update_one(
            {"_id": ObjectId(upload_id), "status": UploadStatus.IN_USE.value},
            {"$set": {"status": UploadStatus.COMPLETE.value, "expires_at": expires_at},
             "$unset": {"claimed_until": ""}},
        )  # fmt: skip

    async def owner_of(self, upload_id: str) -> str | None:
        doc = await self._uploads.find_one({"_id": ObjectId(upload_id)}, {"owner_id": 1})
        return str(doc["owner_id"]) if doc else None

    async def open_count(self, owner_id: str, now: datetime) -> int:
        return await self._uploads.count_documents(
            {
                "owner_id": ObjectId(owner_id),
                "status": UploadStatus.RECEIVING.value,
                "expires_at": {"$gt": now},
            }
        )

    async def delete(self, upload_id: str) -> bool:
        return (await self._uploads.delete_one({"_id": ObjectId(upload_id)})).deleted_count == 1

    async def expired(self, now: datetime, limit: int = 100) -> list[str]:
        cursor = self._uploads.find({"expires_at": {"$lt": now}}, {"_id": 1}).limit(limit)
        return [str(doc["_id"]) async for doc in cursor]
