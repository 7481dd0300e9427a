"""SingleFlight: callers that ask while a run is under way share it, its error too; later callers run again."""

from __future__ import annotations

import asyncio

import pytest

from domain.core.flight import SingleFlight


async def test_callers_share_one_run_and_its_error():
    flight: SingleFlight[str, int] = SingleFlight()
    runs = 0
    gate = asyncio.Event()

    async def make() -> int:
        nonlocal runs
        runs += 1
        await gate.wait()
        return runs

    waiting = [asyncio.create_task(flight.run("k", make)) for _ in range(5)]
    await asyncio.sleep(0)
    assert flight.running("k") is not None
    gate.set()
    assert await asyncio.gather(*waiting) == [1] * 5
    assert runs == 1
    assert flight.running("k") is None
    assert await flight.run("k", make) == 2  # a later caller runs again

    async def fail() -> int:
        await asyncio.sleep(0)
        raise ValueError("broken")

    failing = [asyncio.create_task(flight.run("bad", fail)) for _ in range(3)]
    for outcome in await asyncio.gather(*failing, return_exceptions=True):
        assert isinstance(outcome, ValueError)
    with pytest.raises(ValueError, match="broken"):
        await flight.run("bad", fail)
