"""Rendering plots from a dataset's Parquet file with matplotlib (Agg), fast on millions of points.

Only the needed columns (and row range) are read. Line plots with more points than pixel columns
are decimated per pixel column, keeping each column's first, last, lowest and highest point, which
draws the same picture; histograms are counted with numpy and drawn as stairs; scatters past a
threshold become a 2-D histogram. User text is drawn with math parsing off.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from matplotlib import cbook
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from workers.series import SeriesError, SeriesSource
from workers.summary import is_time
from workers.worker import JobFailed, Reporter

SCATTER_POINTS = 200_000
MAX_GROUPS = 20
MAX_BARS = 50
MAX_FLIERS = 1000
LIBRARIES = ("matplotlib", "numpy", "pyarrow")


def library_versions() -> dict[str, str]:
    return {name: importlib.metadata.version(name) for name in LIBRARIES}


# -- data ------------------------------------------------------------------------------------------


def read_columns(path: Path, names: list[str], row_range: dict[str, Any] | None) -> pa.Table:
    """The named columns of rows [start, end), reading only the row groups that hold them."""
    parquet = pq.ParquetFile(str(path), memory_map=True)
    total = parquet.metadata.num_rows
    start = int((row_range or {}).get("start") or 0)
    end = min(total, int((row_range or {}).get("end") or total))
    if start >= end:
        raise JobFailed("no_data", f"the row range {start}..{end} holds no rows (the dataset has {total})")
    groups, offset, first_row = [], 0, None
    for group in range(parquet.metadata.num_row_groups):
        rows = parquet.metadata.row_group(group).num_rows
        if offset + rows > start and offset < end:
            groups.append(group)
            first_row = offset if first_row is None else first_row
        offset += rows
    table = parquet.read_row_groups(groups, columns=names)
    return table.slice(start - (first_row or 0), end - start)


def numbers(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(column.type) or pa.types.is_date(column.type):
        return np.asarray(column.to_numpy(), dtype="datetime64[ns]")
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def as_axis(values: np.ndarray) -> np.ndarray:
    """Numbers to bucket by: times as int64 nanoseconds."""
    return values.astype("int64").astype(np.float64) if values.dtype.kind == "M" else values


# -- decimation ------------------------------------------------------------------------------------


def decimate(x: np.ndarray, y: np.ndarray, columns: int) -> np.ndarray:
    """Indices to draw a line through sorted x: per pixel column its first, last, min and max point.

    Within one pixel column every point between the lowest and the highest lands on pixels the
    vertical stroke from min to max covers anyway, so the picture is the same.
    """
    n = len(x)
    if n <= 4 * columns:
        return np.arange(n)
    axis = as_axis(x)
    low, high = axis[0], axis[-1]
    if high <= low:
        edges = np.linspace(0, n, columns + 1).astype(np.int64)  # one x value: split by position
    else:
        edges = np.searchsorted(axis, np.linspace(low, high, columns + 1), side="left")
        edges[-1] = n
    lengths = np.diff(edges)
    begins = edges[:-1][lengths > 0]  # buckets are contiguous: each runs to the next non-empty one
    lengths = lengths[lengths > 0]
    if not len(begins):
        return np.arange(0)
    gaps = np.isnan(y)  # a gap is never a bucket's extreme, unless the whole bucket is gaps
    if gaps.any():
        lows, highs = np.where(gaps, np.inf, y), np.where(gaps, -np.inf, y)
    else:
        lows = highs = y
    lowest = _first_in_bucket(lows, np.minimum.reduceat(lows, begins), begins, lengths)
    highest = _first_in_bucket(highs, np.maximum.reduceat(highs, begins), begins, lengths)
    return np.unique(np.concatenate([begins, begins + lengths - 1, lowest, highest]))


def _first_in_bucket(
    values: np.ndarray, extremes: np.ndarray, begins: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """Per bucket, the index of the first value equal to the bucket's extreme (what argmin/argmax
    give), for all buckets at once: every bucket holds its own extreme, so the first match at or
    after a bucket's start is in that bucket."""
    matches = np.flatnonzero(values == np.repeat(extremes, lengths))
    return matches[np.searchsorted(matches, begins)]


