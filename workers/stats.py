"""Per-column statistics computed in one streaming pass over record batches.

Numbers: count, nulls, min, max, mean, std (merged per batch, numerically stable) and the
quantiles p01, p25, p50, p75, p99. Quantiles are exact while the values of all numeric columns fit
in the statistics budget; past it each column keeps a uniform random sample (reservoir sampling,
Algorithm R over each batch at once: every value is equally likely to be kept, and the sample is the
only memory it takes) and the quantiles are estimated from it: with a
sample of n values the rank error is about 1/sqrt(n) (0.1 % at a million). `quantiles_exact` says
which. Text: distinct count and the ten most common values (exact up to MAX_DISTINCT distinct
values, a lower bound past it). Times: range. Booleans: true and false counts.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

QUANTILES = {"p01": 0.01, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p99": 0.99}
MAX_DISTINCT = 100_000
TOP_VALUES = 10


class LatestDraws:
    """Of a batch's values that drew the same reservoir slot, the one that came last (Algorithm R,
    one value at a time, would have left that one there), without sorting the draws:
    np.maximum.at leaves in each slot the highest position that drew it. Its scratch array (per
    slot: the winner, -1 between batches) is shared by a table's columns, updated one at a time."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._winner: np.ndarray | None = None

    def __call__(self, slots: np.ndarray) -> np.ndarray:
        """The positions in `slots` that are the last to draw their slot."""
        if self._winner is None:
            self._winner = np.full(self._capacity, -1, dtype=np.int64)
        order = np.arange(len(slots), dtype=np.int64)
        np.maximum.at(self._winner, slots, order)
        latest = np.flatnonzero(self._winner[slots] == order)
        self._winner[slots] = -1
        return latest


class NumericStats:
    def __init__(self, capacity: int, rng: np.random.Generator, latest: LatestDraws | None = None) -> None:
        self.count = 0
        self.nulls = 0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations (Chan et al. merge)
        self.min: float | None = None
        self.max: float | None = None
        self.capacity = capacity
        self._rng = rng
        self._latest = latest or LatestDraws(capacity)
        self._values: list[np.ndarray] = []
        self._kept = 0
        self._sample: np.ndarray | None = None  # once sampling: the reservoir of `capacity` values
        self._seen = 0  # values offered to the reservoir so far
        self.integer = True

    def update(self, array: pa.Array | pa.ChunkedArray) -> None:
        self.nulls += array.null_count
        values = np.asarray(pc.drop_null(array).to_numpy(zero_copy_only=False), dtype=np.float64)
        values = values[np.isfinite(values)]  # inf and NaN are not numbers to average
        n = len(values)
        if n == 0:
            return
        if not pa.types.is_integer(array.type):
            self.integer = False
        batch_mean = float(values.mean())
        batch_m2 = float(((values - batch_mean) ** 2).sum())
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean += delta * n / total
        self.m2 += batch_m2 + delta * delta * self.count * n / total
        self.count = total
        low, high = float(values.min()), float(values.max())
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)
        self._keep(values)

    def _keep(self, values: np.ndarray) -> None:
        if self._sample is None and self._kept + len(values) <= self.capacity:
            self._values.append(values)
            self._kept += len(values)
            return
        if self._sample is None:  # the exact budget is spent: from here on, a uniform sample
            self._sample = np.concatenate([*self._values, values[: self.capacity - self._kept]])
            values = values[self.capacity - self._kept :]
            self._values, self._seen = [], self.capacity
        # Algorithm R: the t-th value offered (1-based) is kept with probability capacity / t, in
        # a slot chosen uniformly; when two values of this batch draw the same slot the later wins,
        # as if they had come one at a time
        offered = np.arange(self._seen + 1, self._seen + len(values) + 1, dtype=np.float64)
        chosen = np.flatnonzero(self._rng.random(len(values)) * offered < self.capacity)
        slots = self._rng.integers(0, self.capacity, len(chosen))
        latest = self._latest(slots)
        self._sample[slots[latest]] = values[chosen[latest]]
        self._seen += len(values)

    def result(self) -> dict[str, Any]:
        kept = (
            self._sample
            if self._sample is not None
            else (np.concatenate(self._values) if self._values else None)
        )
        quantiles = {}
        if kept is not None and len(kept):
            points = np.quantile(kept, list(QUANTILES.values()))
            quantiles = {name: float(v) for name, v in zip(QUANTILES, points, strict=True)}
        std = math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else (0.0 if self.count else None)
        return {
            "kind": "number",
            "count": self.count,
            "nulls": self.nulls,
            "min": self.min,
            "max": self.max,
            "mean": self.mean if self.count else None,
            "std": std,
            **quantiles,
            "quantiles_exact": self._sample is None,
        }


