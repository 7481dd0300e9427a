"""The multi-level summary is exact: every bucket's extremes, their rows, first, last and count equal a
brute force over the raw rows, at every level, for random data with planted spikes, gaps and nulls,
whatever the batch sizes it was fed in."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from workers.summary import BASE_ROWS, FANOUT, TOP_BUCKETS, SummaryBuilder


def brute(values: np.ndarray, start: int, rows: int) -> dict[str, float]:
    part = values[start : start + rows]
    valid = ~np.isnan(part)
    if not valid.any():
        return {"min": np.nan, "max": np.nan, "imin": -1, "imax": -1, "count": 0,
                "first": part[0], "last": part[-1]}  # fmt: skip
    low, high = np.nanmin(part), np.nanmax(part)
    return {
        "min": low, "max": high, "imin": start + int(np.flatnonzero(part == low)[0]),
        "imax": start + int(np.flatnonzero(part == high)[0]), "count": int(valid.sum()),
        "first": part[0], "last": part[-1],
    }  # fmt: skip


def same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


@pytest.mark.parametrize(("rows", "seed"), [(1, 0), (1023, 1), (1024, 2), (200_003, 3), (3_000_000, 4)])
def test_every_bucket_at_every_level_is_exact(rows, seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=rows)
    spikes = rng.choice(rows, size=min(rows, 20), replace=False)
    y[spikes] = rng.choice([-1e6, 1e6], size=len(spikes))  # extremes that must never be lost
    y[rng.random(rows) < 0.01] = np.nan  # gaps
    y[: min(rows, 2500)][rng.random(min(rows, 2500)) < 0.5] = np.nan
    nulls = rng.random(rows) < 0.01
    ints = pa.array(rng.integers(-5, 5, rows), mask=nulls)
    times = pa.array((np.arange(rows) * 1_000_000).astype("datetime64[us]"))
    table = pa.table({"y": y, "n": ints, "t": times, "label": pa.array(["a"] * rows)})
    builder = SummaryBuilder(table.schema)
    assert builder.columns == ["y", "n", "t"]
    offset = 0
    while offset < rows:  # uneven batches, as a reader hands them over
        size = int(rng.integers(1, 70_000))
        for batch in table.slice(offset, size).to_batches():
            builder.add(batch)
        offset += size
    summary = builder.finish().to_pydict()
    columns = {"y": y, "n": np.where(nulls, np.nan, ints.to_numpy(zero_copy_only=False).astype(float)),
               "t": (np.arange(rows) * 1e9).astype(float)}  # fmt: skip
    levels = sorted(set(summary["level"]))
    assert levels == list(range(len(levels)))
    top = [i for i, level in enumerate(summary["level"]) if level == levels[-1]]
    assert len(top) <= max(TOP_BUCKETS, 1)
    for i, level in enumerate(summary["level"]):
        size = BASE_ROWS * FANOUT**level
        start, count = summary["row_start"][i], summary["rows"][i]
        assert start == summary["bucket"][i] * size
        assert count == min(size, rows - start)
        for name, values in columns.items():
            expected = brute(values, start, count)
            for field, want in expected.items():
                got = summary[f"{name}|{field}"][i]
                assert same(float(got), float(want)), (level, i, name, field, got, want)
    # the planted spikes are each some bucket's extreme at level 0, and the global extremes at the top
    if not np.isnan(y).all():
        assert max(summary["y|max"][i] for i in top if not np.isnan(summary["y|max"][i])) == np.nanmax(y)


def test_a_table_without_numbers_has_an_empty_summary():
    builder = SummaryBuilder(pa.schema([("label", pa.string())]))
    builder.add(pa.record_batch({"label": ["a", "b"]}))
    assert builder.finish().num_rows == 0


@pytest.mark.parametrize("rows", [5, 1024, 70_001, 2_100_000])
def test_every_extreme_keeps_the_x_where_it_occurs(rows):
    """The dataset's x is the first time column that never decreases (else such a column of numbers);
    each bucket's xmin/xmax is x at the row of its extreme."""
    rng = np.random.default_rng(rows)
    x = np.cumsum(rng.random(rows) + 0.001)  # irregular sampling: x cannot be guessed from the row
    y = rng.normal(size=rows)
    y[rng.random(rows) < 0.02] = np.nan
    noise = rng.normal(size=rows)  # a column of numbers before x that is not sorted
    stamps = pa.array((np.arange(rows)[::-1] * 1000).astype("datetime64[us]"))  # a time going backwards
    table = pa.table({"noise": noise, "back": stamps, "x": x, "y": y})
    builder = SummaryBuilder(table.schema)
    for batch in table.to_batches(max_chunksize=30_000):
        builder.add(batch)
    summary = builder.finish()
    meta = json.loads(summary.schema.metadata[b"labhub.summary"])
    assert meta["x"] == "x"
    assert meta["exact_x"] == "x"
    data = summary.to_pydict()
    for i in range(summary.num_rows):
        for name in ("y", "noise"):
            for low_high in ("min", "max"):
                row = data[f"{name}|i{low_high}"][i]
                got = data[f"{name}|x{low_high}"][i]
                assert (row == -1 and np.isnan(got)) or got == x[row], (name, low_high, i)


def test_a_time_column_is_the_x_before_a_column_of_numbers():
    rows = 3000
    table = pa.table({"n": np.arange(rows, dtype=float), "t": pa.array(np.arange(rows).astype("datetime64[s]"))})
    builder = SummaryBuilder(table.schema)
    builder.add(table.to_batches()[0])
    meta = json.loads(builder.finish().schema.metadata[b"labhub.summary"])
    assert meta["x"] == "t"


def test_without_a_sorted_column_the_x_is_the_row_number():
    table = pa.table({"a": [3.0, 1.0, 2.0], "b": [1.0, None, 2.0]})
    builder = SummaryBuilder(table.schema)
    builder.add(table.to_batches()[0])
    summary = builder.finish()
    meta = json.loads(summary.schema.metadata[b"labhub.summary"])
    assert meta["x"] is None
    assert "a|xmin" not in summary.column_names
