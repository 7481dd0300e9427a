"""Schemathesis on the real server, as a head and as a student, with real ids: a short seeded pass
(tests/fuzz.py has the details; `./labhub fuzz` runs a longer pass with a random seed)."""

from __future__ import annotations

import pytest

from tests import fuzz

pytestmark = pytest.mark.system

SEED = 20261130


@pytest.mark.timeout(600)
def test_schemathesis_finds_no_server_error_and_no_disagreement_with_the_document(capsys):
    status = fuzz.main(["--seed", str(SEED), "--max-examples", "15"])
    report = capsys.readouterr().out
    assert status == 0, report[-30000:]
    assert report.count("generated,") == 4, "two roles, two passes each"
