"""Cursor pagination shapes shared by every list: {items, next_cursor}."""

from __future__ import annotations

from typing import Generic, TypeVar

import attrs

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@attrs.frozen
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def clamp_limit(limit: int | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    from domain.core.errors import InvalidInput

    if limit is None:
        return default
    if limit < 1 or limit > maximum:
        raise InvalidInput(
            f"limit must be between 1 and {maximum}",
            errors=[{"path": "$.limit", "message": f"must be between 1 and {maximum}"}],
        )
    return limit
