"""Redis connection (redis.asyncio) with LabHub's key prefix."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from domain.core.background import stop_if_cancelled
from domain.core.metrics import CountCall

log = logging.getLogger("labhub.redis")


def text(value: Any) -> str:
    """A Redis reply (bytes, or str from a client that decodes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStore:
    """A redis.asyncio client plus the key prefix every LabHub key carries."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix

    def key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def ping(self) -> None:
        await self.client.ping()

    async def listen(self, channels: list[str], on_message: Callable[[str, bytes], None], what: str) -> None:
        """Call on_message(channel, data) for every message published on these channels, until
        cancelled; a lost connection (Redis restarting) is subscribed again a second later. What was
        published meanwhile is not heard: listeners have a fallback (polling, a check on reconnect)."""
        while True:
            stop_if_cancelled()
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*channels)
                while True:
                    stop_if_cancelled()
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None and isinstance(message.get("data"), bytes):
                        on_message(message["channel"].decode(), message["data"])
            except RedisError as exc:
                log.warning("lost the Redis %s channel; reconnecting", what, extra={"error": repr(exc)[:200]})
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]


def _counting_connection(count: CountCall) -> type[aioredis.Connection]:
    class CountingConnection(aioredis.Connection):
        """Counts round trips: every command, or a whole pipeline, goes out in one send."""

        async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            count("redis", "round_trip")
            await super().send_packed_command(command, check_health)

    return CountingConnection


@asynccontextmanager
async def open_redis(
    url: str, prefix: str, *, max_connections: int = 32, count: CountCall | None = None
) -> AsyncIterator[RedisStore]:
    # a bounded pool that waits for a free connection instead of opening hundreds under a burst; a
    # command on a connection that a Redis restart closed is tried again on a new one (a few quick
    # tries, then the error: a Redis that is down answers 503 at once instead of holding requests)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, socket_connect_timeout=5, health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        **({"connection_class": _counting_connection(count)} if count else {}),
    )  # fmt: skip
    client = aioredis.Redis(connection_pool=pool)
    try:
        await client.ping()
        yield RedisStore(client, prefix)
    finally:
        await client.aclose()
        await pool.disconnect()
