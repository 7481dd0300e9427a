"""Device logins on their way (Redis, gone after `device_login.ttl_s`): a hash per device code (kept
under the code's SHA-256, never the code), and the short user code pointing at it. Every change of
state is one Lua script, so an approval, a denial and the client's poll cannot cross."""

from __future__ import annotations

from typing import Any

from domain.infra.redis_store import RedisStore, text

# KEYS[1]: the login's hash; ARGV: the state it must be in, the state it goes to, then field/value
# pairs to set. Returns 1 when it moved, 0 when it was in another state (or is gone).
_MOVE = """
if redis.call('HGET', KEYS[1], 'status') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""

# The client's poll. KEYS[1]: the login's hash; ARGV: now (ms), the interval (ms). Returns the state,
# or "slow_down" when polled again within the interval (which then counts from now: RFC 8628 §3.5),
# or "gone". An approved login is taken here: that poll gets "granted", any later one "used".
_POLL = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 'gone' end
local now, interval = tonumber(ARGV[1]), tonumber(ARGV[2])
local last = tonumber(redis.call('HGET', KEYS[1], 'polled_ms') or '0')
redis.call('HSET', KEYS[1], 'polled_ms', ARGV[1])
if now - last < interval then return 'slow_down' end
local status = redis.call('HGET', KEYS[1], 'status')
if status == 'approved' then
  redis.call('HSET', KEYS[1], 'status', 'used')
  return 'granted'
end
return status
"""


class DeviceLoginStore:
    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis
        self._move = redis.client.register_script(_MOVE)
        self._poll = redis.client.register_script(_POLL)

    def _login(self, code_hash: str) -> str:
        return self._redis.key("device-login", code_hash)

    def _user_code(self, user_code: str) -> str:
        return self._redis.key("device-user-code", user_code)

    async def insert(self, code_hash: str, user_code: str, fields: dict[str, str], ttl_s: int) -> bool:
        """False when the user code is taken (the caller draws another)."""
        if not await self._redis.client.set(self._user_code(user_code), code_hash, nx=True, ex=ttl_s):
            return False
        async with self._redis.client.pipeline(transaction=True) as pipe:
            record: dict[str | bytes, str | bytes] = {"status": "pending", "user_code": user_code}
            record.update(fields)
            pipe.hset(self._login(code_hash), mapping=record)  # type: ignore[arg-type]
            pipe.expire(self._login(code_hash), ttl_s)
            await pipe.execute()
        return True

    async def by_user_code(self, user_code: str) -> tuple[str, dict[str, str]] | None:
        raw = await self._redis.client.get(self._user_code(user_code))
        if raw is None:
            return None
        code_hash = text(raw)
        found = await self.get(code_hash)
        return (code_hash, found) if found else None

    async def get(self, code_hash: str) -> dict[str, str] | None:
        raw = await self._redis.client.hgetall(self._login(code_hash))
        return {text(k): text(v) for k, v in raw.items()} or None

    async def move(self, code_hash: str, from_status: str, to_status: str, **fields: str) -> bool:
        args: list[Any] = [from_status, to_status]
        for key, value in fields.items():
            args += [key, value]
        return bool(await self._move(keys=[self._login(code_hash)], args=args))

    async def poll(self, code_hash: str, now_ms: int, interval_ms: int) -> str:
        status = await self._poll(keys=[self._login(code_hash)], args=[now_ms, interval_ms])
        return text(status)
