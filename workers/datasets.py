"""Reading stored datasets back: pages of rows and CSV chunks, one Parquet row group at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq

from workers.ingest.common import json_safe

# a CSV cell starting with one of these is a formula to a spreadsheet: exports neutralise it with a '
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def read_rows(
    path: Path, offset: int, limit: int, columns: list[str] | None
) -> tuple[list[str], list[dict[str, Any]], int]:
    """Rows [offset, offset + limit) of the chosen columns, reading only the row groups that hold them."""
    parquet = pq.ParquetFile(str(path))
    metadata = parquet.metadata
    names = columns or parquet.schema_arrow.names
    rows: list[dict[str, Any]] = []
    start = 0
    for group in range(metadata.num_row_groups):
        size = metadata.row_group(group).num_rows
        end = start + size
        if end > offset and start < offset + limit:
            table = parquet.read_row_group(group, columns=names)
            first = max(0, offset - start)
            wanted = table.slice(first, offset + limit - start - first)
            rows.extend({k: json_safe(v) for k, v in row.items()} for row in wanted.to_pylist())
        if end >= offset + limit:
            break
        start = end
    return names, rows, metadata.num_rows


def row_groups(path: Path, columns: list[str] | None = None) -> Iterator[list[list[Any]]]:
    """Every row (of the chosen columns), as lists in column order, one row group at a time."""
    parquet = pq.ParquetFile(str(path))
    for group in range(parquet.metadata.num_row_groups):
        table = parquet.read_row_group(group, columns=columns)
        values = [column.to_pylist() for column in table.columns]
        yield [list(row) for row in zip(*values, strict=True)]


def write_csv(path: Path, out: Path) -> None:
    """The whole Parquet file as CSV (a header, then every row as stored: an archive's copy, not the
    formula-safe download), a row group at a time."""
    import csv
    import io

    import pyarrow.csv as pacsv

    parquet = pq.ParquetFile(str(path))
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(parquet.schema_arrow.names)  # quoted only where needed
    with out.open("wb") as sink:
        for chunk in _csv_chunks(parquet, header.getvalue().encode(), pacsv):
            sink.write(chunk)


def _csv_chunks(parquet: pq.ParquetFile, header: bytes, pacsv: Any) -> Iterator[bytes]:
    yield header
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    for group in range(parquet.metadata.num_row_groups):
        buffer = pa.BufferOutputStream()
        pacsv.write_csv(parquet.read_row_group(group), buffer, options)
        yield buffer.getvalue().to_pybytes()


def write_columns(path: Path, out: Path, columns: list[str] | None, fmt: str) -> None:
    """The chosen columns as a Parquet file or an Arrow IPC stream, a row group at a time (only those
    columns are read)."""
    parquet = pq.ParquetFile(str(path))
    full = parquet.schema_arrow
    schema = full if not columns else pa.schema([full.field(c) for c in columns])
    with out.open("wb") as sink:
        writer: Any = (
            pa.ipc.new_stream(sink, schema) if fmt == "arrow"
            else pq.ParquetWriter(sink, schema, compression="zstd", compression_level=1)
        )  # fmt: skip
        try:
            for group in range(parquet.metadata.num_row_groups):
                writer.write_table(parquet.read_row_group(group, columns=columns))
        finally:
            writer.close()


def column_names(path: Path) -> list[str]:
    return list(pq.ParquetFile(str(path)).schema_arrow.names)
