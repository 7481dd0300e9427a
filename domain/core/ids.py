"""Ids as the areas see them: 24 hex digits (MongoDB ObjectIds, which only the stores handle)."""

from __future__ import annotations

import hashlib
import re

from domain.core.errors import field_error

_ID = re.compile(r"^[0-9a-f]{24}$")


def looks_like_id(value: object) -> bool:
    return isinstance(value, str) and _ID.match(value) is not None


def derived_id(seed: str) -> str:
    """The same id for the same seed, every time (a retried job's outputs keep their ids)."""
    return hashlib.sha256(seed.encode()).digest()[:12].hex()


MAX_CITED = 100  # datasets a record or a document may cite


def check_dataset_ids(values: list[str], path: str = "$.dataset_ids") -> list[str]:
    """The datasets a record or a document cites (docs/architecture.md, "Lineage"): ids, each once."""
    for i, value in enumerate(values):
        if not looks_like_id(value):
            raise field_error(f"{path}[{i}]", "must be a dataset id (24 hexadecimal characters)")
    if len(values) > MAX_CITED:
        raise field_error(path, f"at most {MAX_CITED} datasets")
    return list(dict.fromkeys(values))
