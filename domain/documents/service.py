"""Documents service: files kept in S3 with every version, streamed in and out, never held in memory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta

from domain.accounts.models import User
from domain.activity.models import Signal
from domain.activity.service import ActivityLog
from domain.core.clock import utcnow
from domain.core.content import Content
from domain.core.errors import NotFound, TooLarge
from domain.core.pagination import Page, clamp_limit
from domain.documents.models import (
    Document,
    DocumentVersion,
    clean_content_type,
    clean_file_name,
)
from domain.documents.store import DocumentStore
from domain.infra.objects import ObjectReader, ObjectStore
from domain.projects.audit import AuditLog
from domain.projects.models import Need, TargetType, check_owner_or_lead, diff
from domain.projects.service import ProjectGate
from domain.quotas.service import Quotas
from domain.uploads.models import Upload
from domain.uploads.service import UploadsService

Body = AsyncIterator[bytes] | Upload  # a request body's bytes, or a finished resumable upload
ORPHAN_AGE = timedelta(hours=1)
ORPHAN_LOOKBACK = timedelta(days=7)
log = logging.getLogger("labhub.documents")


class DocumentsService:
    def __init__(
        self,
        gate: ProjectGate,
        store: DocumentStore,
        objects: ObjectStore,
        audit: AuditLog,
        activity: ActivityLog,
        resumable: UploadsService,
        quotas: Quotas,
        *,
        max_bytes: int,
        part_size: int,
    ) -> None:
        self._gate = gate
        self._quotas = quotas
        self._resumable = resumable
        self._store = store
        self._objects = objects
        self._audit = audit
        self._activity = activity
        self._max_bytes = max_bytes
        self._part_size = part_size

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    async def _put(
        self, actor: User, project_id: str, document_id: str, body: Body, content_type: str
    ) -> tuple[str, int, str]:
        """Store a version's bytes within the upload limit and the quotas (a finished resumable
        upload's bytes already count as the person's: only the project's room is asked then)."""
        key = f"documents/{document_id}/{self._store.new_id()}"
        if isinstance(body, Upload):
            await self._quotas.check_storage(None, project_id, body.length)
            stored = await self._resumable.place(body, key, content_type)
        else:
            room = await self._quotas.check_storage(actor.id, project_id, 0)
            limit = self._max_bytes if room.bytes is None else min(self._max_bytes, room.bytes)
            try:
                stored = await self._objects.put_stream(
                    key, body, max_bytes=limit, part_size=self._part_size, content_type=content_type
                )
            except TooLarge:
                if limit < self._max_bytes:  # the quota, not the upload limit, was passed
                    raise self._quotas.too_large(room) from None
                raise
        return key, stored.size, stored.sha256

    @asynccontextmanager
    async def _claimed(self, actor: User, upload_id: str) -> AsyncIterator[Upload]:
        """A finished resumable upload taken for one document version (UploadsService.using)."""
        claimed = await self._resumable.claim(actor, [upload_id], max_bytes=self._max_bytes, use="documents")
        async with self._resumable.using(claimed) as [upload]:
            yield upload

    async def upload_from(
        self, actor: User, project_id: str, *, upload_id: str, name: str | None, dataset_ids: list[str] | None = None
    ) -> Document:
        await self._gate.require(actor, project_id, Need.WRITE)  # outsiders learn nothing of the upload
        async with self._claimed(actor, upload_id) as upload:
            return await self.upload(actor, project_id, name=name or upload.filename,
                                     content_type=upload.content_type, chunks=upload, dataset_ids=dataset_ids)  # fmt: skip

    async def add_version_from(
        self, actor: User, document_id: str, *, upload_id: str, name: str | None, dataset_ids: list[str] | None = None
    ) -> Document:
        await self._changeable(actor, document_id)  # refused before the upload is taken
        async with self._claimed(actor, upload_id) as upload:
            return await self.add_version(actor, document_id, name=name or upload.filename,
                                          content_type=upload.content_type, chunks=upload,
                                          dataset_ids=dataset_ids)  # fmt: skip

    async def upload(
        self,
        actor: User,
        project_id: str,
        *,
        name: str | None,
        content_type: str | None,
        chunks: Body,
        dataset_ids: list[str] | None = None,
    ) -> Document:
        """dataset_ids: the datasets the document cites (docs/architecture.md, "Lineage")."""
        project = await self._gate.require(actor, project_id, Need.WRITE)
        clean_name = clean_file_name(name)
        media_type = clean_content_type(content_type, clean_name)
        document_id = self._store.new_id()
        key, size, sha256 = await self._put(actor, project.id, document_id, chunks, media_type)
        try:
            document = await self._store.insert(
                document_id=document_id, project_id=project.id, name=clean_name, content_type=media_type,
                size=size, sha256=sha256, object_key=key, created_by=actor.id, dataset_ids=dataset_ids,
            )  # fmt: skip
        except BaseException:
            await self._objects.delete([key])
            raise
        await self._audit.record(
            project_id=project.id, actor_id=actor.id, action="document.uploaded", target_type=TargetType.DOCUMENT,
            target_id=document.id, changes=diff({}, {"name": clean_name, "size": size, "version": 1}),
            at=document.created_at,
        )  # fmt: skip
        self._quotas.stored(actor.id, project.id)
        await self._activity.count(project.id, actor.id, Signal.UPLOAD, document.created_at)
        return document

    async def add_version(
        self,
        actor: User,
        document_id: str,
        *,
        name: str | None,
        content_type: str | None,
        chunks: Body,
        dataset_ids: list[str] | None = None,
    ) -> Document:
        """dataset_ids: the datasets the new version cites (None: those the current one cites)."""
        current = await self._changeable(actor, document_id)
        clean_name = clean_file_name(name) if name else current.name
        media_type = clean_content_type(content_type, clean_name)
        key, size, sha256 = await self._put(actor, current.project_id, current.id, chunks, media_type)
        try:
            document = await self._store.add_version(
                document_id=current.id, name=clean_name, content_type=media_type, size=size, sha256=sha256,
                object_key=key, created_by=actor.id, dataset_ids=dataset_ids,
            )  # fmt: skip
        except BaseException:
            await self._objects.delete([key])
            raise
        if document is None:  # deleted while the new version was uploading
            await self._objects.delete([key])
            raise NotFound("document not found")
        await self._audit.record(
            project_id=document.project_id, actor_id=actor.id, action="document.version_added",
            target_type=TargetType.DOCUMENT, target_id=document.id,
            changes=diff({"version": current.version, "name": current.name, "size": current.size},
                         {"version": document.version, "name": document.name, "size": document.size}),
            at=document.updated_at,
        )  # fmt: skip
        self._quotas.stored(actor.id, document.project_id)
        await self._activity.count(document.project_id, actor.id, Signal.UPLOAD, document.updated_at)
        return document

    async def _changeable(self, actor: User, document_id: str) -> Document:
        """A document the actor may replace or delete: its uploader's, or any for leads and heads
        (a member may add documents, not overwrite a colleague's)."""
        document = await self.get(actor, document_id, Need.WRITE)
        project = await self._gate.require(actor, document.project_id, Need.WRITE, what="document")
        check_owner_or_lead(actor, project, document.created_by, "the uploader")
        return document

    async def get(self, actor: User, document_id: str, need: Need = Need.READ) -> Document:
        document = await self._store.get(document_id)
        if document is None:
            raise NotFound("document not found")
        await self._gate.require(actor, document.project_id, need, what="document")
        return document

    async def list_documents(
        self, actor: User, project_id: str, *, q: str | None, limit: int | None, cursor: str | None
    ) -> Page[Document]:
        project = await self._gate.require(actor, project_id, Need.READ)
        documents, next_cursor = await self._store.page(
            project.id, q=q, limit=clamp_limit(limit), cursor=cursor
        )
        return Page(documents, next_cursor)

    async def versions(self, actor: User, document_id: str) -> Page[DocumentVersion]:
        document = await self.get(actor, document_id)
        return Page(await self._store.versions(document.id))

    async def content(self, actor: User, document_id: str, version: int | None) -> Content:
        document = await self.get(actor, document_id)
        found = await self._store.version(document.id, version or document.version)
        if found is None:
            raise NotFound(f"version {version} of this document does not exist", code="version_not_found")
        stored, key = found
        return Content(key, stored.name, stored.content_type, stored.size, stored.sha256)

    def open(
        self, content: Content, byte_range: tuple[int, int] | None
    ) -> AbstractAsyncContextManager[ObjectReader]:
        return self._objects.open_read(content.key, byte_range)

    async def delete(self, actor: User, document_id: str) -> None:
        document = await self._changeable(actor, document_id)
        keys = await self._store.delete(document.id)
        await self._objects.delete(keys)
        self._quotas.stored(actor.id, document.project_id)
        await self._audit.record(
            project_id=document.project_id, actor_id=actor.id, action="document.deleted",
            target_type=TargetType.DOCUMENT, target_id=document.id, changes=diff({"name": document.name}, {}),
            at=utcnow(),
        )  # fmt: skip

    async def sweep_orphans(self) -> int:
        """Version rows (and their bytes) that a failed upload left without a document, made in the
        last ORPHAN_LOOKBACK and at least ORPHAN_AGE ago (an upload still under way is younger)."""
        now = utcnow()
        orphans = await self._store.orphan_versions(now - ORPHAN_LOOKBACK, now - ORPHAN_AGE)
        if orphans:
            await self._objects.delete([key for _, key in orphans])
            await self._store.delete_versions([row for row, _ in orphans])
            log.info("orphaned document versions removed", extra={"count": len(orphans)})
        return len(orphans)

    async def find(self, document_id: str) -> Document | None:
        """For an area that checks its caller itself (lineage): the document."""
        return await self._store.get(document_id)

    async def citing(self, dataset_id: str) -> list[Document]:
        """For an area that checks its caller itself (lineage): documents citing a dataset."""
        return await self._store.citing(dataset_id)

    async def purge_project(self, project_id: str) -> None:
        await self._objects.delete(await self._store.delete_project(project_id))
