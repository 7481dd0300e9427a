"""Plot rendering: every kind and format, decimation that keeps the picture, hostile text."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from domain.core.errors import InvalidInput
from domain.visualizations.models import PlotKind, PlotSpec, check_spec, default_spec
from workers.plots import decimate, render_plot
from workers.summary import SummaryBuilder
from workers.worker import Reporter

SCHEMA = [
    {"name": "t", "type": "number"},
    {"name": "v", "type": "number"},
    {"name": "w", "type": "integer"},
    {"name": "label", "type": "text"},
    {"name": "when", "type": "datetime"},
]


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    n = 20_000
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("plots") / "data.parquet"
    table = pa.table({
        "t": np.arange(n, dtype=float), "v": np.cumsum(rng.normal(size=n)), "w": rng.integers(0, 100, n),
        "label": np.where(np.arange(n) % 3 == 0, "alpha", "beta $x$"),
        "when": np.datetime64("2024-01-01T00:00:00") + np.arange(n).astype("timedelta64[s]"),
    })  # fmt: skip
    pq.write_table(table, path, row_group_size=5000)
    return path


def render(parquet, tmp_path, **spec):
    full = {"width": 600, "height": 400, "dpi": 100, "format": "png", "bins": 30, "title": "", **spec}
    return render_plot(
        {"parquet_path": str(parquet), "spec": full, "out_dir": str(tmp_path)}, Reporter("t", 1)
    )


@pytest.mark.parametrize("fmt", ["png", "svg"])
@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "line", "x": "t", "y": ["v", "w"]},
        {"kind": "line", "x": "when", "y": ["v"]},
        {"kind": "line", "y": ["v"], "group_by": "label"},
        {"kind": "scatter", "x": "t", "y": ["v"]},
        {"kind": "histogram", "y": ["v", "w"], "log_y": True},
        {"kind": "bar", "x": "label", "y": ["v"]},
        {"kind": "bar", "x": "label"},
        {"kind": "box", "y": ["v"], "group_by": "label"},
        {"kind": "heatmap", "x": "t", "y": ["v"]},
    ],
    ids=lambda s: s if isinstance(s, str) else "-".join(str(v) for v in s.values()),
)
def test_every_kind_renders(parquet, tmp_path, spec, fmt):
    result = render(parquet, tmp_path, format=fmt, **spec)
    data = Path(result["path"]).read_bytes()
    if fmt == "png":
        assert data.startswith(b"\x89PNG")
        assert Image.open(result["path"]).size == (600, 400)
    else:
        assert data.lstrip().startswith(b"<?xml")
        assert b"<script" not in data.lower()
    assert result["rows"] == 20_000
    assert result["versions"]["matplotlib"]


def test_row_range_reads_only_those_rows(parquet, tmp_path):
    result = render(parquet, tmp_path, kind="line", x="t", y=["v"], row_range={"start": 4_000, "end": 6_500})
    assert result["rows"] == 2_500


@pytest.mark.parametrize(
    "title",
    [
        "Cost in $ and $\\frac{1}{0}$ \\usepackage{x}",
        "--><script>alert(1)</script><!--",
        "<![CDATA[ ]]> &amp; &#x3c;",
    ],
)
def test_hostile_text_is_drawn_as_text(parquet, tmp_path, title):
    result = render(parquet, tmp_path, kind="histogram", y=["v"], title=title, x_label="$$$", y_label="%s %d {}",
                    format="svg")  # fmt: skip
    svg = Path(result["path"]).read_bytes()
    assert b"<script" not in svg  # text is drawn as paths; what it said never becomes markup
    assert svg.count(b"<svg") == 1


def test_same_spec_same_data_same_image(parquet, tmp_path):
    first = Path(render(parquet, tmp_path / "a", kind="line", x="t", y=["v"])["path"]).read_bytes()
    second = Path(render(parquet, tmp_path / "b", kind="line", x="t", y=["v"])["path"]).read_bytes()
    assert first == second
    svg_a = Path(
        render(parquet, tmp_path / "c", kind="line", x="t", y=["v"], format="svg")["path"]
    ).read_bytes()
    svg_b = Path(
        render(parquet, tmp_path / "d", kind="line", x="t", y=["v"], format="svg")["path"]
    ).read_bytes()
    assert svg_a == svg_b


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_decimation_keeps_each_pixel_columns_envelope(seed):
    rng = np.random.default_rng(seed)
    n, columns = 1_000_000, 1700
    x = np.sort(rng.uniform(0, 1000, n))
    y = np.cumsum(rng.normal(size=n)) + rng.normal(scale=20, size=n) * (rng.random(n) < 0.001)
    y[rng.integers(0, n, 50)] = np.nan
    index = decimate(x, y, columns)
    assert len(index) <= 4 * columns
    assert np.all(np.diff(index) > 0)  # drawn in the original order
    assert index[0] == 0
    assert index[-1] == n - 1
    buckets = np.minimum(((x - x[0]) / (x[-1] - x[0]) * columns).astype(int), columns - 1)
    for column in np.unique(buckets):
        raw = y[buckets == column]
        kept = y[index][buckets[index] == column]
        assert np.nanmin(raw) == np.nanmin(kept)
        assert np.nanmax(raw) == np.nanmax(kept)


def test_small_lines_are_not_decimated(parquet, tmp_path):
    result = render(parquet, tmp_path, kind="line", x="t", y=["v"], width=4000)
    assert result["decimated"] is False
    big = render(parquet, tmp_path, kind="line", x="t", y=["v"], width=200)
    assert big["decimated"] is True
    assert big["points_drawn"] < 20_000


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        (PlotSpec(kind=PlotKind.LINE, y=["nope"]), "$.y[0]"),
        (PlotSpec(kind=PlotKind.LINE, y=["label"]), "$.y[0]"),
        (PlotSpec(kind=PlotKind.LINE, x="label", y=["v"]), "$.x"),
        (PlotSpec(kind=PlotKind.HISTOGRAM), "$.y"),
        (PlotSpec(kind=PlotKind.HEATMAP, y=["v"]), "$.x"),
        (PlotSpec(kind=PlotKind.BAR), "$.x"),
        (PlotSpec(kind=PlotKind.LINE, y=["v"], width=50_000), "$.width"),
        (PlotSpec(kind=PlotKind.LINE, y=["v"], width=4000, height=4000, dpi=300), "$.width"),
        (PlotSpec(kind=PlotKind.LINE, y=["v"], dpi=5), "$.dpi"),
        (PlotSpec(kind=PlotKind.HISTOGRAM, y=["v"], bins=0), "$.bins"),
        (PlotSpec(kind=PlotKind.LINE, y=["v"], title="x" * 500), "$.title"),
        (PlotSpec(kind=PlotKind.LINE, y=["v"], x_label="bad\x00label"), "$.x_label"),
        (PlotSpec(kind=PlotKind.LINE, x="when", y=["v"], log_x=True), "$.log_x"),
        (PlotSpec(kind=PlotKind.LINE, y=["v"], group_by="nope"), "$.group_by"),
    ],
)
def test_specs_are_checked_against_the_schema(spec, path):
    with pytest.raises(InvalidInput) as caught:
        check_spec(spec, SCHEMA)
    assert caught.value.errors[0]["path"] == path


def test_default_spec_for_new_datasets():
    assert default_spec(SCHEMA) == PlotSpec(kind=PlotKind.LINE, x="t", y=["v", "w"], title="Overview")
    no_time = [{"name": "a", "type": "number"}, {"name": "b", "type": "integer"}]
    assert default_spec(no_time) == PlotSpec(kind=PlotKind.HISTOGRAM, y=["a", "b"], title="Distributions")
    assert default_spec([{"name": "a", "type": "text"}]) is None


def _decimate_bucket_by_bucket(x, y, columns):
    """The decimation as first written, one bucket at a time (argmin/argmax per slice): the
    vectorised one must pick exactly the same points."""
    n = len(x)
    if n <= 4 * columns:
        return np.arange(n)
    if x[-1] <= x[0]:
        edges = np.linspace(0, n, columns + 1).astype(np.int64)
    else:
        edges = np.searchsorted(x, np.linspace(x[0], x[-1], columns + 1), side="left")
        edges[-1] = n
    filled, emptied = np.where(np.isnan(y), np.inf, y), np.where(np.isnan(y), -np.inf, y)
    keep = set()
    for begin, stop in itertools.pairwise(edges):
        if stop > begin:
            keep |= {begin, stop - 1, begin + int(np.argmin(filled[begin:stop])),
                     begin + int(np.argmax(emptied[begin:stop]))}  # fmt: skip
    return np.array(sorted(keep), dtype=np.int64)


@pytest.mark.parametrize(
    "case", ["random walk", "ties", "gaps", "all nan buckets", "one x value", "steps", "short"]
)
def test_vectorised_decimation_picks_what_the_per_bucket_loop_picked(case):
    rng = np.random.default_rng(7)
    n, columns = 200_000, 500
    x = np.arange(n, dtype=np.float64)
    y = np.cumsum(rng.normal(size=n))
    if case == "ties":
        y = np.round(y / 10)  # many equal extremes in a bucket: the first one counts
    elif case == "gaps":
        x = np.sort(np.concatenate([rng.uniform(0, 10, n // 2), rng.uniform(900, 1000, n - n // 2)]))
    elif case == "all nan buckets":
        y[1000:5000] = np.nan
        y[rng.integers(0, n, 500)] = np.nan
    elif case == "one x value":
        x = np.zeros(n)
    elif case == "steps":
        x = np.repeat(np.arange(n // 1000, dtype=np.float64), 1000)  # many points share each x
    elif case == "short":
        n = 4 * columns + 1
        x, y = x[:n], y[:n]
    np.testing.assert_array_equal(decimate(x, y, columns), _decimate_bucket_by_bucket(x, y, columns))


@pytest.mark.parametrize("x", ["t", "when", None])
def test_a_long_line_plot_from_the_summary_looks_like_an_exact_render(tmp_path, x):
    """A line plot of a long dataset reads its summary, not its columns, and its pixels are within
    1 % of drawing every point (a planted spike is drawn too)."""
    n = 1_500_000
    rng = np.random.default_rng(5)
    v = np.sin(np.arange(n) / 40_000) * 10 + rng.normal(size=n) * 0.3
    v[987_654] = 25.0  # a spike of one row
    table = pa.table({"t": np.arange(n, dtype=float), "v": v,
                      "when": np.datetime64("2024-01-01") + np.arange(n).astype("timedelta64[ms]")})  # fmt: skip
    path = tmp_path / "long.parquet"
    pq.write_table(table, path, row_group_size=100_000)
    builder = SummaryBuilder(table.schema)
    for batch in table.to_batches(max_chunksize=65_536):
        builder.add(batch)
    pq.write_table(builder.finish(), tmp_path / "summary.parquet")
    spec = {"kind": "line", "y": ["v"], "width": 800, "height": 500, "dpi": 100, "format": "png", "bins": 30,
            "title": "", **({"x": x} if x else {})}  # fmt: skip
    fast = render_plot({"parquet_path": str(path), "summary_path": str(tmp_path / "summary.parquet"), "spec": spec,
                        "out_dir": str(tmp_path / "fast")}, Reporter("t", 1))  # fmt: skip
    assert fast["decimated"]
    assert fast["points_drawn"] <= 4 * 4 * 800  # at most four groups per pixel column, four rows each
    exact = render_plot({"parquet_path": str(path), "spec": spec, "out_dir": str(tmp_path / "exact")}, Reporter("t", 1))
    a = np.asarray(Image.open(fast["path"]).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(exact["path"]).convert("RGB"), dtype=np.int16)
    assert np.any(np.abs(a - b) > 0, axis=2).mean() < 0.01
