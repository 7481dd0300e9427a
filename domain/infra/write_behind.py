"""Writes that wait in Redis and reach MongoDB in bulk (docs/architecture.md, "Writes that wait in
Redis"): one Redis key that every instance adds to (a hash of counts, a list of documents), moved to
MongoDB by whichever instance flushes first, about a second after something was added, or at once
before a read that must see it.

A flush renames the key to one of its own (what is added meanwhile starts a new key), notes itself in
a sorted set, hands what it took to `write` with its token and only then deletes its key. Every
flush also writes the flushes still under way (another reader's or instance's, or one whose instance
died before its delete): a read that flushes first then sees everything added before it, whatever
else is flushing, and nothing is left behind by a dead flusher. So a flush may be written twice, and
`write` must make a second write of the same token a no-op (a token kept on the documents, or
documents with ids chosen before they waited).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from domain.core.background import stop_if_cancelled
from domain.infra.redis_store import RedisStore, text

log = logging.getLogger("labhub.write_behind")

T = TypeVar("T")
LINGER_S = 1.0  # what is added within this long goes in the same bulk write
IDLE_FLUSH_S = 10.0  # a flusher with nothing added here looks anyway (what a dead instance left)

# KEYS[1]: the pending key, KEYS[2]: the flush's own key, KEYS[3]: the flushes under way (zset).
# ARGV: the token, now (s). Takes what is pending (if anything) as this flush; returns the tokens of
# every flush under way, this one included, oldest first.
_TAKE = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
end
return redis.call('ZRANGE', KEYS[3], 0, -1)
"""


class WriteBehind(Generic[T]):
    """read(key) decodes what waited under a key; write(what, token) stores it in MongoDB."""

    def __init__(
        self, redis: RedisStore, name: str, read: Callable[[str], Awaitable[T]],
        write: Callable[[T, str], Awaitable[None]],
    ) -> None:  # fmt: skip
        self._redis = redis
        self._name = name
        self.pending = redis.key(name, "pending")
        self.under_way = redis.key(name, "flushing")
        self._read = read
        self._write = write
        self._take = redis.client.register_script(_TAKE)
        self._added = asyncio.Event()

    def flush_key(self, token: str) -> str:
        return self._redis.key(self._name, "flush", token)

    def added(self) -> None:
        """Something was added to the pending key here: flush within LINGER_S."""
        self._added.set()

    async def flush(self) -> None:
        """Write everything added so far (on any instance) to MongoDB: what is pending, and what
        other flushes have taken and may not have written yet."""
        token = uuid.uuid4().hex[:16]
        under_way = await self._take(
            keys=[self.pending, self.flush_key(token), self.under_way], args=[token, time.time()]
        )
        for taken in (text(t) for t in under_way):
            await self._finish(taken, self.flush_key(taken))

    async def _finish(self, token: str, key: str) -> None:
        await self._write(await self._read(key), token)
        async with self._redis.client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.zrem(self.under_way, token)
            await pipe.execute()

    async def run(self) -> None:
        """The flusher, one background task per serving instance: LINGER_S after something was added
        here, and every IDLE_FLUSH_S (what a stopped instance left, flushes a dead one began)."""
        while True:
            stop_if_cancelled()
            try:
                await self.flush()
            except Exception as exc:  # noqa: BLE001 - what waits stays in Redis: tried again next time
                log.warning("%s not flushed yet", self._name, extra={"error": repr(exc)[:200]})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_FLUSH_S):
                    await self._added.wait()
                    await asyncio.sleep(LINGER_S)
            self._added.clear()
