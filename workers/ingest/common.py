"""What every format shares: column names and units, header detection, limits, and the builder
that turns a stream of record batches into Parquet, statistics, a sample and warnings."""

from __future__ import annotations

import math
import queue
import re
import threading
from collections.abc import Iterator, Sequence
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import attrs
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from workers.stats import TableStats
from workers.summary import SummaryBuilder
from workers.worker import JobFailed, Reporter

SAMPLE_ROWS = 20
WRITER_STACK_BYTES = 1024 * 1024
MAX_WARNING_EXAMPLES = 5
_UNIT = re.compile(r"^(?P<name>.*?)\s*[\[(](?P<unit>[^\[\]()]{1,32})[\])]\s*$")
_NUMBER = re.compile(r"^[+-]?(\d+([.,]\d*)?|[.,]\d+)([eE][+-]?\d+)?$")


@attrs.frozen
class Limits:
    max_columns: int = 2000
    max_cell_bytes: int = 1024 * 1024
    max_uncompressed_bytes: int = 1024**3
    max_zip_entries: int = 10_000
    max_compression_ratio: float = 200.0
    block_bytes: int = 2 * 1024 * 1024
    stats_values: int = 4_000_000  # float64 values kept for exact quantiles (32 MB)

    @classmethod
    def from_params(cls, raw: dict[str, Any] | None) -> Limits:
        fields = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in (raw or {}).items() if k in fields})


BATCH_BYTES = 32 * 1024 * 1024  # what one batch of an array format holds at most, however wide the rows


