"""What changed between two versions of a dataset (docs/architecture.md, "Versions"): the schema and
the statistics from what each version keeps; rows by key from DuckDB in the query lane (workers/diff.py)."""

from __future__ import annotations

from typing import Any

from domain.datasets.models import NUMBER_TYPES, ColumnSchema, finite_number
from domain.sql.models import ColumnChange, SchemaDiff, StatChange

DIFF_ROWS = 100  # of each kind (added, removed, changed): the first in key order
MAX_COMPARED_COLUMNS = 1000  # a changed row is looked for in at most this many columns


def _column(c: ColumnSchema) -> dict[str, Any]:
    return {"name": c.name, "type": c.type, "unit": c.unit}


def schema_diff(before: list[ColumnSchema], after: list[ColumnSchema]) -> SchemaDiff:
    old = {c.name: c for c in before}
    new = {c.name: c for c in after}
    return SchemaDiff(
        added=[_column(c) for c in after if c.name not in old],
        dropped=[_column(c) for c in before if c.name not in new],
        retyped=[ColumnChange(c.name, old[c.name].type, c.type) for c in after if c.name in old and old[c.name].type != c.type],
        units_changed=[
            ColumnChange(c.name, old[c.name].unit, c.unit) for c in after if c.name in old and old[c.name].unit != c.unit
        ],
    )  # fmt: skip


def stat_changes(
    before: dict[str, Any], after: dict[str, Any], columns: list[str]
) -> list[StatChange]:
    """Per column in both versions: its statistics then and now, and after − before of each number."""
    changes = []
    for name in columns:
        old, new = before.get(name) or {}, after.get(name) or {}
        delta = {}
        for key in old.keys() & new.keys():
            a, b = finite_number(old[key]), finite_number(new[key])
            if a is not None and b is not None:
                delta[key] = float(b) - float(a)
        changes.append(StatChange(name, old, new, delta))
    return changes


def comparison(before: ColumnSchema, after: ColumnSchema) -> dict[str, Any]:
    """How a column is compared across versions: as it is, as numbers, or as text."""
    if before.type == after.type:
        return {"name": after.name, "cast": None}
    if before.type in NUMBER_TYPES and after.type in NUMBER_TYPES:
        return {"name": after.name, "cast": "DOUBLE"}
    return {"name": after.name, "cast": "VARCHAR"}
