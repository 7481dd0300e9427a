"""Per-person quotas (docs/architecture.md, "Limits and security"): storage per person and per project, unfinished uploads, jobs
waiting or running, and open event streams. Past a limit the answer is a problem: 413
`quota_exceeded` for storage, 429 for the rest.

Storage is summed from what is stored (domain/quotas/store.py), looked up at most every few
seconds per person or project; what this instance stores meanwhile is added to the sums it holds
(and a removal makes it look them up again), so uploads one after another are held to the byte
without summing every collection for each; uploads started at the same moment on several instances
may together pass a limit by what they carry. Jobs waiting or running are counted the same way
while a person is far from the limit (an upload of many small files then counts them once), and
counted afresh near it. Unfinished uploads are counted after the new one is recorded (two at once
cannot both slip under the limit); open streams are counted per instance.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import attrs

from domain.core.cache import TtlCache
from domain.core.clock import utcnow
from domain.core.content import human_size
from domain.core.errors import TooLarge, TooManyRequests
from domain.core.flight import SingleFlight
from domain.core.settings import QuotaSettings
from domain.quotas.store import UsageStore

USAGE_CACHE_S = 10.0
JOBS_CACHE_S = 5.0  # a person's active jobs, counted at most this often while far below the limit
JOBS_RETRY_AFTER_S = 30


@attrs.frozen
class Limited:
    """How much of something a person uses, and the most they may (None: no limit)."""

    used: int
    limit: int | None


@attrs.frozen
class Usage:
    storage_bytes: Limited
    open_uploads: Limited
    active_jobs: Limited
    open_streams: Limited


@attrs.frozen
class QuotaLimits:
    """The limits themselves (0 in the settings: none), for the System page."""

    storage_per_user_bytes: int | None
    storage_per_project_bytes: int | None
    open_uploads_per_user: int | None
    queued_jobs_per_user: int | None
    streams_per_user: int | None


@attrs.frozen
class Room:
    """Bytes a person may still store (in a project); None: no limit. `whose` names the binding limit."""

    bytes: int | None
    whose: str = ""
    used: int = 0
    limit: int = 0


def _limit(value: int) -> int | None:
    return value or None


class Quotas:
    def __init__(self, store: UsageStore, settings: QuotaSettings) -> None:
        self._store = store
        self._settings = settings
        self._bytes: TtlCache[str, int] = TtlCache(USAGE_CACHE_S)
        self._jobs: TtlCache[str, int] = TtlCache(JOBS_CACHE_S)
        self._summing: SingleFlight[str, int] = SingleFlight()  # many uploads at once sum once
        self._streams: dict[str, int] = {}

    def limits(self) -> QuotaLimits:
        q = self._settings
        return QuotaLimits(
            _limit(q.storage_per_user_bytes), _limit(q.storage_per_project_bytes),
            _limit(q.open_uploads_per_user), _limit(q.queued_jobs_per_user), _limit(q.streams_per_user),
        )  # fmt: skip

    # -- storage ---------------------------------------------------------------------------------

    async def _held_bytes(self, key: str, total: Callable[[], Awaitable[int]]) -> int:
        """The sum held for key, else summed (once for everyone asking at that moment) and held."""
        if (held := self._bytes.get(key)) is None:
            held = await self._summing.run(key, total)
            self._bytes.put(key, held)
        return held

    async def _user_bytes(self, user_id: str) -> int:
        return await self._held_bytes(f"user:{user_id}", lambda: self._store.user_bytes(user_id, utcnow()))

    async def _project_bytes(self, project_id: str) -> int:
        return await self._held_bytes(f"project:{project_id}", lambda: self._store.project_bytes(project_id))

    async def room(self, user_id: str | None, project_id: str | None = None) -> Room:
        """What may still be stored by this person (None: bytes already counted as theirs, such as
        a finished resumable upload being used) in this project (None: in no project yet)."""
        rooms = []
        if user_id is not None and (limit := self._settings.storage_per_user_bytes):
            used = await self._user_bytes(user_id)
            rooms.append(Room(max(0, limit - used), "your uploads", used, limit))
        if project_id is not None and (limit := self._settings.storage_per_project_bytes):
            used = await self._project_bytes(project_id)
            rooms.append(Room(max(0, limit - used), "this project's data", used, limit))
        return min(rooms, key=lambda r: r.bytes or 0) if rooms else Room(None)

    @staticmethod
    def too_large(room: Room, needed: int | None = None) -> TooLarge:
        more = f"; this needs {human_size(needed)}" if needed is not None else ""
        return TooLarge(
            f"{room.whose} take {human_size(room.used)} of the {human_size(room.limit)} allowed, {human_size(room.bytes or 0)} "
            f"are left{more}; delete something or ask a head for more room", code="quota_exceeded",
        )  # fmt: skip

    async def check_storage(self, user_id: str | None, project_id: str | None, needed: int) -> Room:
        """Refuse (413) what would not fit; the room that is left, for a stream to keep within."""
        room = await self.room(user_id, project_id)
        if room.bytes is not None and needed > room.bytes:
            raise self.too_large(room, needed)
        return room

    def stored(self, user_id: str, project_id: str | None = None, *, added: int | None = None) -> None:
        """Something was stored (`added` bytes more: added to the sums held here) or removed, or
        changed by an amount not known here (added None: look the sums up again next time)."""
        for key in (f"user:{user_id}", *([f"project:{project_id}"] if project_id is not None else [])):
            if added is None:
                self._bytes.forget(key)
            elif (held := self._bytes.get(key)) is not None:
                self._bytes.replace(key, held + added)

    # -- counts ----------------------------------------------------------------------------------

    def check_open_uploads(self, count: int) -> None:
        """count: the person's unfinished uploads, the new one included."""
        limit = self._settings.open_uploads_per_user
        if limit and count > limit:
            raise TooManyRequests(
                f"you have {limit} unfinished uploads; finish or delete some first", retry_after_s=60,
                code="too_many_uploads",
            )  # fmt: skip

    async def check_jobs(self, user_id: str, adding: int = 1) -> None:
        limit = self._settings.queued_jobs_per_user
        if not limit:
            return
        # a count held here only grows (jobs added here), so it is never below the real one but
        # for other instances' jobs; near the limit the jobs are counted afresh
        held = self._jobs.get(user_id)
        if held is None or 2 * (held + adding) > limit:
            held = await self._summing.run(f"jobs:{user_id}", lambda: self._store.active_jobs(user_id))
            self._jobs.put(user_id, held)
        if held + adding > limit:
            raise TooManyRequests(
                f"you have {held} jobs waiting or running and may have {limit}; this adds {adding}: "
                "wait for some to finish", retry_after_s=JOBS_RETRY_AFTER_S, code="too_many_jobs",
            )  # fmt: skip
        self._jobs.replace(user_id, held + adding)

    @contextmanager
    def stream(self, user_id: str | None) -> Iterator[None]:
        """Hold one of the person's event streams open on this instance."""
        limit = self._settings.streams_per_user
        if user_id is None:
            yield
            return
        if limit and self._streams.get(user_id, 0) >= limit:
            raise TooManyRequests(
                f"you have {limit} event streams open (one per open page or watcher); close some first",
                retry_after_s=5, code="too_many_streams",
            )  # fmt: skip
        self._streams[user_id] = self._streams.get(user_id, 0) + 1
        try:
            yield
        finally:
            left = self._streams[user_id] - 1
            if left:
                self._streams[user_id] = left
            else:
                del self._streams[user_id]

    async def usage(self, user_id: str) -> Usage:
        q, now = self._settings, utcnow()
        return Usage(
            storage_bytes=Limited(await self._store.user_bytes(user_id, now), _limit(q.storage_per_user_bytes)),
            open_uploads=Limited(await self._store.open_uploads(user_id, now), _limit(q.open_uploads_per_user)),
            active_jobs=Limited(await self._store.active_jobs(user_id), _limit(q.queued_jobs_per_user)),
            open_streams=Limited(self._streams.get(user_id, 0), _limit(q.streams_per_user)),
        )
