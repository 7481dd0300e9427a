"""A chart's series from a dataset's summary (workers/summary.py) and, at the edges, its raw rows.

A range of rows [r0, r1) is answered from the finest summary level whose whole buckets inside the range
are few (at most BUCKETS_PER_POINT per point asked for), those buckets joined into at most `points`
groups; the part of the range before the first whole bucket and after the last is one group each,
reduced from level-0 buckets and at most 2 × 1,024 raw rows read from the Parquet file. Each group
gives its lowest and highest value at the x where they occur, in row order: at most 2 × points values
per series whose per-group extremes are exactly the data's at any zoom. A range of no more rows than
2 × points is answered with its raw rows (no more values than groups would give), and one of up to RAW_ROWS_PER_POINT rows per point is grouped
from its raw rows (finer than the summary's buckets). The work does not grow with the dataset: a few thousand buckets
and a few thousand raw rows per series (docs/architecture.md, "Series").
"""

from __future__ import annotations

import base64
import json
import math
import threading
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import ipc

from workers.summary import (
    BASE_ROWS,
    FANOUT,
    MAX_COLUMNS,
    SummaryBuilder,
    as_numbers,
    at_rows,
    is_time,
    merge,
    reduce_rows,
)
from workers.worker import Reporter

MAX_POINTS = 4000
BUCKETS_PER_POINT = 16
# up to this many rows per point a range is grouped from its raw rows (the summary's buckets of 1,024
# rows would give fewer groups than points); past it the summary's buckets are at least points / 4
RAW_ROWS_PER_POINT = 256
ROW = None  # the x of a dataset without a sorted column: the row number
RAW_GROUPS_KEPT = 16  # row groups' columns kept per dataset for the edges of the next zoom


class RowsNeeded(Exception):
    """The answer needs raw rows and the Parquet file is not attached yet (attach_rows, then ask again)."""


