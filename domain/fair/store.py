"""Publications (one per published dataset version, by slug) and the record of exports made, which
lineage shows (docs/architecture.md, "Publishing and archiving")."""

from __future__ import annotations

from typing import Any

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from domain.core.clock import utcnow
from domain.fair.models import Publication
from domain.infra.bson_codec import from_document
from domain.infra.mongo import Database, Document, index, insert_once

index("publications", ("version_id", 1), unique=True, name="version")
index("publications", ("dataset_id", 1), name="dataset")
index("publications", ("project_id", 1), ("published_at", -1), name="project_newest")
index("exports", ("version_ids", 1), name="versions")
index("exports", ("project_id", 1), ("created_at", -1), name="project_newest")


def _publication(doc: Document) -> Publication:
    return from_document(Publication, {**doc, "slug": doc["_id"], "url": ""})


class FairStore:
    def __init__(self, db: Database) -> None:
        self._publications = db["publications"]
        self._exports = db["exports"]

    async def publish(self, fields: dict[str, Any]) -> Publication | None:
        """None: the slug is taken (or the version is published already under another)."""
        doc = {
            **fields, "_id": fields["slug"], "dataset_id": ObjectId(fields["dataset_id"]),
            "version_id": ObjectId(fields["version_id"]), "project_id": ObjectId(fields["project_id"]),
            "published_by": ObjectId(fields["published_by"]),
        }  # fmt: skip
        doc.pop("slug")
        try:
            await insert_once(self._publications, doc)
        except DuplicateKeyError:
            return None
        return _publication(doc)

    async def by_slug(self, slug: str) -> Publication | None:
        doc = await self._publications.find_one({"_id": slug})
        return _publication(doc) if doc else None

    async def of_version(self, version_id: str) -> Publication | None:
        doc = await self._publications.find_one({"version_id": ObjectId(version_id)})
        return _publication(doc) if doc else None

    async def of_dataset(self, dataset_id: str) -> list[Publication]:
        cursor = self._publications.find({"dataset_id": ObjectId(dataset_id)}).sort("version", 1)
        return [_publication(d) async for d in cursor]

    async def of_project(self, project_id: str) -> list[Publication]:
        cursor = self._publications.find({"project_id": ObjectId(project_id)}).sort("published_at", -1)
        return [_publication(d) async for d in cursor]

    async def unpublish(self, slug: str) -> None:
        await self._publications.delete_one({"_id": slug})

    async def record_export(self, fields: dict[str, Any]) -> str:
        doc = {
            **fields, "project_id": ObjectId(fields["project_id"]), "created_by": ObjectId(fields["created_by"]),
            "created_at": utcnow(),
        }  # fmt: skip
        await insert_once(self._exports, doc)
        return str(doc["_id"])

    async def export(self, export_id: str) -> Document | None:
        return await self._exports.find_one({"_id": ObjectId(export_id)})

    async def exports_of_version(self, version_id: str) -> list[Document]:
        return await self._exports.find({"version_ids": version_id}).sort("created_at", -1).to_list(200)

    async def delete_project(self, project_id: str) -> list[str]:
        """Every publication of the project goes (its pages with it), and the export records; the slugs."""
        slugs = [d["_id"] async for d in self._publications.find({"project_id": ObjectId(project_id)}, {"_id": 1})]
        await self._publications.delete_many({"project_id": ObjectId(project_id)})
        await self._exports.delete_many({"project_id": ObjectId(project_id)})
        return slugs