def _plot_columns(figure: Figure) -> int:
    """Buckets for decimation: twice the figure's width in pixels. The axes are narrower than the
    figure whatever the final layout, so every pixel column keeps its extremes; no layout pass is
    needed before drawing."""
    return 2 * max(1, int(figure.get_figwidth() * figure.dpi))


# -- drawing ---------------------------------------------------------------------------------------


def _groups(
    table: pa.Table, group_by: str | None, notes: list[str]
) -> list[tuple[str | None, np.ndarray | None]]:
    if group_by is None:
        return [(None, None)]
    values = np.asarray(table.column(group_by).cast(pa.string()).to_pylist(), dtype=object)
    counts = pc.value_counts(table.column(group_by).cast(pa.string())).to_pylist()
    counts.sort(key=lambda entry: -entry["counts"])
    if len(counts) > MAX_GROUPS:
        notes.append(f"{len(counts)} groups: the {MAX_GROUPS} largest are drawn")
    return [(str(e["values"]), values == e["values"]) for e in counts[:MAX_GROUPS]]


def _label(series: str, group: str | None) -> str:
    return series if group is None else f"{series} ({group})"


def _finite_series(
    table: pa.Table, spec: dict[str, Any], notes: list[str]
) -> Iterator[tuple[str, np.ndarray]]:
    """Each y column's finite values, per group: (label, values), skipping empty ones."""
    for group, mask in _groups(table, spec.get("group_by"), notes):
        for name in spec["y"]:
            y = numbers(table.column(name))
            y = y[np.isfinite(y) if mask is None else (np.isfinite(y) & mask)]
            if len(y):
                yield _label(name, group), y


def _draw_line(
    axes: Axes, figure: Figure, table: pa.Table, spec: dict[str, Any], notes: list[str]
) -> tuple[int, bool]:
    x_all = numbers(table.column(spec["x"])) if spec.get("x") else np.arange(table.num_rows, dtype=np.float64)
    drawn, decimated = 0, False
    columns = _plot_columns(figure)
    for group, mask in _groups(table, spec.get("group_by"), notes):
        x = x_all if mask is None else x_all[mask]
        axis = as_axis(x)
        ordered = bool(np.all(axis[1:] >= axis[:-1]))
        for name in spec["y"]:
            y = numbers(table.column(name))
            y = y if mask is None else y[mask]
            if ordered:
                index = decimate(x, y, columns)
                decimated = decimated or len(index) < len(x)
                xs, ys = x[index], y[index]
            else:
                xs, ys = x, y
            axes.plot(xs, ys, linewidth=0.8, label=_label(name, group))
            drawn += len(xs)
            if not ordered and not notes:
                notes.append(
                    "x is not in increasing order: the points are joined in row order, without decimation"
                )
    return drawn, decimated


def _from_summary(
    axes: Axes, figure: Figure, params: dict[str, Any], spec: dict[str, Any], reporter: Reporter
) -> tuple[int, int, bool] | None:
    """A line plot of a whole dataset drawn from its summary (workers/series.py): per group of rows, a
    pixel column wide, its first and last row and its exact min and max at their x; the raw rows only
    when there are few. None
    when the summary cannot draw it (groups, a row range, an x that decreases, a y that is not a
    number): the columns are read instead. (rows, points drawn, decimated)"""
    summary = params.get("summary_path")
    if spec["kind"] != "line" or spec.get("group_by") or spec.get("row_range") or not summary:
        return None
    reporter.progress("read", 0, 1, "reading the summary")
    source = SeriesSource(Path(summary), Path(params["parquet_path"]))
    x = spec.get("x") or None
    known = set(source.schema.names) | {x} if x else set(source.schema.names)
    try:
        # a group per pixel column with its first, last, min and max row: drawn as every row would be
        answer = source.answer(x, list(spec["y"]), None, None, 2 * _plot_columns(figure), known, ends=True)
    except SeriesError:
        return None
    reporter.progress("render", 0, 1, f"{source.rows} rows")
    time_x = x is not None and is_time(source.schema.field(x))
    drawn = 0
    for line in answer["series"]:
        xs = line["x"].astype(np.int64).astype("datetime64[ns]") if time_x else line["x"]
        axes.plot(xs, line["y"], linewidth=0.8, label=line["name"])
        drawn += len(xs)
    return source.rows, drawn, answer["source"] == "summary"


