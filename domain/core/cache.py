"""A small in-process cache with a time to live, for what every request looks up (users, projects).

Each entry lives `ttl_s` at most; writes through this instance forget their entry at once, other
instances see a change within `ttl_s`. Bounded in size: the oldest entries go first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, ttl_s: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl_s
        self._max = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        if self._ttl <= 0:
            return None
        found = self._entries.get(key)
        if found is None:
            return None
        expires, value = found
        if expires < time.monotonic():
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V, *, ttl_s: float | None = None) -> None:
        """ttl_s: a shorter life for this entry (never longer than the cache's own)."""
        life = self._ttl if ttl_s is None else min(self._ttl, ttl_s)
        if life <= 0:
            return
        self._entries[key] = (time.monotonic() + life, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def replace(self, key: K, value: V) -> None:
        """A new value for a live entry, which keeps its expiry (nothing happens to a missing one)."""
        found = self._entries.get(key)
        if found is not None and found[0] >= time.monotonic():
            self._entries[key] = (found[0], value)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
