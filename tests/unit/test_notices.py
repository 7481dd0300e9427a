"""The licence and the third-party notices stay true: every package the lock file installs is
listed with its version and licence, and every vendored browser file has its licence beside it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_locked_package_is_in_the_notices():
    locked = {
        (m.group(1).lower(), m.group(2))
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if (m := re.match(r"^([A-Za-z0-9_.\-]+)==([^\s\\;]+)", line))
    }
    listed = {
        (cells[0].lower(), cells[1])
        for line in (ROOT / "THIRD_PARTY_NOTICES.md").read_text().splitlines()
        if line.startswith("| ")
        and len(cells := [c.strip() for c in line.strip("|").split("|")]) == 4
        and cells[3] in {"run", "test"}
    }
    assert locked - listed == set(), "packages in requirements.lock missing from THIRD_PARTY_NOTICES.md"
    assert listed - locked == set(), "THIRD_PARTY_NOTICES.md lists packages the lock no longer installs"
    assert all("|  |" not in line for line in (ROOT / "THIRD_PARTY_NOTICES.md").read_text().splitlines())


def test_the_project_and_its_vendored_code_carry_their_licences():
    assert "Apache License" in (ROOT / "LICENSE").read_text()
    vendor = ROOT / "web" / "vendor"
    notices = (ROOT / "THIRD_PARTY_NOTICES.md").read_text()
    for code in sorted(vendor.glob("*.js")):
        if code.name == "tus.js":  # our own two lines around tus.min.js
            continue
        assert f"`{code.name}`" in notices, code.name
    for licence in re.findall(r"web/vendor/(LICENSE\.[\w-]+)", notices):
        assert (vendor / licence).read_text().strip(), licence