def _draw_scatter(axes: Axes, table: pa.Table, spec: dict[str, Any], notes: list[str]) -> tuple[int, bool]:
    x_all = numbers(table.column(spec["x"])) if spec.get("x") else np.arange(table.num_rows, dtype=np.float64)
    series = []
    for group, mask in _groups(table, spec.get("group_by"), notes):
        for name in spec["y"]:
            y = numbers(table.column(name))
            series.append(
                (_label(name, group), x_all if mask is None else x_all[mask], y if mask is None else y[mask])
            )
    total = sum(len(x) for _, x, _ in series)
    if total <= SCATTER_POINTS:
        for label, x, y in series:
            axes.plot(x, y, linestyle="none", marker=".", markersize=2, label=label)
        return total, False
    notes.append(f"{total} points: drawn as a 2-D histogram (density) instead of single markers")
    x = np.concatenate([as_axis(s[1]) for s in series])
    y = np.concatenate([s[2] for s in series])
    finite = np.isfinite(x) & np.isfinite(y)
    counts, x_edges, y_edges = np.histogram2d(x[finite], y[finite], bins=(200, 200))
    mesh = axes.pcolormesh(x_edges, y_edges, np.ma.masked_equal(counts.T, 0), cmap="viridis")
    axes.figure.colorbar(mesh, ax=axes, label="points")
    return int(finite.sum()), True


def _draw_histogram(axes: Axes, table: pa.Table, spec: dict[str, Any], notes: list[str]) -> tuple[int, bool]:
    drawn = 0
    fill = len(spec["y"]) == 1 and spec.get("group_by") is None
    for label, y in _finite_series(table, spec, notes):
        counts, edges = np.histogram(y, bins=int(spec.get("bins") or 50))
        axes.stairs(counts, edges, fill=fill, alpha=0.8, label=label)
        drawn += len(y)
    return drawn, False


def _draw_bar(axes: Axes, table: pa.Table, spec: dict[str, Any], notes: list[str]) -> tuple[int, bool]:
    frame = table.to_pandas()
    key = frame[spec["x"]].astype(str)
    if spec.get("y"):
        values = frame.groupby(key)[spec["y"][0]].mean()
        sizes = key.value_counts()
        values = values.loc[sizes.index[:MAX_BARS]]
    else:
        values = key.value_counts()[:MAX_BARS]
    if key.nunique() > MAX_BARS:
        notes.append(f"{key.nunique()} categories: the {MAX_BARS} largest are drawn")
    positions = np.arange(len(values))
    axes.bar(positions, values.to_numpy(dtype=float))
    axes.set_xticks(positions, [str(v)[:40] for v in values.index], rotation=45, ha="right", parse_math=False)
    return len(frame), False


