"""argon2id password hashing; the slow work runs off the event loop, a few at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from domain.core.errors import TooManyRequests

T = TypeVar("T")


class Passwords:
    """Hashes and verifies passwords with argon2id at the configured cost.

    Each hash takes the configured memory (64 MiB by default) and a core for a while, and sign-in and
    registration are open to anyone: at most `at_once` run together per process and at most
    `waiting` wait for their turn; past that a request is refused (429 `busy`) instead of queueing
    memory and CPU without bound."""

    def __init__(
        self, *, time_cost: int, memory_kib: int, parallelism: int, at_once: int = 2, waiting: int = 32
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        self._turns = asyncio.Semaphore(at_once)
        self._max_waiting = waiting
        self._waiting = 0
        # verified when the account does not exist, so both paths take the same time
        self._decoy = self._hasher.hash("decoy password that matches nothing")

    async def _in_turn(self, work: Callable[[], T]) -> T:
        if self._turns.locked() and self._waiting >= self._max_waiting:
            raise TooManyRequests(
                "the server is busy checking passwords; try again in a moment", retry_after_s=1, code="busy"
            )
        self._waiting += 1
        try:
            await self._turns.acquire()
        finally:
            self._waiting -= 1
        try:
            return await asyncio.to_thread(work)
        finally:
            self._turns.release()

    async def hash(self, password: str) -> str:
        return await self._in_turn(lambda: self._hasher.hash(password))

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        def check() -> bool:
            try:
                return bool(self._hasher.verify(stored_hash or self._decoy, password))
            except (VerificationError, InvalidHashError):
                return False

        return await self._in_turn(check)

    def needs_rehash(self, stored_hash: str) -> bool:
        return self._hasher.check_needs_rehash(stored_hash)
