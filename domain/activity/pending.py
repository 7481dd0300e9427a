"""Activity counts on their way to MongoDB: one Redis hash that every instance adds to (HINCRBY, one
round trip where a MongoDB upsert was one command per upload, ingestion or record), moved to MongoDB
in bulk by whichever instance flushes first (docs/architecture.md, "Activity counts").

A flush renames the hash to one of its own (so counts added meanwhile start a new hash), notes the
flush in a sorted set, writes the counts to MongoDB tagged with the flush's token and only then
deletes its hash. A flusher that dies before the delete leaves its hash and token behind: any
instance writes it again once it is older than ABANDONED_S, and the token makes that second write a
no-op for every count the first one did write (ActivityStore.apply).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from domain.activity.models import Signal
from domain.infra.redis_store import RedisStore

ABANDONED_S = 30.0  # a flush not done after this long died with its instance: written again
RECOVER_AT_ONCE = 20

# Added to while instances count: field "project|user|day|signal" -> n
# KEYS[1]: the pending hash, KEYS[2]: the flush's own hash, KEYS[3]: the flushes under way (zset).
# ARGV: the token, now (s). Returns 1 when there was something to flush.
_TAKE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""

Item = tuple[str, str, date, Signal, int]  # project, user, day, signal, n
Apply = Callable[[list[Item], str], Awaitable[None]]


def _field(project_id: str, user_id: str, day: date, signal: Signal) -> str:
    return f"{project_id}|{user_id}|{day.isoformat()}|{signal.value}"


def _items(raw: dict[Any, Any]) -> list[Item]:
    items: list[Item] = []
    for field, n in raw.items():
        project_id, user_id, day, signal = _text(field).split("|")
        items.append((project_id, user_id, date.fromisoformat(day), Signal(signal), int(n)))
    return items


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class PendingCounts:
    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis
        self._pending = redis.key("activity", "pending")
        self._under_way = redis.key("activity", "flushing")
        self._take = redis.client.register_script(_TAKE)

    def _flush_key(self, token: str) -> str:
        return self._redis.key("activity", "flush", token)

    async def add(self, project_id: str, user_id: str, day: date, signal: Signal, n: int) -> None:
        await self._redis.client.hincrby(self._pending, _field(project_id, user_id, day, signal), n)

    async def flush(self, apply: Apply) -> None:
        """Write what is pending (everyone's counts, from every instance) to MongoDB."""
        token = uuid.uuid4().hex[:16]
        key = self._flush_key(token)
        if await self._take(keys=[self._pending, key, self._under_way], args=[token, time.time()]):
            await self._write(token, key, apply)

    async def recover(self, apply: Apply) -> int:
        """Write again the flushes whose instance died before finishing them; how many there were."""
        tokens = await self._redis.client.zrangebyscore(
            self._under_way, "-inf", time.time() - ABANDONED_S, start=0, num=RECOVER_AT_ONCE
        )
        for token in (_text(t) for t in tokens):
            await self._write(token, self._flush_key(token), apply)
        return len(tokens)

    async def _write(self, token: str, key: str, apply: Apply) -> None:
        items = _items(await self._redis.client.hgetall(key))
        if items:
            await apply(items, token)
        async with self._redis.client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.zrem(self._under_way, token)
            await pipe.execute()