def _draw_box(axes: Axes, table: pa.Table, spec: dict[str, Any], notes: list[str]) -> tuple[int, bool]:
    stats, labels = [], []
    for label, y in _finite_series(table, spec, notes):
        entry = cbook.boxplot_stats(y)[0]
        if len(entry["fliers"]) > MAX_FLIERS:  # thousands of dots on one line draw nothing new
            entry["fliers"] = np.random.default_rng(0).choice(entry["fliers"], MAX_FLIERS, replace=False)
        stats.append(entry)
        labels.append(label)
    if not stats:
        raise JobFailed("no_data", "the chosen columns hold no numbers")
    axes.bxp(stats)
    axes.set_xticks(np.arange(1, len(labels) + 1), labels, rotation=20, ha="right", parse_math=False)
    return sum(int(s["fliers"].size) for s in stats), False


def _draw_heatmap(axes: Axes, table: pa.Table, spec: dict[str, Any], notes: list[str]) -> tuple[int, bool]:
    x, y = numbers(table.column(spec["x"])), numbers(table.column(spec["y"][0]))
    finite = np.isfinite(x) & np.isfinite(y)
    bins = int(spec.get("bins") or 50)
    counts, x_edges, y_edges = np.histogram2d(x[finite], y[finite], bins=(bins, bins))
    mesh = axes.pcolormesh(x_edges, y_edges, counts.T, cmap="viridis")
    axes.figure.colorbar(mesh, ax=axes, label="rows")
    return int(finite.sum()), False


DRAW = {"scatter": _draw_scatter, "histogram": _draw_histogram, "bar": _draw_bar, "box": _draw_box,
        "heatmap": _draw_heatmap}  # fmt: skip


def _figure(spec: dict[str, Any], rows: int = 1, columns: int = 1, **options: Any) -> tuple[Figure, Any]:
    return plt.subplots(
        rows, columns, figsize=(spec["width"] / spec["dpi"], spec["height"] / spec["dpi"]), dpi=spec["dpi"],
        squeeze=False, **options,
    )  # fmt: skip


def _save(
    figure: Figure, spec: dict[str, Any], out_dir: Path, reporter: Reporter,
    rect: tuple[float, float, float, float] = (0, 0, 1, 1),
) -> Path:  # fmt: skip
    """Lay out and save; no dates or software names in the file, so a re-render is byte-identical."""
    figure.tight_layout(rect=rect)
    path = out_dir / f"plot.{spec['format']}"
    reporter.progress("save", 0, 1, spec["format"])
    metadata = {"Date": None} if spec["format"] == "svg" else {"Software": None}
    # PNG at zlib level 1: a few percent larger, several times faster to write than the default 6
    options: dict[str, Any] = {"pil_kwargs": {"compress_level": 1}} if spec["format"] == "png" else {}
    figure.savefig(path, format=spec["format"], dpi=spec["dpi"], metadata=metadata, **options)
    return path


def _rc() -> AbstractContextManager[None]:
    return plt.rc_context({"text.usetex": False, "svg.hashsalt": "labhub", "path.simplify": True})


