"""The audit collection: append-only events per project."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from domain.infra.bson_codec import from_document
from domain.infra.mongo import Database, index, insert_once
from domain.infra.pagination import find_page
from domain.projects.models import AuditEvent

index("audit", ("project_id", 1), ("at", -1), ("_id", -1), name="project_newest")


class AuditStore:
    def __init__(self, db: Database) -> None:
        self._audit = db["audit"]

    async def append(self, event: dict[str, Any]) -> None:
        await insert_once(self._audit,
            {
                **event,
                "project_id": ObjectId(event["project_id"]),
                "actor_id": ObjectId(event["actor_id"]),
            }
        )

    async def page(
        self, project_id: str, limit: int, cursor: str | None
    ) -> tuple[list[AuditEvent], str | None]:
        docs, next_cursor = await find_page(
            self._audit, {"project_id": ObjectId(project_id)}, [("at", -1), ("_id", -1)], limit, cursor
        )
        return [from_document(AuditEvent, d) for d in docs], next_cursor

    async def delete_project(self, project_id: str) -> None:
        await self._audit.delete_many({"project_id": ObjectId(project_id)})
