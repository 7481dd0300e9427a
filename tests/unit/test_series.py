"""The series a chart gets is exact at every zoom: per group, the data's own min and max at their x, so
no extreme is ever lost (against a brute force over the raw rows, with planted spikes and gaps); raw
rows when the range holds few; and the route's refusals as SeriesError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workers.series import RowsNeeded, SeriesError, SeriesSource, build_summary, parse_bound
from workers.summary import SummaryBuilder
from workers.worker import Reporter

ROWS = 1_500_000
SUMMARY_PATHS: list[Path] = []
KNOWN = {"t", "y", "n", "label", "value", "at"}


def write(tmp: Path, table: pa.Table, *, row_group: int = 50_000) -> SeriesSource:
    parquet = tmp / "data.parquet"
    pq.write_table(table, str(parquet), row_group_size=row_group)
    builder = SummaryBuilder(table.schema)
    for batch in table.to_batches(max_chunksize=70_000):
        builder.add(batch)
    pq.write_table(builder.finish(), str(tmp / "summary.parquet"))
    SUMMARY_PATHS[:] = [tmp / "summary.parquet", parquet]
    return SeriesSource(tmp / "summary.parquet", parquet)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    rng = np.random.default_rng(7)
    x = np.cumsum(rng.random(ROWS) * 0.002 + 0.0005)  # seconds, irregular
    y = np.sin(x / 50) + rng.normal(scale=0.1, size=ROWS)
    spikes = np.sort(rng.choice(ROWS, size=12, replace=False))
    y[spikes] = np.where(np.arange(12) % 2, 40.0, -40.0) + np.arange(12)  # each spike its own value
    y[rng.random(ROWS) < 0.01] = np.nan
    y[400_000:430_000] = np.nan  # a long gap: a chart shows a break
    counts = rng.integers(0, 1000, ROWS)
    table = pa.table({"t": x, "y": y, "n": counts, "label": pa.array(["a"] * ROWS)})
    source = write(tmp_path_factory.mktemp("series"), table)
    return source, x, y, counts, spikes


def check_exact(answer, x, y, start, stop, points):
    """Every point is a real row; the range's extremes are there; at most 2 × points values."""
    line = answer["series"][0]
    xs, ys = line["x"], line["y"]
    assert len(xs) <= 2 * points
    assert (np.diff(xs) >= 0).all()
    part_x, part_y = x[start:stop], y[start:stop]
    valid = ~np.isnan(ys)
    rows = np.searchsorted(part_x, xs[valid])
    assert (part_x[rows] == xs[valid]).all()
    assert (part_y[rows] == ys[valid]).all()
    if (~np.isnan(part_y)).any():
        assert np.nanmax(ys) == np.nanmax(part_y)
        assert np.nanmin(ys) == np.nanmin(part_y)


def test_every_zoom_keeps_every_extreme(data):
    source, x, y, _, spikes = data
    rng = np.random.default_rng(1)
    ranges = [(None, None)] + [tuple(sorted(rng.uniform(x[0], x[-1], 2))) for _ in range(25)]
    ranges += [(x[s] - w, x[s] + w) for s in spikes for w in (1e-4, 0.3, 7.0, 300.0)]  # zooms onto spikes
    for low, high in ranges:
        for points in (2, 37, 1000, 4000):
            answer = source.answer("t", ["y"], low, high, points, KNOWN)
            start, stop = answer["rows"]
            assert start == (0 if low is None else np.searchsorted(x, low, "left"))
            assert stop == (ROWS if high is None else np.searchsorted(x, high, "right"))
            if answer["source"] == "raw":
                assert stop - start <= 2 * points
                assert np.array_equal(answer["series"][0]["x"], x[start:stop])
                assert np.array_equal(answer["series"][0]["y"], y[start:stop], equal_nan=True)
                continue
            check_exact(answer, x, y, start, stop, points)
            if points < 1000:
                continue  # a group may hold two spikes; the range's extremes were checked above
            shown = set(
                zip(answer["series"][0]["x"].tolist(), answer["series"][0]["y"].tolist(), strict=True)
            )
            for spike in spikes[(spikes >= start) & (spikes < stop)]:  # each spike is its group's extreme
                assert (x[spike], y[spike]) in shown, (low, high, points, spike)


