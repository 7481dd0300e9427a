"""Writes that wait in Redis and reach MongoDB in bulk (docs/architecture.md, "Writes that wait in
Redis"): one Redis key that every instance adds to (a hash of counts, a list of documents), moved to
MongoDB by whichever instance flushes first, about a second after something was added, or at once
before a read that must see it.

A flush renames the key to one of its own (what is added meanwhile starts a new key), notes itself in
a sorted set, hands what it took to `write` with its token and only then deletes its key. A flusher
that dies before the delete leaves its key and token behind: any instance writes it again once it is
older than ABANDONED_S, so `write` must make a second write of the same token a no-op (a token kept
on the documents, or documents with ids chosen before they waited).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from domain.core.background import stop_if_cancelled
from domain.infra.redis_store import RedisStore

log = logging.getLogger("labhub.write_behind")

T = TypeVar("T")
ABANDONED_S = 30.0  # a flush not done after this long died with its instance: written again
RECOVER_AT_ONCE = 20
LINGER_S = 1.0  # what is added within this long goes in the same bulk write
RECOVER_EVERY_S = 10.0

# KEYS[1]: the pending key, KEYS[2]: the flush's own key, KEYS[3]: the flushes under way (zset).
# ARGV: the token, now (s). Returns 1 when there was something to flush.
_TAKE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""


def text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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
        """Write everything pending (from every instance) to MongoDB."""
        token = uuid.uuid4().hex[:16]
        key = self.flush_key(token)
        if await self._take(keys=[self.pending, key, self.under_way], args=[token, time.time()]):
            await self._finish(token, key)

    async def recover(self) -> int:
        """Write again the flushes whose instance died before finishing them; how many there were."""
        tokens = await self._redis.client.zrangebyscore(
            self.under_way, "-inf", time.time() - ABANDONED_S, start=0, num=RECOVER_AT_ONCE
        )
        for token in (text(t) for t in tokens):
            await self._finish(token, self.flush_key(token))
        return len(tokens)

    async def _finish(self, token: str, key: str) -> None:
        await self._write(await self._read(key), token)
        async with self._redis.client.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.zrem(self.under_way, token)
            await pipe.execute()

    async def run(self) -> None:
        """The flusher, one background task per serving instance: LINGER_S after something was added
        here, and every RECOVER_EVERY_S (what a stopped instance left, flushes a dead one began)."""
        while True:
            stop_if_cancelled()
            try:
                await self.flush()
                await self.recover()
            except Exception as exc:  # noqa: BLE001 - what waits stays in Redis: tried again next time
                log.warning("%s not flushed yet", self._name, extra={"error": repr(exc)[:200]})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECOVER_EVERY_S):
                    await self._added.wait()
                    await asyncio.sleep(LINGER_S)
            self._added.clear()
