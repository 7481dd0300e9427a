"""The projects collection, with members embedded and changed under an optimistic revision."""

from __future__ import annotations

import re
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument

from domain.core.clock import utcnow
from domain.infra.bson_codec import from_document
from domain.infra.mongo import Database, Document, backup_rule, index, insert_once, object_id
from domain.infra.pagination import find_page
from domain.projects.models import Member, Project, ProjectName, ProjectStatus

index("projects", ("members.user_id", 1), name="member")
index("projects", ("name_lower", 1), ("_id", 1), name="name")
backup_rule("projects", rank=1)


def _member_doc(member: Member) -> Document:
    return {"user_id": ObjectId(member.user_id), "role": member.role.value, "added_at": member.added_at}


class ProjectStore:
    def __init__(self, db: Database) -> None:
        self._projects = db["projects"]

    async def insert(self, *, name: str, description: str, creator: Member) -> Project:
        now = utcnow()
        doc: Document = {
            "name": name,
            "name_lower": name.lower(),
            "description": description,
            "status": ProjectStatus.ACTIVE.value,
            "members": [_member_doc(creator)],
            "created_by": ObjectId(creator.user_id),
            "created_at": now,
            "updated_at": now,
            "rev": 1,
        }
        await insert_once(self._projects, doc)
        return from_document(Project, doc)

    async def get(self, project_id: str) -> Project | None:
        doc = await self._projects.find_one({"_id": object_id(project_id, "project")})
        return from_document(Project, doc) if doc else None

    async def page(
        self,
        *,
        member_id: str | None,
        q: str | None,
        only_ids: frozenset[str] | None = None,
        status: ProjectStatus | None,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[Project], str | None]:
        query: dict[str, Any] = {}
        if member_id is not None:
            query["members.user_id"] = ObjectId(member_id)
        if only_ids is not None:
            query["_id"] = {"$in": [ObjectId(i) for i in only_ids]}
        if status is not None:
            query["status"] = status.value
        if q:
            query["name_lower"] = {"$regex": re.escape(q.strip().lower())}
        docs, next_cursor = await find_page(
            self._projects, query, [("name_lower", 1), ("_id", 1)], limit, cursor
        )
        return [from_document(Project, d) for d in docs], next_cursor

    async def ids_of_member(self, user_id: str) -> list[str]:
        """Every project (active or archived) the user belongs to."""
        cursor = self._projects.find({"members.user_id": ObjectId(user_id)}, {"_id": 1})
        return [str(doc["_id"]) async for doc in cursor]

    async def names(self) -> list[ProjectName]:
        """Every project's id, name and creation time (what SQL table names are made from)."""
        cursor = self._projects.find({}, {"name": 1, "created_at": 1})
        return [ProjectName(str(d["_id"]), d["name"], d["created_at"]) async for d in cursor]

    async def co_member_ids(self, user_id: str) -> set[str]:
        """Everyone who shares a project (active or archived) with the user, the user included."""
        cursor = self._projects.find({"members.user_id": ObjectId(user_id)}, {"members.user_id": 1})
        return {str(m["user_id"]) async for doc in cursor for m in doc.get("members", [])}

    async def update(self, project: Project, fields: dict[str, Any]) -> Project | None:
        """Apply fields if nobody changed the project since it was read; None means retry."""
        changes = dict(fields)
        if "name" in changes:
            changes["name_lower"] = changes["name"].lower()
        if "status" in changes:
            changes["status"] = ProjectStatus(changes["status"]).value
        if "members" in changes:
            changes["members"] = [_member_doc(m) for m in changes["members"]]
        changes["updated_at"] = utcnow()
        doc = await self._projects.find_one_and_update(
            {"_id": ObjectId(project.id), "rev": project.rev},
            {"$set": changes, "$inc": {"rev": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return from_document(Project, doc) if doc else None

    async def delete(self, project_id: str) -> None:
        await self._projects.delete_one({"_id": ObjectId(project_id)})