def test_a_gap_is_a_null_and_a_long_range_is_one_call(data):
    source, x, _y, _, _ = data
    answer = source.answer("t", ["y"], x[390_000], x[440_000], 100, KNOWN)
    assert answer["source"] == "summary"
    assert np.isnan(answer["series"][0]["y"]).any()  # the 30,000 missing rows break the line


def test_the_row_number_and_integers(data):
    source, _x, _y, counts, _ = data
    answer = source.answer(None, ["y", "n"], 1000, 1999, 10_000, KNOWN)
    assert answer["source"] == "raw"
    assert answer["rows"] == (1000, 2000)
    assert np.array_equal(answer["series"][1]["y"], counts[1000:2000])
    answer = source.answer(None, ["n"], None, None, 500, KNOWN)
    xs, ys = answer["series"][0]["x"], answer["series"][0]["y"]
    assert len(xs) <= 1000
    assert (counts[xs.astype(int)] == ys).all()
    assert ys.max() == counts.max()
    assert ys.min() == counts.min()


def test_a_sorted_column_that_is_not_the_x_places_extremes_within_their_bucket(data):
    source, _x, _y, _, _ = data
    assert source.x == "t"
    # y as x is refused (not monotonic); n as x is refused too
    with pytest.raises(SeriesError, match="not monotonic"):
        source.answer("y", ["n"], None, None, 100, KNOWN)
    with pytest.raises(SeriesError, match="has no summary"):
        source.answer("t", ["label"], None, None, 100, KNOWN)
    with pytest.raises(SeriesError, match="unknown column"):
        source.answer("t", ["nope"], None, None, 100, KNOWN)
    with pytest.raises(SeriesError, match="neither numbers nor times"):
        source.answer("label", ["y"], None, None, 100, KNOWN)


def test_times_and_a_backfilled_summary(tmp_path):
    rows = 50_000
    stamps = np.datetime64("2026-03-01T10:00:00") + np.arange(rows).astype("timedelta64[ms]") * 20
    values = np.arange(rows, dtype=float) % 97
    table = pa.table({"value": values, "at": pa.array(stamps.astype("datetime64[us]"))})
    parquet = tmp_path / "data.parquet"
    pq.write_table(table, str(parquet), row_group_size=8192)
    made = build_summary({"parquet_path": str(parquet), "out_dir": str(tmp_path / "out")}, Reporter("j", 1))
    assert made["sorted_columns"] == ["at"]
    source = SeriesSource(Path(made["summary_path"]), parquet)
    assert source.x == "at"  # a time column before a column of numbers
    field = source.schema.field("at")
    low = parse_bound("2026-03-01T10:05:00", field, "from")
    high = parse_bound("2026-03-01T10:05:10Z", field, "to")
    answer = source.answer("at", ["value"], low, high, 1000, KNOWN)
    assert answer["source"] == "raw"
    assert answer["rows"] == (15_000, 15_501)
    with pytest.raises(SeriesError):
        parse_bound("yesterday", field, "from")


def test_a_whole_view_needs_only_the_summary(data, tmp_path):
    """The first draw of a dataset reads its small summary, not its Parquet file; a zoom asks for rows."""
    _source, x, y, _, _ = data
    alone = SeriesSource(SUMMARY_PATHS[0])
    whole = alone.answer("t", ["y"], None, None, 1000, KNOWN)
    assert np.nanmax(whole["series"][0]["y"]) == np.nanmax(y)
    with pytest.raises(RowsNeeded):
        alone.answer("t", ["y"], x[1000], x[500_000], 1000, KNOWN)
    alone.attach_rows(SUMMARY_PATHS[1])
    zoom = alone.answer("t", ["y"], x[1000], x[500_000], 1000, KNOWN)
    check_exact(zoom, x, y, *zoom["rows"], 1000)
