"""The chaos test's short form (tests/chaos.py; `./labhub chaos` runs the long one): a kill every
few seconds, every target at least once, under five writers, then nothing lost, duplicated,
corrupted or stuck, no 500, and ready again."""

from __future__ import annotations

import pytest

from tests import chaos

pytestmark = pytest.mark.system

SEED = 20261206


@pytest.mark.timeout(900)
async def test_kill_everything_lose_nothing(tmp_path):
    report = await chaos.chaos(tmp_path / "data", minutes=0.6, seed=SEED, every_s=(2.0, 4.0))
    assert report.ok, report.text()
