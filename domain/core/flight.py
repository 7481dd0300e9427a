"""One run per key at a time: callers that ask while it runs share its result (or its error)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class SingleFlight(Generic[K, T]):
    def __init__(self) -> None:
        self._running: dict[K, asyncio.Future[T]] = {}

    def running(self, key: K) -> asyncio.Future[T] | None:
        """The run under way for key (await it shielded), if there is one."""
        return self._running.get(key)

    async def run(self, key: K, make: Callable[[], Awaitable[T]]) -> T:
        if key in self._running:
            return await asyncio.shield(self._running[key])
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._running[key] = done
        try:
            value = await make()
            done.set_result(value)
            return value
        except BaseException as exc:
            done.set_exception(exc)
            done.exception()  # retrieved here: waiters get their own error
            raise
        finally:
            self._running.pop(key, None)