def render_plot(params: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """params: parquet_path, spec (a PlotSpec as a dict), out_dir. Writes plot.png or plot.svg."""
    spec: dict[str, Any] = params["spec"]
    out_dir = Path(params["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    needed = list(dict.fromkeys(c for c in [spec.get("x"), *spec.get("y", []), spec.get("group_by")] if c))
    notes: list[str] = []
    with _rc():
        figure, grid = _figure(spec)
        axes = grid[0][0]
        try:
            summarised = _from_summary(axes, figure, params, spec, reporter)
            if summarised is not None:
                rows, drawn, decimated = summarised
            else:
                reporter.progress("read", 0, 1, f"reading {len(needed)} column(s)")
                table = read_columns(Path(params["parquet_path"]), needed, spec.get("row_range"))
                reporter.progress("render", 0, 1, f"{table.num_rows} rows")
                rows = table.num_rows
                if spec["kind"] == "line":
                    drawn, decimated = _draw_line(axes, figure, table, spec, notes)
                else:
                    drawn, decimated = DRAW[spec["kind"]](axes, table, spec, notes)
            _decorate(axes, spec)
            path = _save(figure, spec, out_dir, reporter)
        finally:
            plt.close(figure)
    return {
        "path": str(path),
        "format": spec["format"],
        "rows": rows,
        "points_drawn": drawn,
        "decimated": decimated,
        "notes": notes,
        "versions": library_versions(),
    }


def render_engagement(params: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """params: table (periods, activities, students, minutes[student][period][activity]), spec, out_dir.

    One panel per student, sharing both axes; each period's bar is stacked by activity.
    """
    spec: dict[str, Any] = params["spec"]
    table: dict[str, Any] = params["table"]
    out_dir = Path(params["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    students, periods, activities = table["students"], table["periods"], table["activities"]
    notes = [f"{table['left_out']} student(s) with the least time left out"] if table.get("left_out") else []
    reporter.progress("render", 0, 1, f"{len(students)} student(s) × {len(periods)} period(s)")
    columns = 1 if len(students) <= 4 else 2 if len(students) <= 12 else 3
    rows = max(1, -(-len(students) // columns))
    colours = plt.get_cmap("tab10")
    with _rc():
        figure, grid = _figure(spec, rows, columns, sharex=True, sharey=True)
        try:
            x = np.arange(len(periods))
            panels = list(itertools.chain.from_iterable(grid))
            for panel, name, minutes in zip(panels, students, table["minutes"], strict=False):
                values = np.asarray(minutes, dtype=float).reshape(len(periods), len(activities))
                bottom = np.zeros(len(periods))
                for i, activity in enumerate(activities):
                    panel.bar(x, values[:, i], bottom=bottom, width=0.85, color=colours(i % 10),
                              label=activity.replace("_", " "), linewidth=0)  # fmt: skip
                    bottom += values[:, i]
                panel.set_title(str(name)[:100], fontsize="small", parse_math=False)
            for panel in panels[len(students) :]:
                panel.set_visible(False)
            if not students:
                panels[0].text(
                    0.5, 0.5, "no students", ha="center", va="center", transform=panels[0].transAxes
                )
            step = max(1, len(periods) // 12)
            for panel in panels:
                panel.set_xticks(x[::step], [periods[i] for i in range(0, len(periods), step)], rotation=45,
                                 ha="right", fontsize="x-small")  # fmt: skip
            figure.supylabel("minutes logged", fontsize="small")
            if spec.get("title"):
                figure.suptitle(spec["title"][:200], parse_math=False)
            handles, labels = panels[0].get_legend_handles_labels()
            if handles:
                figure.legend(handles, labels, loc="lower center", ncols=len(handles), fontsize="x-small",
                              frameon=False)  # fmt: skip
            path = _save(figure, spec, out_dir, reporter, rect=(0, 0.06 if handles else 0, 1, 1))
        finally:
            plt.close(figure)
    return {
        "path": str(path),
        "format": spec["format"],
        "rows": len(students) * len(periods),
        "points_drawn": len(students) * len(periods) * len(activities),
        "decimated": False,
        "notes": notes,
        "versions": library_versions(),
    }


def _decorate(axes: Axes, spec: dict[str, Any]) -> None:
    # math parsing off: a "$" in a title is a dollar sign, not the start of a formula
    if spec.get("title"):
        axes.set_title(spec["title"], parse_math=False)
    x_label = spec.get("x_label") or (spec.get("x") or ("row" if spec["kind"] in ("line", "scatter") else ""))
    y_label = spec.get("y_label") or (
        ", ".join(spec.get("y", [])) if spec["kind"] != "histogram" else "count"
    )
    axes.set_xlabel(x_label[:100], parse_math=False)
    axes.set_ylabel(y_label[:100], parse_math=False)
    if spec.get("log_x"):
        axes.set_xscale("log")
    if spec.get("log_y"):
        axes.set_yscale("log")
    handles, _ = axes.get_legend_handles_labels()
    if len(handles) > 1:
        legend = axes.legend(fontsize="small")
        for text in legend.get_texts():
            text.set_parse_math(False)