class TextStats:
    def __init__(self) -> None:
        self.count = 0
        self.nulls = 0
        self.counts: Counter[str] = Counter()
        self.truncated = False

    def update(self, array: pa.Array | pa.ChunkedArray) -> None:
        self.nulls += array.null_count
        self.count += len(array) - array.null_count
        if self.truncated:
            return  # past MAX_DISTINCT values: distinct is a lower bound, top values from what was seen
        counted = pc.value_counts(pc.drop_null(array))
        for value, n in zip(
            counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True
        ):
            if value in self.counts or len(self.counts) < MAX_DISTINCT:
                self.counts[str(value)] += n
            else:
                self.truncated = True

    def result(self) -> dict[str, Any]:
        return {
            "kind": "text",
            "count": self.count,
            "nulls": self.nulls,
            "distinct": len(self.counts),
            "distinct_exact": not self.truncated,
            "top": [{"value": v[:200], "count": n} for v, n in self.counts.most_common(TOP_VALUES)],
        }


class TimeStats:
    def __init__(self) -> None:
        self.count = 0
        self.nulls = 0
        self.min: Any = None
        self.max: Any = None

    def update(self, array: pa.Array | pa.ChunkedArray) -> None:
        self.nulls += array.null_count
        self.count += len(array) - array.null_count
        if len(array) - array.null_count == 0:
            return
        bounds = pc.min_max(array).as_py()
        low, high = bounds["min"], bounds["max"]
        self.min = low if self.min is None else min(self.min, low)
        self.max = high if self.max is None else max(self.max, high)

    def result(self) -> dict[str, Any]:
        def text(value: Any) -> Any:
            return (
                value.isoformat() if isinstance(value, datetime) else (None if value is None else str(value))
            )

        return {
            "kind": "time",
            "count": self.count,
            "nulls": self.nulls,
            "min": text(self.min),
            "max": text(self.max),
        }


class BoolStats:
    def __init__(self) -> None:
        self.count = 0
        self.nulls = 0
        self.true = 0

    def update(self, array: pa.Array | pa.ChunkedArray) -> None:
        self.nulls += array.null_count
        self.count += len(array) - array.null_count
        self.true += int(pc.sum(array).as_py() or 0)

    def result(self) -> dict[str, Any]:
        return {
            "kind": "bool",
            "count": self.count,
            "nulls": self.nulls,
            "true": self.true,
            "false": self.count - self.true,
        }


ColumnStats = NumericStats | TextStats | TimeStats | BoolStats


def stats_for(
    data_type: pa.DataType, capacity: int, rng: np.random.Generator, latest: LatestDraws | None = None
) -> ColumnStats:
    if pa.types.is_boolean(data_type):
        return BoolStats()
    if pa.types.is_integer(data_type) or pa.types.is_floating(data_type) or pa.types.is_decimal(data_type):
        return NumericStats(capacity, rng, latest)
    if pa.types.is_timestamp(data_type) or pa.types.is_date(data_type) or pa.types.is_time(data_type):
        return TimeStats()
    return TextStats()


class TableStats:
    """Statistics for every column of a stream of record batches with one schema."""

    def __init__(self, schema: pa.Schema, budget_values: int, seed: int = 0) -> None:
        numeric = [f for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)]
        capacity = max(10_000, budget_values // max(1, len(numeric)))
        rng, latest = np.random.default_rng(seed), LatestDraws(capacity)
        self.columns = {f.name: stats_for(f.type, capacity, rng, latest) for f in schema}

    def update(self, batch: pa.RecordBatch) -> None:
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            self.columns[name].update(column)

    def result(self) -> dict[str, dict[str, Any]]:
        return {name: stats.result() for name, stats in self.columns.items()}
