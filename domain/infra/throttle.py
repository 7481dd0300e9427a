"""Sign-in and request limits in Redis: back-off per account and client, limits per client.

Every counter is changed by one Lua script (atomic in Redis), so parallel requests cannot slip
past a limit between reading and writing it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time

from domain.infra.redis_store import RedisStore

# One sign-in attempt, counted before the password is checked (so parallel guesses get no extra
# tries): the attempt's number n; attempts past the free ones wait until `until`, and each admitted
# attempt from the last free one on pushes `until` out by base * 2^(n - free), capped. A refused
# attempt is not counted. KEYS[1]: the counter; ARGV: now, free, base, max, ttl. Returns the seconds
# to wait (0: go ahead).
_ADMIT = """
local n = redis.call('HINCRBY', KEYS[1], 'tries', 1)
local now, free = tonumber(ARGV[1]), tonumber(ARGV[2])
local base, max = tonumber(ARGV[3]), tonumber(ARGV[4])
if n > free then
  local until_ = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')
  if now < until_ then
    redis.call('HINCRBY', KEYS[1], 'tries', -1)
    return math.ceil(until_ - now)
  end
end
if n >= free then
  local delay = math.min(max, base * 2 ^ math.min(n - free, 62))
  redis.call('HSET', KEYS[1], 'until', tostring(now + delay))
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 0
"""

# A counter of attempts in a fixed window that refuses (without counting) once it holds `limit`.
# KEYS[1]: the counter; ARGV: limit, window. Returns the seconds to wait (0: counted, go ahead).
_COUNT_UNDER = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then
  local ttl = redis.call('TTL', KEYS[1])
  if ttl < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[2])
    ttl = tonumber(ARGV[2])
  end
  return math.max(1, ttl)
end
redis.call('INCR', KEYS[1])
if count == 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Un-count one hit: never below zero, and the window's expiry stays (a DECR of an expired key would
# make a counter that never expires).
_GIVE_BACK = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then
  redis.call('DECR', KEYS[1])
end
return 0
"""


def client_key(address: str) -> str:
    """Who a limit per client counts: the address, or an IPv6 address's /64 (one host or LAN holds
    a whole /64, so counting single addresses there would count nothing)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:32]


class LoginThrottle:
    """Sign-in limits, each counted before the password is checked (docs/architecture.md, "Limits and security").

    Per account and client: after free_attempts tries, each further try doubles the wait, up to
    max_s; keyed by account *and* client, so an attacker hammering an account from one place does
    not lock its owner out elsewhere, and forgotten after a quiet period. Per client across accounts
    (password spraying): `per_client` tries per window, a success giving its try back, so only
    failures add up.
    """

    def __init__(
        self, redis: RedisStore, per_client: WindowLimit, *, free_attempts: int, base_s: float, max_s: float
    ) -> None:
        self._redis = redis
        self._per_client = per_client
        self._free = free_attempts
        self._base = base_s
        self._max = max_s
        self._admit = redis.client.register_script(_ADMIT)

    def _account_key(self, email: str, client: str) -> str:
        return self._redis.key("login", _digest(email, client_key(client)))

    async def admit(self, email: str, client: str) -> tuple[int, str]:
        """Count one sign-in attempt: (seconds to wait, "client" or "account": which limit said so),
        or (0, "") when it may go on."""
        wait = await self._per_client.hit(client_key(client))
        if wait:
            return wait, "client"
        ttl = max(1, math.ceil(self._max * 2))
        args = [time.time(), self._free, self._base, self._max, ttl]
        wait = int(await self._admit(keys=[self._account_key(email, client)], args=args))
        if wait:
            await self._per_client.give_back(client_key(client))  # refused, so not tried
            return wait, "account"
        return 0, ""

    async def succeeded(self, email: str, client: str) -> None:
        await self._redis.client.delete(self._account_key(email, client))
        await self._per_client.give_back(client_key(client))

    async def forgive(self, email: str, client: str) -> None:
        """Lift the account's back-off for this client (a reset link was used from it)."""
        await self._redis.client.delete(self._account_key(email, client))


class WindowLimit:
    """At most `limit` hits per subject in a fixed window of `window_s` seconds; a hit past the
    limit is refused and not counted.

    Keys are hashed, so an email address or client address is never stored in Redis in clear.
    """

    def __init__(self, redis: RedisStore, name: str, *, limit: int, window_s: int) -> None:
        self._redis = redis
        self._name = name
        self._limit = limit
        self._window_s = window_s
        self._count_under = redis.client.register_script(_COUNT_UNDER)
        self._give_back = redis.client.register_script(_GIVE_BACK)

    def _key(self, subject: str) -> str:
        return self._redis.key("limit", self._name, _digest(subject))

    async def hit(self, subject: str) -> int:
        """Count one hit; 0 if it is within the limit, else the seconds until the window ends."""
        return int(await self._count_under(keys=[self._key(subject)], args=[self._limit, self._window_s]))

    async def give_back(self, subject: str) -> None:
        """Un-count a hit that turned out not to count (a sign-in that succeeded)."""
        await self._give_back(keys=[self._key(subject)])


class SingleUse:
    """Marks of secrets that work once (SSE tickets): the first use sets the mark, later ones find it."""

    def __init__(self, redis: RedisStore, name: str) -> None:
        self._redis = redis
        self._name = name

    async def first_use(self, token_id: str, ttl_s: int) -> bool:
        """True the first time token_id is seen within ttl_s (its lifetime), False ever after."""
        key = self._redis.key("used", self._name, token_id)
        return bool(await self._redis.client.set(key, b"1", nx=True, ex=max(1, ttl_s)))
