"""Resumable uploads: receive bytes in parts that are durable as they arrive, hash them on the way.

Each part is written as its own object (`uploads/{id}/{offset}-{nonce}`), then committed to MongoDB
with one update guarded by the offset it starts at: the offset a HEAD reports only ever counts
bytes that are stored. (An S3 multipart upload would be the obvious tool, but the embedded
`rclone serve s3` keeps unfinished multipart uploads in its own memory, so they die with it.) A
connection that drops loses at most the part being filled. A PATCH with Upload-Checksum is all or
nothing: its parts are committed only when the whole body matches, else deleted (460).

The SHA-256 of the whole file is computed on the way: each instance keeps the hash state of the
uploads it receives, copied per request and stored back only with a commit. After a restart, or on
another instance, the state is rebuilt once by reading the stored parts back.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from domain.accounts.models import User
from domain.core.clock import utcnow
from domain.core.errors import ChecksumMismatch, Conflict, Gone, NotFound, TooLarge, TooManyRequests
from domain.infra.objects import ObjectStore, StoredObject
from domain.quotas.service import Quotas
from domain.uploads.models import Checksum, Upload, UploadStatus
from domain.uploads.store import Part, UploadStore

log = logging.getLogger("labhub.uploads")

HASHERS_KEPT = 1000
CLAIM_LEASE = timedelta(hours=1)  # how long a use may hold an upload before another may take it


async def _settle(flight: asyncio.Task[None] | None) -> None:
    """Let a part still being stored finish when its PATCH ends early. Not cancelled: a commit cut
    off after MongoDB applied it would leave the upload counting a part deleted next. Its error, if
    any, is not the one raised."""
    if flight is None:
        return
    await asyncio.wait([flight])
    if not flight.cancelled():
        flight.exception()  # retrieved, so asyncio does not log it as never retrieved


def parts_prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}/"


class UploadsService:
    def __init__(
        self, store: UploadStore, objects: ObjectStore, quotas: Quotas, *, max_size: int, part_size: int,
        ttl_s: float,
    ) -> None:  # fmt: skip
        self._store = store
        self._objects = objects
        self._quotas = quotas
        self.max_size = max_size
        self._part_size = part_size
        self._ttl = timedelta(seconds=ttl_s)
        # upload id -> (offset, sha256 state of bytes [0, offset)): only ever committed bytes
        self._hashers: OrderedDict[str, tuple[int, Any]] = OrderedDict()

    # -- the protocol's operations -------------------------------------------------------------------

    async def create(self, actor: User, *, length: int, metadata: dict[str, str]) -> Upload:
        if length > self.max_size:
            raise TooLarge(
                f"the upload is larger than the limit of {self.max_size} bytes", code="upload_too_large"
            )
        await self._quotas.check_storage(actor.id, None, length)  # what it will hold counts from now on
        now = utcnow()
        upload = await self._store.insert(
            owner_id=actor.id, length=length, metadata=metadata, now=now, expires_at=now + self._ttl
        )
        self._quotas.stored(actor.id)
        try:  # counted with the new one in: two made at once cannot both slip under the limit
            self._quotas.check_open_uploads(await self._store.open_count(actor.id, now))
        except TooManyRequests:
            await self._store.delete(upload.id)
            raise
        self._keep_hasher(upload.id, 0, hashlib.sha256())
        return upload

    async def _owned(self, actor: User, upload_id: str) -> Upload:
        upload = await self._store.get(upload_id)
        if upload is None or upload.owner_id != actor.id:
            raise NotFound("upload not found")
        return upload

    async def get(self, actor: User, upload_id: str) -> Upload:
        upload = await self._owned(actor, upload_id)
        if upload.expires_at <= utcnow():
            raise Gone("the upload expired; start it again", code="upload_expired")
        return upload

    async def append(
        self,
        actor: User,
        upload_id: str,
        offset: int,
        chunks: AsyncIterator[bytes],
        checksum: Checksum | None,
    ) -> Upload:
        """Take a PATCH body that continues the upload at offset; returns the upload as committed."""
        upload = await self.get(actor, upload_id)
        if offset != upload.offset:
            raise Conflict(f"the upload is at offset {upload.offset}, not {offset}; ask with HEAD and go on from there",
                           code="offset_mismatch")  # fmt: skip
        whole = await self._hasher_at(upload)
        of_body = checksum.hasher() if checksum else None
        written: list[Part] = []  # stored (or being stored) but not committed: deleted if not committed
        pending = bytearray()
        received = 0
        # one full part is stored (and committed) while the next one is read from the client, so the
        # network and the object store work at once; memory stays within about two parts
        flight: asyncio.Task[None] | None = None

        async def store(data: bytes) -> None:
            nonlocal upload, written
            await self._write_part(upload, written, whole, data)
            if checksum is None:  # durable as it arrives: commit each full part at once
                upload = await self._commit(upload, written, whole)
                written = []

        try:
            async for chunk in chunks:
                received += len(chunk)
                if offset + received > upload.length:
                    raise TooLarge(f"more bytes than the {upload.length} this upload was created with",
                                   code="upload_length_exceeded")  # fmt: skip
                if of_body is not None:
                    of_body.update(chunk)
                pending += chunk
                while len(pending) >= self._part_size:
                    data = bytes(pending[: self._part_size])
                    del pending[: self._part_size]
                    if flight is not None:
                        await flight
                    flight = asyncio.create_task(store(data))
            if flight is not None:
                await flight
                flight = None
            if pending:
                await self._write_part(upload, written, whole, bytes(pending))
            if checksum is not None and of_body is not None and of_body.digest() != checksum.digest:
                raise ChecksumMismatch(
                    f"the body's {checksum.algorithm} does not match Upload-Checksum; nothing of it was kept"
                )
            if written:
                upload = await self._commit(upload, written, whole)
                written = []
            return upload
        finally:
            await _settle(flight)  # first: a part being committed changes `written`
            if written:
                await asyncio.shield(self._objects.delete([p.key for p in written]))

    async def terminate(self, actor: User, upload_id: str) -> None:
        """Expired or not: what it stored goes now (unless a document or ingestion is taking it)."""
        upload = await self._owned(actor, upload_id)
        if upload.status is UploadStatus.IN_USE and upload.expires_at > utcnow():
            raise Conflict("the upload is being used by a document or ingestion", code="upload_in_use")
        await self._remove(upload.id)

    # -- using a finished upload instead of a request body --------------------------------------------

    async def claim(self, actor: User, upload_ids: list[str], *, max_bytes: int, use: str) -> list[Upload]:
        """Take finished uploads for one use (`use` names it in messages: "documents"), all of them or
        none. The caller then places their bytes inside `using(...)`, which uses them up when it
        succeeds and releases them (to be used again) when it fails."""
        taken: list[Upload] = []
        try:
            for upload_id in upload_ids:
                upload = await self.get(actor, upload_id)
                name = repr(upload.filename) if upload.filename else f"upload {upload.id}"
                if upload.status is UploadStatus.RECEIVING:
                    raise Conflict(f"{name} is not wholly uploaded yet ({upload.offset} of {upload.length} bytes); "
                                   "finish it first", code="upload_incomplete")  # fmt: skip
                if upload.length > max_bytes:
                    raise TooLarge(f"{name} has {upload.length} bytes, more than the limit of {max_bytes} bytes "
                                   f"for {use}", code="upload_too_large")  # fmt: skip
                now = utcnow()
                claimed = await self._store.claim(
                    upload.id,
                    now=now,
                    until=now + CLAIM_LEASE,
                    expires_at=max(upload.expires_at, now + CLAIM_LEASE),
                )
                if claimed is None:
                    raise Conflict(f"{name} is being used, or was used, already", code="upload_used")
                taken.append(claimed)
        except BaseException:
            await asyncio.shield(self.release(taken))
            raise
        return taken

    async def place(self, upload: Upload, key: str, content_type: str) -> StoredObject:
        """Put a claimed upload's bytes at key without them leaving the object store's side: one part
        is copied by the store; several are streamed through in order (rclone serve s3 lacks
        UploadPartCopy, which would stitch them inside the store)."""
        assert upload.sha256 is not None, "only complete uploads are placed"
        parts = await self._store.parts(upload.id)
        if len(parts) == 1:
            await self._objects.copy(parts[0].key, key, content_type=content_type)
        else:
            await self._objects.put_stream(
                key, self._read_parts(parts), max_bytes=upload.length, part_size=self._part_size,
                content_type=content_type, known_sha256=upload.sha256,
            )  # fmt: skip
        return StoredObject(key=key, size=upload.length, sha256=upload.sha256)

    async def _read_parts(self, parts: list[Part]) -> AsyncIterator[bytes]:
        for part in parts:
            async with self._objects.open_read(part.key) as reader:
                async for chunk in reader.chunks():
                    yield chunk

    @asynccontextmanager
    async def using(self, uploads: list[Upload]) -> AsyncIterator[list[Upload]]:
        """Claimed uploads for the block that uses them: used up (parts and record gone) when it
        succeeds, released (to be used again) when it fails."""
        try:
            yield uploads
        except BaseException:
            await asyncio.shield(self.release(uploads))
            raise
        for upload in uploads:
            await self._remove(upload.id)

    async def release(self, uploads: list[Upload]) -> None:
        """Not used after all: back to complete, for another try."""
        for upload in uploads:
            await self._store.unclaim(upload.id, expires_at=utcnow() + self._ttl)

    async def sweep(self) -> int:
        """Remove what expired uploads stored; returns how many went."""
        removed = 0
        while ids := await self._store.expired(utcnow()):
            for upload_id in ids:
                await self._remove(upload_id)
                removed += 1
        if removed:
            log.info("expired uploads removed", extra={"count": removed})
        return removed

    # -- parts, commits and the running hash ---------------------------------------------------------

    async def _write_part(self, upload: Upload, written: list[Part], whole: Any, data: bytes) -> None:
        """Store data as the next part; it joins `written` before it is stored, so that a failure
        or cancellation mid-put still has it deleted."""
        start = upload.offset + sum(p.size for p in written)
        part = Part(f"{parts_prefix(upload.id)}{start:016d}-{secrets.token_hex(4)}", len(data))
        written.append(part)
        await self._objects.put_bytes(part.key, data)
        whole.update(data)  # the running hash holds exactly the bytes of the parts written

    async def _commit(self, upload: Upload, parts: list[Part], whole: Any) -> Upload:
        now = utcnow()
        complete = upload.offset + sum(p.size for p in parts) == upload.length
        committed = await self._store.commit(
            upload, parts, now=now, expires_at=now + self._ttl, sha256=whole.hexdigest() if complete else None
        )
        if committed is None:
            raise Conflict("another request wrote to this upload meanwhile; ask with HEAD and go on from there",
                           code="offset_mismatch")  # fmt: skip
        if committed.status is UploadStatus.COMPLETE:
            self._hashers.pop(upload.id, None)
        else:
            self._keep_hasher(upload.id, committed.offset, whole.copy())
        return committed

    def _keep_hasher(self, upload_id: str, offset: int, hasher: Any) -> None:
        self._hashers[upload_id] = (offset, hasher)
        self._hashers.move_to_end(upload_id)
        while len(self._hashers) > HASHERS_KEPT:
            self._hashers.popitem(last=False)

    async def _hasher_at(self, upload: Upload) -> Any:
        """A copy of the hash state at upload.offset: kept here, or rebuilt from the stored parts."""
        kept = self._hashers.get(upload.id)
        if kept is not None and kept[0] == upload.offset:
            return kept[1].copy()
        hasher, size = hashlib.sha256(), 0
        async for chunk in self._read_parts(await self._store.parts(upload.id)):
            hasher.update(chunk)
            size += len(chunk)
        if size != upload.offset:
            raise Conflict("the upload changed while it was being read; try again", code="offset_mismatch")
        log.info("upload hash rebuilt from its parts", extra={"upload_id": upload.id, "bytes": size})
        return hasher

    async def _remove(self, upload_id: str) -> None:
        owner = await self._store.owner_of(upload_id)
        await self._objects.delete(await self._objects.keys(parts_prefix(upload_id)))
        await self._store.delete(upload_id)
        self._hashers.pop(upload_id, None)
        if owner is not None:
            self._quotas.stored(owner)
