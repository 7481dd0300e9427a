"""Ids as the areas see them: 24 hex digits (MongoDB ObjectIds, which only the stores handle)."""

from __future__ import annotations

import hashlib
import re

_ID = re.compile(r"^[0-9a-f]{24}$")


def looks_like_id(value: object) -> bool:
    return isinstance(value, str) and _ID.match(value) is not None


def derived_id(seed: str) -> str:
    """The same id for the same seed, every time (a retried job's outputs keep their ids)."""
    return hashlib.sha256(seed.encode()).digest()[:12].hex()
