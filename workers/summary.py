"""Multi-level min/max summaries of a dataset's numeric and time columns, built in one streaming pass.

Level 0 cuts the rows into buckets of BASE_ROWS rows (by row number); each level above joins FANOUT
buckets of the one below, up to the first level of at most TOP_BUCKETS buckets. Every bucket keeps,
per column, its lowest and highest value and the row numbers where they first occur, its first and
last value, and its count of values (nulls and NaNs are gaps, never an extreme); and the row range it
covers. The dataset's x (its first time column that never decreases, else its first such column of
numbers, else the row number) is chosen in the same pass, and every extreme keeps the x where it
occurs (`xmin`, `xmax`), so a chart puts it where it belongs. So any range of whole buckets at any level knows its extremes exactly, and a reader can answer
a zoom from the level whose buckets fit, with the raw rows only at its edges.

Memory: the rows of one unfinished bucket per column, and the level-0 buckets (for 100M rows and one
column, ~100k buckets of 7 numbers).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

BASE_ROWS = 1024
FANOUT = 8
TOP_BUCKETS = 1000
MAX_COLUMNS = 256  # a wide table's first columns of numbers get summaries; charts draw a few at a time
FIELDS = ("min", "max", "imin", "imax", "first", "last", "count")
X_FIELDS = ("xmin", "xmax")  # the x at each extreme, for the dataset's x
X_CANDIDATES = 3  # columns followed as the possible x until they decrease or have a gap


def is_time(field: pa.Field) -> bool:
    return bool(pa.types.is_timestamp(field.type) or pa.types.is_date(field.type))


def summarised(field: pa.Field) -> bool:
    """Numbers and times are summarised; text, booleans and nested values are not."""
    kind = field.type
    return bool(
        pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_timestamp(kind)
        or pa.types.is_date(kind)
    )  # fmt: skip


def as_numbers(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column as float64 with NaN for gaps (times as nanoseconds since the epoch)."""
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        column = pc.cast(pc.cast(column, pa.timestamp("ns"), safe=False), pa.int64())
    # beyond 2**53 a float64 rounds (nanosecond times to ~0.1 µs): a summary is for drawing
    return np.asarray(
        pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False), dtype=np.float64
    )


