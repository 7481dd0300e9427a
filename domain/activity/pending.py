"""Activity counts on their way to MongoDB: one Redis hash that every instance adds to (HINCRBY, one
round trip where a MongoDB upsert was one command per upload, ingestion or record), moved to MongoDB
in bulk (infra/write_behind.py; docs/architecture.md, "Writes that wait in Redis"). A flush's token is
kept on the day's documents it wrote (ActivityStore.apply), so a flush written again is a no-op.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

from domain.activity.models import Signal
from domain.infra.redis_store import RedisStore, text
from domain.infra.write_behind import WriteBehind

Item = tuple[str, str, date, Signal, int]  # project, user, day, signal, n


def _field(project_id: str, user_id: str, day: date, signal: Signal) -> str:
    return f"{project_id}|{user_id}|{day.isoformat()}|{signal.value}"


class PendingCounts:
    def __init__(self, redis: RedisStore, apply: Callable[[list[Item], str], Awaitable[None]]) -> None:
        self._redis = redis
        self.waiting = WriteBehind(redis, "activity", self._items, apply)

    async def add(self, project_id: str, user_id: str, day: date, signal: Signal, n: int) -> None:
        await self._redis.client.hincrby(self.waiting.pending, _field(project_id, user_id, day, signal), n)
        self.waiting.added()

    async def _items(self, key: str) -> list[Item]:
        items: list[Item] = []
        for field, n in (await self._redis.client.hgetall(key)).items():
            project_id, user_id, day, signal = text(field).split("|")
            items.append((project_id, user_id, date.fromisoformat(day), Signal(signal), int(n)))
        return items
