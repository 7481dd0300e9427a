"""SQL over datasets: what a request asks and what it answers (docs/architecture.md, "SQL")."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import attrs

SqlFormat = Literal["json", "csv", "parquet", "arrow"]
MEDIA_TYPES: dict[str, SqlFormat] = {
    "application/json": "json",
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/vnd.apache.arrow.stream": "arrow",
}


@attrs.frozen
class SqlRequest:
    """POST /api/sql. project_id: its tables answer without the project part too; limit: rows in the
    answer (more: truncated); format: json (default), csv, parquet or arrow (Arrow IPC stream), or
    from the Accept header."""

    sql: str
    project_id: str | None = None
    limit: int | None = None
    format: SqlFormat | None = None


@attrs.frozen
class SqlColumn:
    name: str
    type: str


@attrs.frozen
class SqlResult:
    """The JSON answer: rows are arrays in the order of columns."""

    columns: list[SqlColumn]
    rows: list[list[object]]
    row_count: int
    truncated: bool
    elapsed_ms: float


@attrs.frozen
class SqlAnswer:
    """An answer as the worker encoded it, in the format asked for."""

    body: bytes
    content_type: str
    format: SqlFormat
    rows: int
    truncated: bool
    elapsed_ms: float


@attrs.frozen
class SavedQuery:
    """POST /api/projects/{pid}/datasets: run a query as a job and keep its result as a dataset."""

    from_sql: str
    name: str
    dataset_type: str | None = None
    tag: str | None = None


@attrs.frozen
class DiffQuery:
    """GET /api/datasets/{id}/diff. from, to: version numbers (default: the version before the
    latest, and the latest); key: comma-separated key columns for this comparison (default: the
    dataset's key_columns; none: no row comparison)."""

    from_: int | None = None
    to: int | None = None
    key: str | None = None


@attrs.frozen
class DiffSide:
    version: int
    version_id: str
    row_count: int
    source_name: str
    created_at: datetime


@attrs.frozen
class ColumnChange:
    """A column kept under its name whose type or unit changed."""

    name: str
    before: str | None
    after: str | None


@attrs.frozen
class SchemaDiff:
    added: list[dict[str, Any]]  # {name, type, unit} of the newer version
    dropped: list[dict[str, Any]]  # {name, type, unit} of the older version
    retyped: list[ColumnChange]
    units_changed: list[ColumnChange]


@attrs.frozen
class StatChange:
    """A column in both versions: each statistic before and after, and the difference of numbers."""

    column: str
    before: dict[str, Any]
    after: dict[str, Any]
    delta: dict[str, float]


@attrs.frozen
class RowChanges:
    count: int
    rows: list[dict[str, Any]]


@attrs.frozen
class KeyedDiff:
    """Rows compared by key: added and removed rows as the versions hold them; changed rows as their
    key and, per changed column, [before, after]. error: why rows could not be compared."""

    keys: list[str]
    added: RowChanges | None = None
    removed: RowChanges | None = None
    changed: RowChanges | None = None
    compared_columns: int = 0
    error: dict[str, str] | None = None


@attrs.frozen
class DatasetDiff:
    dataset_id: str
    from_version: DiffSide
    to_version: DiffSide
    schema: SchemaDiff
    row_count_delta: int
    stats: list[StatChange]
    rows: KeyedDiff | None = None  # None: the dataset declares no key columns and none were asked for
    elapsed_ms: float = 0.0
