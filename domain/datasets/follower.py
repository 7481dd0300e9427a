"""A job's Parquet outputs go to S3 while the worker is still writing them, so that the commit
finds them stored already instead of starting the upload then."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from domain.datasets.models import dataset_key, output_id
from domain.infra.localfiles import READ_CHUNK
from domain.infra.objects import ObjectStore, StoredObject
from workers.ingest.common import done_marker

log = logging.getLogger("labhub.ingestion")


class _Abandoned(Exception):
    """The worker gave a Parquet file up (an empty sheet, a failure) before finishing it."""


async def growing_file(path: Path, size: int = READ_CHUNK) -> AsyncIterator[bytes]:
    """The bytes of a file another process is still writing, until its .done marker appears."""
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(size)
            if chunk:
                yield chunk
                continue
            if done_marker(path).exists():
                if rest := handle.read():
                    yield rest
                return
            if not path.exists():
                raise _Abandoned(path.name)
            await asyncio.sleep(0.05)


class OutputFollower:
    """Uploads a job's Parquet files to S3 while the worker is still writing them, so that the
    commit finds them stored already instead of starting the upload then."""

    def __init__(self, objects: ObjectStore, work: Path, job_id: str, part_size: int) -> None:
        self._objects, self._work, self._job_id, self._part_size = objects, work, job_id, part_size
        self.uploads: dict[str, asyncio.Task[StoredObject]] = {}
        self.used: set[str] = set()  # keys a dataset of this attempt was recorded with
        self._watcher = asyncio.create_task(self._watch(), name=f"follow-{job_id}")

    async def _watch(self) -> None:
        while True:
            for path in self._work.glob("*.parquet") if self._work.exists() else []:
                if path.name not in self.uploads:
                    key = dataset_key(output_id(self._job_id, path.stem))
                    self.uploads[path.name] = asyncio.create_task(self._objects.put_stream(
                        key, growing_file(path), max_bytes=2**62, part_size=self._part_size,
                        content_type="application/vnd.apache.parquet",
                    ))  # fmt: skip
            await asyncio.sleep(0.05)

    async def stored(self, path: Path) -> StoredObject | None:
        """The finished upload of path, or None when it was not being followed or its upload failed
        (S3 was restarting, say): the commit then stores the finished file itself. Asked at the
        commit, when the worker has written everything: no new file is followed from then on (a
        file the watch had not seen yet, as a small one, would be stored twice)."""
        self._watcher.cancel()
        task = self.uploads.get(path.name)
        if task is None:
            return None
        try:
            return await asyncio.shield(task)
        except Exception as exc:  # noqa: BLE001 - the file is whole on disk; storing it again is the remedy
            log.warning(
                "a Parquet upload that ran with the worker failed; storing it again",
                extra={"error": repr(exc)[:200]},
            )
            del self.uploads[path.name]
            return None

    async def stop(self) -> list[str]:
        """Stop following; the keys of the files it stored, so that unused ones can be removed."""
        for task in [self._watcher, *self.uploads.values()]:
            task.cancel()
        results = await asyncio.gather(*self.uploads.values(), return_exceptions=True)
        await asyncio.gather(self._watcher, return_exceptions=True)
        return [r.key for r in results if isinstance(r, StoredObject)]
