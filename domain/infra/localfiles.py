"""Files on the instance's own disk: the upload spool, job work directories, the dataset cache."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import attrs

from domain.core.errors import TooLarge

SPOOL_MAX_AGE_S = 24 * 3600
READ_CHUNK = 8 * 1024 * 1024


async def file_chunks(path: Path, size: int = READ_CHUNK) -> AsyncIterator[bytes]:
    """A local file as an async stream of chunks (for uploads to S3)."""
    with path.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk


@attrs.frozen
class SpooledFile:
    path: Path
    name: str
    content_type: str | None
    size: int
    sha256: str


class LocalFiles:
    """data_dir/spool (uploads, named by sha256), data_dir/work (job outputs), data_dir/cache."""

    def __init__(self, root: Path, *, cache_bytes: int) -> None:
        self.spool = root / "spool"
        self.work = root / "work"
        self.cache = root / "cache"
        self.cache_bytes = cache_bytes
        # spooled files an upload request or a job queued here still holds: same bytes, same file,
        # so another upload's finished job must not remove them from under it
        self._holds: Counter[str] = Counter()
        for directory in (self.spool, self.work, self.cache):
            directory.mkdir(parents=True, exist_ok=True)

    def sweep(self) -> None:
        """At start: spool and work files of jobs that can no longer be running are removed."""
        cutoff = time.time() - SPOOL_MAX_AGE_S
        for directory in (self.spool, self.work):
            for entry in directory.iterdir():
                if entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(
                        missing_ok=True
                    )

    async def spool_upload(
        self, chunks: AsyncIterator[bytes], *, name: str, content_type: str | None, max_bytes: int
    ) -> SpooledFile:
        """Write an upload to the spool while hashing it; kept as spool/{sha256}, written once.

        Hashing and writing happen in a thread, one chunk behind the network, so the event loop
        keeps receiving while the previous chunk is being hashed and written.
        """
        temporary = self.spool / f".upload-{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        size = 0
        loop = asyncio.get_running_loop()
        previous: asyncio.Future[None] | None = None

        def absorb(handle: BinaryIO, chunk: bytes) -> None:
            digest.update(chunk)
            handle.write(chunk)

        try:
            with temporary.open("wb") as handle:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise TooLarge(
                            f"{name} is larger than the limit of {max_bytes} bytes", code="file_too_large"
                        )
                    if previous is not None:
                        await previous
                    previous = loop.run_in_executor(None, absorb, handle, chunk)
                if previous is not None:
                    await previous
            final = self.spool_path(digest.hexdigest())
            if final.exists():
                temporary.unlink()
                os.utime(final)
            else:
                temporary.rename(final)
            self._holds[digest.hexdigest()] += 1  # no await since the file took its name: nothing ran between
        except BaseException:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            temporary.unlink(missing_ok=True)
            raise
        return SpooledFile(final, name, content_type, size, digest.hexdigest())

    def spool_path(self, sha256: str) -> Path:
        return self.spool / sha256

    def hold(self, sha256: str) -> None:
        """One more holder of these spooled bytes (a job queued here that will read them)."""
        self._holds[sha256] += 1

    def let_go(self, sha256: str) -> None:
        """A holder (the upload request that spooled these bytes, or a job) is done with them."""
        self._holds[sha256] -= 1
        if self._holds[sha256] <= 0:
            del self._holds[sha256]

    def held(self, sha256: str) -> bool:
        return self._holds[sha256] > 0

    def work_dir(self, job_id: str, attempt: int) -> Path:
        return self.work / f"{job_id}-{attempt}"

    def cached(self, name: str) -> Path:
        return self.cache / name

    def trim_cache(self) -> None:
        """Keep the cache under cache_bytes, dropping the least recently used files first."""
        entries = []
        for p in self.cache.iterdir():
            if p.name.startswith("."):
                continue  # still being fetched
            with contextlib.suppress(FileNotFoundError):
                info = p.stat()
                entries.append((info.st_atime, info.st_size, p))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.cache_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
