"""Login throttling counters in Redis: exponential back-off per account and client, capped."""

from __future__ import annotations

import hashlib
import math
import time

from domain.stores.redis_store import RedisStore


class LoginThrottle:
    """After free_attempts failures, each further failure doubles the wait, up to max_s.

    Keyed by account *and* client address, so an attacker hammering an account from one place
    does not lock its owner out elsewhere; the counter is forgotten after a quiet period, and the
    wait never exceeds max_s, so nobody is locked out for good.
    """

    def __init__(self, redis: RedisStore, *, free_attempts: int, base_s: float, max_s: float) -> None:
        self._redis = redis
        self._free = free_attempts
        self._base = base_s
        self._max = max_s

    def _key(self, email: str, client: str) -> str:
        digest = hashlib.sha256(f"{email}\x00{client}".encode()).hexdigest()[:32]
        return self._redis.key("login", digest)

    async def retry_after(self, email: str, client: str) -> int:
        """Seconds the caller must still wait, 0 if it may try now."""
        until = await self._redis.client.hget(self._key(email, client), "until")
        if until is None:
            return 0
        remaining = float(until) - time.time()
        return math.ceil(remaining) if remaining > 0 else 0

    async def failed(self, email: str, client: str) -> None:
        key = self._key(email, client)
        failures = await self._redis.client.hincrby(key, "failures", 1)
        ttl = max(1, math.ceil(self._max * 2))
        if failures >= self._free:
            delay = min(self._max, self._base * 2 ** min(failures - self._free, 62))
            await self._redis.client.hset(key, "until", str(time.time() + delay))
        await self._redis.client.expire(key, ttl)

    async def succeeded(self, email: str, client: str) -> None:
        await self._redis.client.delete(self._key(email, client))


class WindowLimit:
    """At most `limit` hits per key in a fixed window of `window_s` seconds (Redis INCR + EXPIRE).

    Keys are hashed, so an email address or client address is never stored in Redis in clear.
    """

    def __init__(self, redis: RedisStore, name: str, *, limit: int, window_s: int) -> None:
        self._redis = redis
        self._name = name
        self._limit = limit
        self._window_s = window_s

    async def hit(self, subject: str) -> int:
        """Count one hit; 0 if it is within the limit, else the seconds until the window ends."""
        digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
        key = self._redis.key("limit", self._name, digest)
        count = await self._redis.client.incr(key)
        if count == 1:
            await self._redis.client.expire(key, self._window_s)
        if count <= self._limit:
            return 0
        ttl = await self._redis.client.ttl(key)
        if ttl < 0:  # the expiry was lost between the two calls: set it now
            await self._redis.client.expire(key, self._window_s)
            ttl = self._window_s
        return max(1, int(ttl))
