"""SQL over datasets: what a request asks and what it answers (docs/architecture.md, "SQL")."""

from __future__ import annotations

from typing import Literal

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