def batch_rows(row_bytes: int, most: int = 200_000) -> int:
    """Rows per batch for rows of this many bytes: wide tables read fewer rows at a time."""
    return max(1, min(most, BATCH_BYTES // max(1, row_bytes)))


def summary_file(path: Path) -> Path:
    """Where a dataset's summary is written beside its Parquet file (not *.parquet: the follower
    uploads those as datasets)."""
    return path.with_suffix(".summary")


def done_marker(path: Path) -> Path:
    return path.with_name(path.name + ".done")


def limit_exceeded(message: str) -> JobFailed:
    return JobFailed("limit_exceeded", message)


def is_number(text: str) -> bool:
    return bool(_NUMBER.match(text.strip()))


def split_unit(name: str) -> tuple[str, str | None]:
    """'Velocity [m/s]' -> ('Velocity [m/s]', 'm/s'); the name is kept as written."""
    match = _UNIT.match(name)
    return (name, match.group("unit").strip()) if match and match.group("name") else (name, None)


def clean_names(raw: Sequence[Any]) -> list[str]:
    """Column names as users will see them: trimmed, never empty, never twice."""
    names: list[str] = []
    seen: set[str] = set()
    for index, value in enumerate(raw, start=1):
        name = " ".join(str(value).split()) if value is not None else ""
        name = name[:200] or f"column_{index}"
        candidate, n = name, 2
        while candidate in seen:
            candidate, n = f"{name}_{n}", n + 1
        seen.add(candidate)
        names.append(candidate)
    return names


def json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return str(value)


class Warnings:
    """Counted problems with a few examples each, for the dataset's `warnings`."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {}

    def add(self, code: str, message: str, example: Any = None, count: int = 1) -> None:
        entry = self._entries.setdefault(code, {"code": code, "message": message, "count": 0, "examples": []})
        entry["count"] += count
        if example is not None and len(entry["examples"]) < MAX_WARNING_EXAMPLES:
            entry["examples"].append(json_safe(example))

    def result(self) -> list[dict[str, Any]]:
        return list(self._entries.values())


INCOMPRESSIBLE = 0.9  # a column whose first batch zstd leaves at more than this of its size is stored plain
PROBE_VALUES = 65_536  # of the first batch, the values zstd is tried on
MIN_PROBE_VALUES = 4_096  # fewer tell nothing (and their file is small): zstd


def zstd_pays(column: pa.Array) -> bool:
    """Whether zstd shrinks this column enough to pay for its time: tried on the first values of a
    floating-point column (other types: always; their values repeat more often than not)."""
    if not pa.types.is_floating(column.type) or len(column) < MIN_PROBE_VALUES:
        return True
    values = column.slice(0, PROBE_VALUES)
    width = int(values.type.bit_width) // 8
    size = len(values) * width
    packed: bytes = pa.compress(values.buffers()[1].slice(values.offset * width, size), "zstd", asbytes=True)
    return len(packed) <= INCOMPRESSIBLE * size


class DatasetBuilder:
    """Receives record batches of one schema; writes Parquet, keeps stats and the first rows.

    Parsing (the caller) and the statistics and Parquet writing (a thread of this builder) overlap:
    both spend most of their time in C code that releases the GIL, so with two cores a file is
    read in about the time of the slower of the two. At most QUEUE_BATCHES batches wait between
    them, which bounds the memory.
    """

    QUEUE_BATCHES = 4
    # a wide table's batches hold few rows: they are joined up to about this many cells first, so that
    # the per-column work (statistics, Parquet column chunks) runs per this many cells, not per batch,
    # and the file keeps a few row groups instead of one per handful of rows
    MIN_BATCH_CELLS = 2_000_000
    MIN_BATCH_ROWS = 8192  # a batch this long goes as it is (a narrow table's batches are never joined)

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        limits: Limits,
        reporter: Reporter,
        *,
        stage: str = "parse",
        units: dict[str, str] | None = None,
    ) -> None:
        if len(schema) > limits.max_columns:
            raise limit_exceeded(
                f"the data has {len(schema)} columns; at most {limits.max_columns} are accepted"
            )
        self.path = path
        self.schema = schema
        self.limits = limits
        self.reporter = reporter
        self.stage = stage
        self.units = units or {}  # from a units row or the format's attributes; else from the name
        self.rows = 0
        self.stats = TableStats(schema, limits.stats_values)
        self.summary = SummaryBuilder(schema)  # the min/max levels the series route reads
        self.sample: list[dict[str, Any]] = []
        # dictionaries pay off for repeated text; for measurements (mostly distinct numbers) they cost
        # a failed attempt per column chunk, which doubled the writing time here
        text = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        self._text = text
        self._writer: pq.ParquetWriter | None = None  # opened at the first batch (its codecs: _open)
        self._queue: queue.Queue[tuple[pa.RecordBatch, float | None, float | None] | None] = queue.Queue(
            self.QUEUE_BATCHES
        )
        self._failure: BaseException | None = None
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._pending_at: tuple[float | None, float | None] = (None, None)
        self._thread = threading.Thread(target=self._consume, name="dataset-writer", daemon=True)
        previous = threading.stack_size(WRITER_STACK_BYTES)  # address space counts against RLIMIT_AS
        try:
            self._thread.start()
        finally:
            threading.stack_size(previous)

    def add(self, batch: pa.RecordBatch, *, done: float | None = None, total: float | None = None) -> None:
        if self._failure is not None:
            raise self._failure
        if not batch.num_rows:
            return
        self._pending.append(batch)
        self._pending_rows += batch.num_rows
        self._pending_at = (done, total)
        if (
            self._pending_rows >= self.MIN_BATCH_ROWS
            or self._pending_rows * max(1, batch.num_columns) >= self.MIN_BATCH_CELLS
        ):
            self._hand_over()

    def _hand_over(self) -> None:
        if not self._pending:
            return
        pending, (done, total) = self._pending, self._pending_at
        self._pending, self._pending_rows = [], 0
        batch = pending[0] if len(pending) == 1 else pa.concat_batches(pending)
        self._queue.put((batch, done, total))

    def _consume(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._failure is not None:
                continue  # drain: the producer learns of the failure at its next add
            try:
                self._take(*item)
            except BaseException as exc:  # noqa: BLE001 - handed to the parsing thread, which raises it
                self._failure = exc

    def _take(self, batch: pa.RecordBatch, done: float | None, total: float | None) -> None:
        for name in self._text:
            longest = pc.max(pc.binary_length(batch.column(name))).as_py()
            if longest is not None and longest > self.limits.max_cell_bytes:
                raise limit_exceeded(
                    f"a cell in column {name!r} holds {longest} bytes; at most {self.limits.max_cell_bytes} are accepted"
                )
        if self._writer is None:
            self._writer = self._open(batch)
        self._writer.write_batch(batch)
        self.stats.update(batch)
        self.summary.add(batch)
        if len(self.sample) < SAMPLE_ROWS:
            head = batch.slice(0, SAMPLE_ROWS - len(self.sample)).to_pylist()
            self.sample.extend({k: json_safe(v) for k, v in row.items()} for row in head)
        self.rows += batch.num_rows
        self.reporter.progress(
            self.stage, done if done is not None else self.rows, total, f"{self.rows} rows"
        )

    def _open(self, first: pa.RecordBatch | None) -> pq.ParquetWriter:
        """The Parquet file, each column compressed with zstd unless its first batch shows that it
        hardly compresses: noisy measurements (floats whose low bytes are all noise) shrink by a few
        per cent at twice the writing time, so such a column is stored plain (zstd_pays)."""
        codecs = {
            field.name: "zstd" if first is None or zstd_pays(first.column(i)) else "none"
            for i, field in enumerate(self.schema)
        }
        return pq.ParquetWriter(
            str(self.path), self.schema, compression=codecs,
            compression_level={name: 1 for name, codec in codecs.items() if codec == "zstd"},
            use_dictionary=self._text or False,
        )  # fmt: skip

    def _drain(self) -> None:
        self._hand_over()
        self._queue.put(None)
        self._thread.join()
        if self._failure is not None:
            raise self._failure

    def finish(self) -> dict[str, Any]:
        self._drain()
        self.reporter.progress("stats", 0, 1, "finishing statistics")
        stats = self.stats.result()
        self.reporter.progress("write", 0, 1, "closing the Parquet file")
        (self._writer or self._open(None)).close()
        summary = self.summary.finish()
        summary_path = summary_file(self.path)
        pq.write_table(summary, str(summary_path), compression="zstd")
        done_marker(self.path).touch()  # the server may upload the file while it grows; this says it is whole
        schema = []
        for field in self.schema:
            name, unit = split_unit(field.name)
            schema.append({"name": name, "type": type_name(field.type), "unit": self.units.get(name) or unit})
        return {
            "parquet_path": str(self.path),
            "row_count": self.rows,
            "schema": schema,
            "stats": stats,
            "sample": self.sample,
            "summary_path": str(summary_path),
            "sorted_columns": [split_unit(n)[0] for n in self.summary.columns if self.summary.sorted[n]],
        }

    def abort(self) -> None:
        try:
            if self._thread.is_alive():
                self._failure = self._failure or JobFailed("aborted", "stopped")
                self._queue.put(None)
                self._thread.join()
            if self._writer is not None:
                self._writer.close()
        finally:
            self.path.unlink(missing_ok=True)
            summary_file(self.path).unlink(missing_ok=True)


def build_dataset(
    out: Path,
    names: list[str],
    batches: Iterator[tuple[list[pa.Array], int, int]],
    limits: Limits,
    reporter: Reporter,
    *,
    units: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A dataset from batches of columns ((arrays, rows done, rows in all)), its schema taken from
    the first batch; a later batch's column that came out narrower is cast to it."""
    builder: DatasetBuilder | None = None
    try:
        for arrays, done, total in batches:
            if builder is None:
                schema = pa.schema([pa.field(n, a.type) for n, a in zip(names, arrays, strict=True)])
                builder = DatasetBuilder(out, schema, limits, reporter, units=units)
            columns = [
                a if a.type == f.type else a.cast(f.type) for a, f in zip(arrays, builder.schema, strict=True)
            ]
            builder.add(pa.RecordBatch.from_arrays(columns, schema=builder.schema), done=done, total=total)
        if builder is None:
            raise JobFailed("no_tabular_data", "the table has no rows")
        return builder.finish()
    except BaseException:
        if builder is not None:
            builder.abort()
        raise


def type_name(data_type: pa.DataType) -> str:
    if pa.types.is_integer(data_type):
        return "integer"
    if pa.types.is_floating(data_type) or pa.types.is_decimal(data_type):
        return "number"
    if pa.types.is_boolean(data_type):
        return "boolean"
    if pa.types.is_timestamp(data_type):
        return "datetime"
    if pa.types.is_date(data_type):
        return "date"
    if pa.types.is_time(data_type):
        return "time"
    return "text"
