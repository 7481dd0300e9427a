"""Pieces shared by the three cattrs edges (settings, BSON, JSON)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def exactly(tp: type) -> Callable[[Any], bool]:
    """Match one type only: a hook registered for str must not catch str-based enums."""
    return lambda candidate: candidate is tp