class SeriesError(ValueError):
    """A request the data cannot answer: the field it is about and a message for people."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class SeriesSource:
    """One dataset's summary levels, read once, and its Parquet file for raw rows. Thread-safe."""

    def __init__(self, summary_path: Path, parquet_path: Path | None = None) -> None:
        self._summary = pq.ParquetFile(str(summary_path))
        meta = json.loads(self._summary.schema_arrow.metadata[b"labhub.summary"])
        self.rows: int = meta["rows"]
        self.columns: list[str] = meta["columns"]
        self.sorted: set[str] = set(meta["sorted"])
        self.x: str | None = meta.get("x")
        self.exact_x: str | None = meta.get("exact_x")
        self.schema = ipc.read_schema(pa.py_buffer(base64.b64decode(meta["schema"])))  # the summarised columns
        self._lock = threading.Lock()
        self._summary_columns: dict[str, np.ndarray] = {}
        levels = self._read("level")
        self._level_starts = np.searchsorted(levels, np.arange((levels.max() + 2) if len(levels) else 1))
        self._parquet: pq.ParquetFile | None = None
        self._group_starts = np.zeros(1, dtype=np.int64)
        self._groups: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()
        if parquet_path is not None:
            self.attach_rows(parquet_path)

    def attach_rows(self, parquet_path: Path) -> None:
        """The dataset's Parquet file, for the raw rows a zoom needs (a full view needs none)."""
        parquet = pq.ParquetFile(str(parquet_path))
        metadata = parquet.metadata
        starts = np.cumsum([0] + [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)])
        with self._lock:
            self._group_starts, self._parquet = starts, parquet

    @property
    def has_rows(self) -> bool:
        return self._parquet is not None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._summary_columns.values()) + sum(
            a.nbytes for a in self._groups.values()
        )

    # -- reading -------------------------------------------------------------------------------------

    def _read(self, column: str) -> np.ndarray:
        with self._lock:
            if column not in self._summary_columns:
                table = self._summary.read(columns=[column])
                self._summary_columns[column] = table.column(0).to_numpy()
            return self._summary_columns[column]

    def level(self, number: int, column: str) -> np.ndarray:
        values = self._read(column)
        return values[self._level_starts[number] : self._level_starts[number + 1]]

    @property
    def depth(self) -> int:
        return len(self._level_starts) - 1

    def raw(self, column: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of a column as float64 (times in nanoseconds), NaN for gaps."""
        if stop <= start:
            return np.empty(0)
        first = int(np.searchsorted(self._group_starts, start, side="right")) - 1
        last = int(np.searchsorted(self._group_starts, stop - 1, side="right")) - 1
        pieces = []
        for group in range(first, last + 1):
            values = self._group(group, column)
            begin = self._group_starts[group]
            pieces.append(values[max(start - begin, 0) : stop - begin])
        return np.concatenate(pieces) if len(pieces) != 1 else pieces[0]

    def _group(self, group: int, column: str) -> np.ndarray:
        key = (group, column)
        with self._lock:
            if key in self._groups:
                self._groups.move_to_end(key)
                return self._groups[key]
            parquet = self._parquet
        if parquet is None:
            raise RowsNeeded()
        values = as_numbers(parquet.read_row_group(group, columns=[column]).column(0))
        with self._lock:
            self._groups[key] = values
            while len(self._groups) > RAW_GROUPS_KEPT:
                self._groups.popitem(last=False)
        return values

    def extent(self, x: str | None) -> np.ndarray:
        """The dataset's first and last x (the row numbers 0 and rows - 1 without an x column)."""
        if not self.rows:
            return np.array([np.nan, np.nan])
        if x is ROW:
            return np.array([0.0, self.rows - 1.0])
        if x in self.columns:
            return np.array([self.level(0, f"{x}|first")[0], self.level(0, f"{x}|last")[-1]])
        return np.array([np.nan, np.nan])

    # -- answering -----------------------------------------------------------------------------------

    def check(self, x: str | None, ys: list[str], known: set[str]) -> None:
        """known: every column of the dataset (the summary has only its numbers and times)."""
        for name in [*([x] if x is not None else []), *ys]:
            if name not in known:
                raise SeriesError("x" if name == x else "y", f"unknown column {name!r}")
        if x is not None and x not in self.columns:
            raise SeriesError("x", f"column {x!r} holds neither numbers nor times, so it cannot be an x")
        if x is not None and x not in self.sorted:
            raise SeriesError("x", f"column {x!r} is not monotonic (it decreases or has gaps), so it cannot be an x; "
                              "choose a column that never decreases, or none for the row number")  # fmt: skip
        if not ys:
            raise SeriesError("y", "the dataset has no columns of numbers to draw")
        for name in ys:
            if name in self.columns and is_time(self.schema.field(name)):
                raise SeriesError("y", f"column {name!r} holds times, not numbers, so it cannot be drawn as a y")
            if name not in self.columns:
                raise SeriesError("y", f"column {name!r} has no summary to draw it from: only the first "
                                  f"{MAX_COLUMNS} columns of numbers and times of a dataset have one")  # fmt: skip

    def row_range(self, x: str | None, low: float | None, high: float | None) -> tuple[int, int]:
        """[r0, r1): the rows whose x is within [low, high]."""
        if x is ROW:
            start = 0 if low is None else min(max(math.ceil(low), 0), self.rows)
            stop = self.rows if high is None else min(max(math.floor(high) + 1, 0), self.rows)
            return start, max(start, stop)
        lasts = self.level(0, f"{x}|last")
        start = 0 if low is None else self._first_row(x, lasts, low, "left")
        stop = self.rows if high is None else self._first_row(x, lasts, high, "right")
        return start, max(start, stop)

    def _first_row(self, x: str, lasts: np.ndarray, value: float, side: str) -> int:
        """The first row whose x is >= value (side left) or > value (side right)."""
        bucket = int(np.searchsorted(lasts, value, side=side))  # type: ignore[call-overload]
        if bucket >= len(lasts):
            return self.rows
        begin = bucket * BASE_ROWS
        inside = self.raw(x, begin, min(begin + BASE_ROWS, self.rows))
        return begin + int(np.searchsorted(inside, value, side=side))  # type: ignore[call-overload]

    def answer(
        self, x: str | None, ys: list[str], low: float | None, high: float | None, points: int, known: set[str],
        *, ends: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        """{source, series: [{name, x, y}]} with x and y as float64 arrays (NaN in y: a gap); known:
        every column of the dataset. RowsNeeded: attach the Parquet file and ask again."""
        self.check(x, ys, known)
        start, stop = self.row_range(x, low, high)
        if stop - start <= 2 * points:  # every row: no more values than a grouped answer may have
            xs = self._x_raw(x, start, stop)
            return {"source": "raw", "rows": (start, stop),
                    "series": [{"name": y, "x": xs, "y": self.raw(y, start, stop)} for y in ys]}  # fmt: skip
        if stop - start <= RAW_ROWS_PER_POINT * points:  # finer than the summary's buckets
            xs = self._x_raw(x, start, stop)
            return {"source": "summary", "rows": (start, stop),
                    "series": [self._grouped(xs, y, start, stop, points, ends) for y in ys]}  # fmt: skip
        return {"source": "summary", "rows": (start, stop),
                "series": [self._summarised(x, y, start, stop, points, ends) for y in ys]}  # fmt: skip

    def _grouped(self, xs: np.ndarray, y: str, start: int, stop: int, points: int, ends: bool) -> dict[str, Any]:
        """Rows [start, stop) cut into points groups of equal rows, reduced from the raw rows."""
        values = self.raw(y, start, stop)
        begins = np.unique(np.linspace(0, len(values), points, endpoint=False).astype(np.int64))
        lengths = np.diff(np.append(begins, len(values)))
        groups = reduce_rows(values, begins, lengths, 0)
        groups["xmin"], groups["xmax"] = at_rows(xs, groups["imin"], 0), at_rows(xs, groups["imax"], 0)
        groups["xfirst"], groups["xlast"] = xs[begins], xs[begins + lengths - 1]
        groups["imin"] = np.where(groups["imin"] >= 0, groups["imin"] + start, -1)
        groups["imax"] = np.where(groups["imax"] >= 0, groups["imax"] + start, -1)
        xs_out, ys_out = _points(groups, ends)
        return {"name": y, "x": xs_out, "y": ys_out}

    def _x_raw(self, x: str | None, start: int, stop: int) -> np.ndarray:
        return np.arange(start, stop, dtype=np.float64) if x is ROW else self.raw(x, start, stop)

    def _summarised(
        self, x: str | None, y: str, start: int, stop: int, points: int, ends: bool
    ) -> dict[str, Any]:
        number, first, last = self._choose_level(start, stop, points)
        size = BASE_ROWS * FANOUT**number
        groups: list[dict[str, np.ndarray]] = []
        inner_start = first * size
        inner_stop = min(last * size, self.rows)
        if last <= first:  # no whole bucket inside: the range is small, one region
            inner_start = inner_stop = stop
        if start < inner_start:
            groups.append(self._region(x, y, start, inner_start))
        if last > first:
            buckets = self._buckets(x, y, number, first, last)
            per = max(1, math.ceil((last - first) / max(1, points - 2)))
            groups.append(merge(buckets, per))
        if inner_stop < stop:
            groups.append(self._region(x, y, inner_stop, stop))
        joined = {f: np.concatenate([g[f] for g in groups]) for f in groups[0]}
        if len(joined["count"]) > points:  # the edges and the inner groups together are one too many
            joined = merge(joined, math.ceil(len(joined["count"]) / points))
        xs, values = _points(joined, ends)
        return {"name": y, "x": xs, "y": values}

    def _choose_level(self, start: int, stop: int, points: int) -> tuple[int, int, int]:
        """(level, first whole bucket, bucket after the last whole one) of the finest level with few
        enough whole buckets in [start, stop)."""
        for number in range(self.depth):
            size = BASE_ROWS * FANOUT**number
            count = len(self.level(number, "bucket"))
            first = -(-start // size)
            last = count if stop >= self.rows else stop // size
            if last - first <= BUCKETS_PER_POINT * points or number == self.depth - 1:
                return number, first, max(first, last)
        raise AssertionError("a summary has at least one level")

    def _x_at(
        self, x: str | None, y: str, number: int, first: int, last: int, buckets: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        if x is not ROW and x == self.exact_x:
            return self.level(number, f"{y}|xmin")[first:last], self.level(number, f"{y}|xmax")[first:last]
        return self._x_at_rows(x, buckets["imin"]), self._x_at_rows(x, buckets["imax"])

    def _x_at_rows(self, x: str | None, rows: np.ndarray) -> np.ndarray:
        """x at these rows (-1: none): the row itself, or x within its level-0 bucket, placed by its row
        between the bucket's first and last x (a sorted column that is not the dataset's x)."""
        rows = np.asarray(rows)
        if x is ROW:
            return np.where(rows >= 0, rows, np.nan).astype(np.float64)
        bucket = np.clip(rows // BASE_ROWS, 0, max(0, -(-self.rows // BASE_ROWS) - 1))
        x_first, x_last = self.level(0, f"{x}|first")[bucket], self.level(0, f"{x}|last")[bucket]
        inside = np.minimum(BASE_ROWS, self.rows - bucket * BASE_ROWS) - 1
        share = np.where(inside > 0, (rows - bucket * BASE_ROWS) / np.maximum(inside, 1), 0.0)
        return np.where(rows >= 0, x_first + (x_last - x_first) * share, np.nan)

    def _buckets(self, x: str | None, y: str, number: int, first: int, last: int) -> dict[str, np.ndarray]:
        """Buckets first..last-1 of a level: y's fields, and x at their extremes, first and last rows."""
        fields = ("min", "max", "imin", "imax", "count", "first", "last")
        buckets = {f: self.level(number, f"{y}|{f}")[first:last] for f in fields}
        buckets["xmin"], buckets["xmax"] = self._x_at(x, y, number, first, last, buckets)
        if x is ROW:
            size = BASE_ROWS * FANOUT**number
            starts = np.arange(first, last, dtype=np.float64) * size
            buckets["xfirst"], buckets["xlast"] = starts, np.minimum(starts + size, self.rows) - 1
        else:  # x never decreases: its own first and last in a bucket are at the bucket's ends
            buckets["xfirst"] = self.level(number, f"{x}|first")[first:last]
            buckets["xlast"] = self.level(number, f"{x}|last")[first:last]
        return buckets

    def _region(self, x: str | None, y: str, start: int, stop: int) -> dict[str, np.ndarray]:
        """One group for rows [start, stop) (fewer than a bucket of the level used): level-0 buckets
        inside it and the raw rows at its two ends."""
        whole_first = -(-start // BASE_ROWS)
        whole_last = -(-self.rows // BASE_ROWS) if stop >= self.rows else stop // BASE_ROWS
        parts = []
        if whole_last <= whole_first:
            parts.append(self._raw_part(x, y, start, stop))
        else:
            head_stop = whole_first * BASE_ROWS
            tail_start = min(whole_last * BASE_ROWS, stop)
            if start < head_stop:
                parts.append(self._raw_part(x, y, start, head_stop))
            buckets = self._buckets(x, y, 0, whole_first, whole_last)
            parts.append(merge(buckets, len(buckets["count"])))
            if tail_start < stop:
                parts.append(self._raw_part(x, y, tail_start, stop))
        together = {f: np.concatenate([p[f] for p in parts]) for f in parts[0]}
        return merge(together, len(together["count"]))

    def _raw_part(self, x: str | None, y: str, start: int, stop: int) -> dict[str, np.ndarray]:
        values = self.raw(y, start, stop)
        xs = self._x_raw(x, start, stop)
        valid = ~np.isnan(values)
        if not valid.any():
            return {"min": np.array([np.nan]), "max": np.array([np.nan]), "imin": np.array([-1]),
                    "imax": np.array([-1]), "count": np.array([0]), "xmin": np.array([np.nan]),
                    "xmax": np.array([np.nan]), "first": values[:1], "last": values[-1:], "xfirst": xs[:1],
                    "xlast": xs[-1:]}  # fmt: skip
        low, high = int(np.nanargmin(values)), int(np.nanargmax(values))
        return {"min": values[[low]], "max": values[[high]], "imin": np.array([start + low]),
                "imax": np.array([start + high]), "count": np.array([int(valid.sum())]),
                "xmin": xs[[low]], "xmax": xs[[high]], "first": values[:1], "last": values[-1:], "xfirst": xs[:1],
                "xlast": xs[-1:]}  # fmt: skip


def _points(groups: dict[str, np.ndarray], ends: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each group's min and max at their x in row order (one point when they are the same row); a
    group without values is a gap: one point with no y at the group's first x. ends: each group's
    first and last row too (a line through them is drawn exactly as through every row)."""
    n = len(groups["count"])
    gap = groups["count"] == 0
    min_first = groups["imin"] <= groups["imax"]
    one = groups["imin"] == groups["imax"]
    first_x = np.where(gap, groups["xfirst"], np.where(min_first, groups["xmin"], groups["xmax"]))
    first_y = np.where(gap, np.nan, np.where(min_first, groups["min"], groups["max"]))
    second_x = np.where(min_first, groups["xmax"], groups["xmin"])
    second_y = np.where(min_first, groups["max"], groups["min"])
    columns_x, columns_y = [first_x, second_x], [first_y, second_y]
    keeps = [np.ones(n, dtype=bool), ~(gap | one)]
    if ends:
        columns_x = [groups["xfirst"], *columns_x, groups["xlast"]]
        columns_y = [groups["first"], *columns_y, groups["last"]]
        keeps = [~gap, keeps[0], keeps[1], ~gap]
    width = len(columns_x)
    xs, ys, keep = np.empty(width * n), np.empty(width * n), np.empty(width * n, dtype=bool)
    for k in range(width):
        xs[k::width], ys[k::width], keep[k::width] = columns_x[k], columns_y[k], keeps[k]
    xs, ys = xs[keep], ys[keep]
    if ends and len(xs) > 1:  # a first or last row that is also an extreme: once
        repeated = np.zeros(len(xs), dtype=bool)
        repeated[1:] = (xs[1:] == xs[:-1]) & ((ys[1:] == ys[:-1]) | (np.isnan(ys[1:]) & np.isnan(ys[:-1])))
        xs, ys = xs[~repeated], ys[~repeated]
    return xs, ys


# -- types -------------------------------------------------------------------------------------------


def parse_bound(value: str | None, field: pa.Field | None, name: str) -> float | None:
    """A from/to as the x's numbers: a time column takes ISO 8601 (or seconds since the epoch)."""
    if value is None or value == "":
        return None
    if field is not None and is_time(field):
        try:
            return float(value) * 1e9
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise SeriesError(
                name, f"{value!r} is neither an ISO 8601 time nor seconds since the epoch"
            ) from None
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return float(np.datetime64(moment, "ns").astype(np.int64))
    try:
        number = float(value)
    except ValueError:
        raise SeriesError(name, f"{value!r} is not a number") from None
    if math.isnan(number):
        raise SeriesError(name, "must be a number")
    return number


def json_values(values: np.ndarray, field: pa.Field | None, *, whole: bool = False) -> list[Any]:
    """Numbers for JSON: NaN as null; integer columns (and whole: row numbers) as integers; times as
    ISO 8601 (to the microsecond, with Z when the column has a time zone)."""
    gaps = np.isnan(values)
    if field is not None and is_time(field):
        micro: np.ndarray = np.round(np.where(gaps, 0, values) / 1000).astype(np.int64).astype("datetime64[us]")
        zone: Literal["UTC", "naive"] = "UTC" if pa.types.is_timestamp(field.type) and field.type.tz else "naive"
        # as Python's isoformat writes them: whole seconds, else to the microsecond
        seconds = micro.astype(np.int64) % 1_000_000 == 0
        text = np.where(
            seconds, np.datetime_as_string(micro, unit="s", timezone=zone),
            np.datetime_as_string(micro, unit="us", timezone=zone),
        ).tolist()  # fmt: skip
        return [None if gap else t for gap, t in zip(gaps.tolist(), text, strict=True)]
    if whole or (field is not None and pa.types.is_integer(field.type)):
        ints = np.where(gaps, 0, values).astype(np.int64).tolist()
        return [None if gap else v for gap, v in zip(gaps.tolist(), ints, strict=True)]
    return [None if gap else v for gap, v in zip(gaps.tolist(), values.tolist(), strict=True)]


def arrow_stream(answer: dict[str, Any], x_field: pa.Field | None) -> bytes:
    """The answer as an Arrow IPC stream: one row per point (series, x, y), in order."""
    names, xs, ys = [], [], []
    for series in answer["series"]:
        names.append(np.full(len(series["x"]), series["name"], dtype=object))
        xs.append(series["x"])
        ys.append(series["y"])
    x = np.concatenate(xs) if xs else np.empty(0)
    y = np.concatenate(ys) if ys else np.empty(0)
    if x_field is not None and is_time(x_field):
        x_array = pa.array(np.round(x / 1000).astype(np.int64), mask=np.isnan(x), type=pa.int64()).cast(
            pa.timestamp("us", tz=getattr(x_field.type, "tz", None))
        )
    else:
        x_array = pa.array(x, mask=np.isnan(x))
    table = pa.table({
        "series": pa.array(np.concatenate(names) if names else [], pa.string()).dictionary_encode(),
        "x": x_array, "y": pa.array(y, mask=np.isnan(y)),
    }).replace_schema_metadata({"labhub.source": answer["source"]})  # fmt: skip
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


# -- the job that makes a summary for a dataset stored without one -----------------------------------


def build_summary(params: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """The summary of a stored dataset's Parquet file, read a row group at a time."""
    parquet = pq.ParquetFile(params["parquet_path"])
    out = Path(params["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    builder = SummaryBuilder(parquet.schema_arrow)
    total = parquet.metadata.num_rows
    columns = builder.columns
    for batch in parquet.iter_batches(batch_size=65536, columns=columns or None):
        reporter.check()
        builder.add(batch)
        reporter.progress("summary", builder.rows, total, f"{builder.rows} rows")
    path = out / "summary.parquet"
    pq.write_table(builder.finish(), str(path), compression="zstd")
    return {"summary_path": str(path), "sorted_columns": [name for name in columns if builder.sorted[name]]}
