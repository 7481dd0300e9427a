"""The raw bytes of an upload, stored once as raw/{sha256} however many uploads of them arrive
together, and what a job does while they are on their way.

The request that accepted a batch stores its raw files and holds the batch's raw lease while it
does (renewed here); a job waits for the bytes for as long as that lease holds (at most
raw_wait_s), so a job whose request died (a restart, an outage) fails at once with a clear code
instead of holding a pool slot for raw_wait_s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

from domain.core.cache import TtlCache
from domain.core.clock import utcnow
from domain.core.flight import SingleFlight
from domain.datasets.models import SourceFile, raw_key
from domain.datasets.store import IngestionStore
from domain.infra.objects import ObjectStore
from workers.worker import JobFailed

log = logging.getLogger("labhub.ingestion")


class RawFiles:
    def __init__(
        self, objects: ObjectStore, ingestions: IngestionStore, *, lease_s: float, wait_s: float
    ) -> None:
        self._objects = objects
        self._ingestions = ingestions
        self._lease_s = lease_s
        self._wait_s = wait_s
        self._under_way: SingleFlight[str, None] = SingleFlight()  # raw uploads under way on this instance
        # bytes this instance stored (or found stored) for a batch it took, lately: the commits of
        # their jobs need not ask S3 again. Bytes an ingestion names are not removed (only the
        # removal of the last such ingestion removes them, and that cancels its job), so it holds
        self._stored: TtlCache[str, bool] = TtlCache(2 * lease_s)

    def under_way(self, sha256: str) -> bool:
        return self._under_way.running(sha256) is not None

    @contextlib.asynccontextmanager
    async def holding(self, batch_id: str) -> AsyncIterator[None]:
        """Renew the batch's raw lease while its raw files are being stored: a job that waits for
        them (on any instance) gives up as soon as the lease runs out, not after raw_wait_s."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self._lease_s / 3)
                try:
                    await self._ingestions.hold_raw(batch_id, utcnow() + timedelta(seconds=self._lease_s))
                except Exception as exc:  # noqa: BLE001 - the next round tries again
                    log.warning(
                        "could not renew a raw lease", extra={"batch_id": batch_id, "error": repr(exc)[:200]}
                    )

        renewing = asyncio.create_task(renew(), name=f"raw-lease-{batch_id}")
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing

    async def store(self, source: SourceFile, put: Callable[[SourceFile], Awaitable[None]]) -> None:
        """raw/{sha256} once, however many uploads of the same bytes arrive together."""

        async def put_once() -> None:
            if not await self._objects.exists(raw_key(source.sha256)):
                await put(source)
            self._stored.put(source.sha256, True)

        await self._under_way.run(source.sha256, put_once)

    def stored_lately(self, sha256: str) -> bool:
        """Whether this instance stored these bytes (or found them stored) for a batch lately: the
        commit of a job of that batch need not ask S3 again (a job that must read them does)."""
        return self._stored.get(sha256) is not None

    async def remove(self, sha256s: list[str]) -> None:
        """Remove these raw files (no ingestion names them any more); jobs ask S3 for them again."""
        for sha256 in sha256s:
            self._stored.forget(sha256)
        await self._objects.delete([raw_key(s) for s in sha256s])

    async def wait(self, job_id: str, sha256: str) -> None:
        """Until raw/{sha256} is stored: by this instance's request (awaited), or by a request
        elsewhere, for as long as that request holds the batch's raw lease (at most raw_wait_s)."""
        gone = JobFailed("upload_incomplete", "the uploaded file never reached storage; upload it again")
        if (running := self._under_way.running(sha256)) is not None:
            try:
                await asyncio.shield(running)
            except Exception:  # noqa: BLE001 - whatever stopped the upload, the job cannot go on
                raise gone from None
            return
        deadline = asyncio.get_running_loop().time() + self._wait_s
        while not await self._objects.exists(raw_key(sha256)):
            if asyncio.get_running_loop().time() > deadline or not await self._ingestions.raw_held(
                job_id, utcnow()
            ):
                # the lease may have ended just after the file was stored
                if await self._objects.exists(raw_key(sha256)):
                    return
                raise gone
            await asyncio.sleep(0.5)
