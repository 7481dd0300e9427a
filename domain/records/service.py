"""Records service: create, list with filters and cursors, export, change and delete records."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs

from domain.accounts.models import User
from domain.activity.models import Signal
from domain.activity.service import ActivityLog
from domain.core.clock import utcnow
from domain.core.errors import NotFound, field_error
from domain.core.pagination import Page
from domain.projects.audit import AuditLog
from domain.projects.models import Need, Project, TargetType, check_owner_or_lead, diff
from domain.projects.service import ProjectGate
from domain.records.models import Record, RecordChanges, RecordInput, RecordQuery, checked_fields
from domain.records.store import RecordStore


class RecordsService:
    def __init__(self, gate: ProjectGate, store: RecordStore, audit: AuditLog, activity: ActivityLog) -> None:
        self._gate = gate
        self._store = store
        self._audit = audit
        self._activity = activity

    async def create(self, actor: User, project_id: str, record: RecordInput) -> Record:
        project = await self._gate.require(actor, project_id, Need.WRITE)
        fields = checked_fields(attrs.asdict(record))
        created = await self._store.insert(project.id, actor.id, fields)
        await self._audit.record(
            project_id=project.id, actor_id=actor.id, action="record.created", target_type=TargetType.RECORD,
            target_id=created.id, changes=diff({}, fields), at=created.created_at,
        )  # fmt: skip
        await self._activity.count(project.id, actor.id, Signal.RECORD, created.created_at)
        return created

    async def list_records(self, actor: User, project_id: str, query: RecordQuery) -> Page[Record]:
        project = await self._gate.require(actor, project_id, Need.READ)
        records, next_cursor = await self._store.page(project.id, query)
        return Page(records, next_cursor)

    async def export(
        self, actor: User, project_id: str, query: RecordQuery
    ) -> tuple[list[str], AsyncIterator[Record]]:
        """The data keys (CSV columns) and every matching record, in order, streamed."""
        project = await self._gate.require(actor, project_id, Need.READ)
        return await self._store.data_keys(project.id, query), self._store.stream(project.id, query)

    async def get(self, actor: User, record_id: str, need: Need = Need.READ) -> tuple[Record, Project]:
        record = await self._store.get(record_id)
        if record is None:
            raise NotFound("record not found")
        project = await self._gate.require(actor, record.project_id, need, what="record")
        return record, project

    async def _editable(self, actor: User, record_id: str) -> Record:
        record, project = await self.get(actor, record_id, Need.WRITE)
        check_owner_or_lead(actor, project, record.created_by, "the record's author")
        return record

    async def update(self, actor: User, record_id: str, changes: RecordChanges) -> Record:
        record = await self._editable(actor, record_id)
        fields = checked_fields(attrs.asdict(changes))
        if not fields:
            raise field_error("$", "nothing to change")
        updated = await self._store.update(record.id, fields)
        if updated is None:
            raise NotFound("record not found")
        await self._audit.record(
            project_id=record.project_id, actor_id=actor.id, action="record.updated",
            target_type=TargetType.RECORD, target_id=record.id,
            changes=diff({k: getattr(record, k) for k in fields}, fields), at=updated.updated_at,
        )  # fmt: skip
        return updated

    async def delete(self, actor: User, record_id: str) -> None:
        record = await self._editable(actor, record_id)
        if await self._store.delete(record.id):
            await self._audit.record(
                project_id=record.project_id, actor_id=actor.id, action="record.deleted",
                target_type=TargetType.RECORD, target_id=record.id, changes=diff({"title": record.title}, {}),
                at=utcnow(),
            )  # fmt: skip

    async def find(self, record_id: str) -> Record | None:
        """For an area that checks its caller itself (lineage): the record."""
        return await self._store.get(record_id)

    async def citing(self, dataset_id: str) -> list[Record]:
        """For an area that checks its caller itself (lineage): the records citing a dataset."""
        return await self._store.citing(dataset_id)

    async def purge_project(self, project_id: str) -> None:
        await self._store.delete_project(project_id)