def _first_match(
    values: np.ndarray, extremes: np.ndarray, begins: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """Per bucket, the position of the first value equal to its extreme (-1 where it is all gaps)."""
    found = np.full(len(begins), -1, dtype=np.int64)
    valid = ~np.isnan(extremes)
    if not valid.any():
        return found
    matches = np.flatnonzero(values == np.repeat(extremes, lengths))
    at = np.searchsorted(matches, begins[valid])
    found[valid] = matches[at]
    return found


def reduce_rows(
    values: np.ndarray, begins: np.ndarray, lengths: np.ndarray, offset: int
) -> dict[str, np.ndarray]:
    """The fields of buckets over raw values (rows begins[i] .. begins[i]+lengths[i]-1; row numbers
    counted from offset)."""
    if not len(begins):
        return {field: np.empty(0) for field in FIELDS}
    gaps = np.isnan(values)
    count = np.add.reduceat((~gaps).astype(np.int64), begins)
    with np.errstate(invalid="ignore"):
        low = np.fmin.reduceat(values, begins)
        high = np.fmax.reduceat(values, begins)
    ends = begins + lengths - 1
    return {
        "min": low, "max": high,
        "imin": np.where(count > 0, _first_match(values, low, begins, lengths) + offset, -1),
        "imax": np.where(count > 0, _first_match(values, high, begins, lengths) + offset, -1),
        "first": values[begins], "last": values[ends], "count": count,
    }  # fmt: skip


def merge(parts: dict[str, np.ndarray], fanout: int) -> dict[str, np.ndarray]:
    """A level's buckets joined fanout at a time (the last group may be shorter); the x fields, where
    there are any, follow: at the extremes, and at the group's first and last row."""
    n = len(parts["count"])
    begins = np.arange(0, n, fanout)
    lengths = np.diff(np.append(begins, n))
    with np.errstate(invalid="ignore"):
        low = np.fmin.reduceat(parts["min"], begins)
        high = np.fmax.reduceat(parts["max"], begins)
    # the first bucket of a group holding the group's extreme gives its row (rows grow with buckets)
    which_low = _first_match(parts["min"], low, begins, lengths)
    which_high = _first_match(parts["max"], high, begins, lengths)
    return {
        "min": low, "max": high,
        "imin": np.where(which_low >= 0, parts["imin"][np.maximum(which_low, 0)], -1),
        "imax": np.where(which_high >= 0, parts["imax"][np.maximum(which_high, 0)], -1),
        "first": parts["first"][begins], "last": parts["last"][begins + lengths - 1],
        "count": np.add.reduceat(parts["count"], begins),
        **{
            field: np.where(which >= 0, parts[field][np.maximum(which, 0)], np.nan)
            for field, which in (("xmin", which_low), ("xmax", which_high)) if field in parts
        },
        **({"xfirst": parts["xfirst"][begins]} if "xfirst" in parts else {}),
        **({"xlast": parts["xlast"][begins + lengths - 1]} if "xlast" in parts else {}),
    }  # fmt: skip


def at_rows(x: np.ndarray, rows: np.ndarray, offset: int) -> np.ndarray:
    """x at the given row numbers (counted from offset), NaN where a row is -1 (no extreme)."""
    return np.where(rows >= 0, x[np.maximum(rows - offset, 0)], np.nan) if len(rows) else np.empty(0)


class SummaryBuilder:
    """Fed the batches of a dataset in order (add), gives the summary table (finish)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.columns = [f.name for f in schema if summarised(f)][:MAX_COLUMNS]
        self._schema = pa.schema([schema.field(name) for name in self.columns])
        times = {f.name for f in schema if is_time(f)}
        # the x candidates in the order the dataset's x is chosen: times first, then numbers
        self._order = sorted(self.columns, key=lambda name: name not in times)
        self._followed = self._order[:X_CANDIDATES]
        self._x: dict[str, dict[str, list[np.ndarray]]] = {
            x: {f"{name}|{field}": [] for name in self.columns for field in X_FIELDS} for x in self._followed
        }
        self.rows = 0
        self._carry: dict[str, np.ndarray] = {name: np.empty(0) for name in self.columns}
        self._level0: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in self.columns}
        # whether a column never decreases and has no gaps: one that may be a plot's x
        self.sorted = dict.fromkeys(self.columns, True)
        self._last: dict[str, float] = dict.fromkeys(self.columns, -np.inf)

    def add(self, batch: pa.RecordBatch) -> None:
        if not self.columns or not batch.num_rows:
            return
        start = self.rows - len(next(iter(self._carry.values())))  # the first carried row's number
        whole_of: dict[str, np.ndarray] = {}
        for name in self.columns:
            fresh = as_numbers(batch.column(name))
            if self.sorted[name]:
                self.sorted[name] = bool(
                    not np.isnan(fresh).any() and fresh[0] >= self._last[name] and (np.diff(fresh) >= 0).all()
                )
                self._last[name] = float(fresh[-1])
            values = np.concatenate([self._carry[name], fresh])
            whole = (len(values) // BASE_ROWS) * BASE_ROWS
            if whole:
                begins = np.arange(0, whole, BASE_ROWS)
                lengths = np.full(len(begins), BASE_ROWS)
                self._level0[name].append(reduce_rows(values[:whole], begins, lengths, start))
                whole_of[name] = values[:whole]
            self._carry[name] = values[whole:]
        if whole_of:
            self._follow_x(whole_of, start, -1)
        self.rows += batch.num_rows

    def _follow_x(self, values: dict[str, np.ndarray], start: int, part: int) -> None:
        """For each x still possible, its values at the extremes of the buckets just reduced."""
        for x in self._followed:
            if not self.sorted[x]:
                continue
            for name in self.columns:
                reduced = self._level0[name][part]
                for field, rows in (("xmin", reduced["imin"]), ("xmax", reduced["imax"])):
                    self._x[x][f"{name}|{field}"].append(at_rows(values[x], rows, start))

    @property
    def x(self) -> str | None:
        """The dataset's x: the first time column that never decreases and has no gaps, else the first
        such column of numbers; None: the row number."""
        return next((name for name in self._order if self.sorted[name]), None)

    def finish(self) -> pa.Table:
        """Every level's buckets: level, bucket, row_start, rows, and per column `<name>|<field>`."""
        if not self.columns:
            empty = pa.table({"level": pa.array([], pa.int32()), "bucket": pa.array([], pa.int64())})
            return empty.replace_schema_metadata(self._meta(None, None))
        start = self.rows - len(next(iter(self._carry.values())))
        levels: dict[str, list[dict[str, np.ndarray]]] = {}
        for name in self.columns:
            carry = self._carry[name]
            if len(carry):
                self._level0[name].append(reduce_rows(carry, np.array([0]), np.array([len(carry)]), start))
        if len(next(iter(self._carry.values()), [])):
            self._follow_x(self._carry, start, -1)
            self._carry = {name: np.empty(0) for name in self.columns}
        x = self.x
        exact_x = x if x in self._followed else None  # else a reader places an extreme within its bucket
        for name in self.columns:
            parts = self._level0[name]
            level = {f: np.concatenate([p[f] for p in parts]) if parts else np.empty(0) for f in FIELDS}
            if exact_x is not None:
                for field in X_FIELDS:
                    pieces = self._x[exact_x][f"{name}|{field}"]
                    level[field] = np.concatenate(pieces) if pieces else np.empty(0)
            stack = [level]
            while len(stack[-1]["count"]) > TOP_BUCKETS:
                stack.append(merge(stack[-1], FANOUT))
            levels[name] = stack
        depth = len(next(iter(levels.values())))
        tables = []
        for number in range(depth):
            size = BASE_ROWS * FANOUT**number
            buckets = len(levels[self.columns[0]][number]["count"])
            row_start = np.arange(buckets, dtype=np.int64) * size
            columns: dict[str, Any] = {
                "level": np.full(buckets, number, dtype=np.int32),
                "bucket": np.arange(buckets, dtype=np.int64),
                "row_start": row_start,
                "rows": np.minimum(size, self.rows - row_start),
            }
            for name in self.columns:
                for field in FIELDS + X_FIELDS:
                    if field in levels[name][number]:
                        columns[f"{name}|{field}"] = levels[name][number][field]
            tables.append(pa.table(columns))
        table = pa.concat_tables(tables)
        return table.replace_schema_metadata(self._meta(x, exact_x))

    def _meta(self, x: str | None, exact_x: str | None) -> dict[str, str]:
        return {"labhub.summary": json.dumps({
            "base_rows": BASE_ROWS, "fanout": FANOUT, "rows": self.rows, "columns": self.columns,
            "sorted": [name for name in self.columns if self.sorted[name]], "x": x, "exact_x": exact_x,
            # the summarised columns' types (a reader answers from the summary alone until it needs rows)
            "schema": base64.b64encode(self._schema.serialize().to_pybytes()).decode(),
        })}  # fmt: skip
