"""Visualizations (docs/architecture.md, "The job path"): a plot spec checked against a dataset's schema, rendered by a job."""

from __future__ import annotations

import enum
import re
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any, Literal

import attrs

from domain.core.errors import field_error
from domain.datasets.models import NUMBER_TYPES
from domain.jobs.models import Job, error_map

MAX_TITLE = 200
MAX_LABEL = 100
MAX_SERIES = 20
MAX_PIXELS = 12_000_000
NUMERIC = NUMBER_TYPES
TIME = {"datetime", "date", "time"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_TIME_NAME = re.compile(r"^(t|time|timestamp|date|datetime|zeit)\b", re.IGNORECASE)


class PlotKind(enum.StrEnum):
    LINE = "line"
    SCATTER = "scatter"
    HISTOGRAM = "histogram"
    BAR = "bar"
    BOX = "box"
    HEATMAP = "heatmap"


@attrs.frozen
class RowRange:
    start: int = 0
    end: int | None = None


@attrs.frozen
class PlotSpec:
    """What to draw. x defaults to the row index for line and scatter plots."""

    kind: PlotKind
    x: str | None = None
    y: list[str] = attrs.field(factory=list)
    group_by: str | None = None
    title: str = ""
    x_label: str = ""
    y_label: str = ""
    log_x: bool = False
    log_y: bool = False
    bins: int = 50
    width: int = 1000
    height: int = 600
    dpi: int = 100
    format: Literal["png", "svg"] = "png"
    row_range: RowRange | None = None


@attrs.frozen
class Visualization:
    """source "dataset": a plot of dataset_id's version `version` (its Parquet's sha256 is
    dataset_version; newer_version says when the dataset has a newer one); source
    "engagement": a project's logged time, with the query in `engagement` and dataset_version the
    sha256 of the table drawn."""

    id: str
    project_id: str
    job_id: str
    spec: PlotSpec
    status: str
    created_by: str
    created_at: datetime
    source: Literal["dataset", "engagement"] = "dataset"
    dataset_id: str | None = None
    dataset_version: str = ""
    version: int | None = None  # the dataset's version it was drawn from
    dataset_version_id: str | None = None  # that version's own id
    newer_version: int | None = None  # the dataset's latest version, when it is newer than that
    engagement: dict[str, str | None] | None = None
    library_versions: dict[str, str] = attrs.field(factory=dict)
    image: dict[str, Any] | None = None
    error: dict[str, str] | None = None


@attrs.frozen
class StoredPlot:
    """A plot as stored: the visualization (before its job's status is folded in, `with_job`) and
    whose logged time it shows (an engagement plot of one student; None: everyone's, or a dataset's)."""

    visualization: Visualization
    subject_id: str | None = None

    @property
    def id(self) -> str:
        return self.visualization.id

    def with_job(self, job: Job | None) -> Visualization:
        """The visualization with its job's status and error ("unknown" when the job is gone)."""
        if job is None:
            return attrs.evolve(self.visualization, status="unknown", error=None)
        error = error_map(job)
        return attrs.evolve(self.visualization, status=job.status.value, error=error)


def _text(value: str, path: str, maximum: int) -> None:
    if len(value) > maximum:
        raise field_error(path, f"must be at most {maximum} characters")
    if _CONTROL.search(value):
        raise field_error(path, "must not contain control characters")


def _column(name: str | None, path: str, types: dict[str, str], allowed: AbstractSet[str] | None, what: str) -> None:
    if name is None:
        return
    if name not in types:
        raise field_error(path, f"the dataset has no column {name!r}")
    if allowed is not None and types[name] not in allowed:
        raise field_error(path, f"{name!r} holds {types[name]} values; this needs {what}")


def check_layout(spec: PlotSpec) -> None:
    for field, maximum in (("title", MAX_TITLE), ("x_label", MAX_LABEL), ("y_label", MAX_LABEL)):
        _text(getattr(spec, field), f"$.{field}", maximum)
    if not 100 <= spec.width <= 4000:
        raise field_error("$.width", "must be between 100 and 4000 pixels")
    if not 100 <= spec.height <= 4000:
        raise field_error("$.height", "must be between 100 and 4000 pixels")
    if spec.width * spec.height > MAX_PIXELS:
        raise field_error("$.width", f"width × height must be at most {MAX_PIXELS} pixels")
    if not 50 <= spec.dpi <= 300:
        raise field_error("$.dpi", "must be between 50 and 300")
    if not 1 <= spec.bins <= 1000:
        raise field_error("$.bins", "must be between 1 and 1000")
    if spec.row_range is not None:
        start, end = spec.row_range.start, spec.row_range.end
        if start < 0:
            raise field_error("$.row_range.start", "must be 0 or more")
        if end is not None and end <= start:
            raise field_error("$.row_range.end", "must be after start")


def _check_columns(spec: PlotSpec, types: dict[str, str]) -> None:
    if len(spec.y) > MAX_SERIES:
        raise field_error("$.y", f"at most {MAX_SERIES} columns")
    if spec.kind is not PlotKind.BAR and not spec.y:
        raise field_error("$.y", f"a {spec.kind.value} plot needs at least one y column")
    for i, name in enumerate(spec.y):
        _column(name, f"$.y[{i}]", types, NUMERIC, "numbers")
    if spec.kind in (PlotKind.LINE, PlotKind.SCATTER):
        _column(spec.x, "$.x", types, NUMERIC | TIME, "numbers or times")
    elif spec.kind is PlotKind.HEATMAP:
        if spec.x is None:
            raise field_error("$.x", "a heatmap needs an x column")
        _column(spec.x, "$.x", types, NUMERIC, "numbers")
        if len(spec.y) != 1:
            raise field_error("$.y", "a heatmap takes exactly one y column")
    elif spec.kind is PlotKind.BAR:
        if spec.x is None:
            raise field_error("$.x", "a bar plot needs an x column (the categories)")
        _column(spec.x, "$.x", types, None, "")
    _column(spec.group_by, "$.group_by", types, None, "")
    if spec.log_x and spec.x is not None and types.get(spec.x) in TIME:
        raise field_error("$.log_x", "a time axis cannot be logarithmic")


def check_spec(spec: PlotSpec, schema: list[dict[str, Any]]) -> PlotSpec:
    """Refuse what cannot be drawn from this dataset, naming the field; nothing is queued before."""
    check_layout(spec)
    _check_columns(spec, {c["name"]: c["type"] for c in schema})
    return spec


def default_spec(schema: list[dict[str, Any]]) -> PlotSpec | None:
    """A first look at a new dataset: its numbers against time (or the row), or their histograms."""
    numeric = [c["name"] for c in schema if c["type"] in NUMERIC]
    time_like = next(
        (
            c["name"]
            for c in schema
            if c["type"] in TIME or (c["type"] in NUMERIC and _TIME_NAME.match(c["name"]))
        ),
        None,
    )
    series = [n for n in numeric if n != time_like][:8]
    if not series:
        return None
    if time_like is not None:
        return PlotSpec(kind=PlotKind.LINE, x=time_like, y=series, title="Overview")
    return PlotSpec(kind=PlotKind.HISTOGRAM, y=series, title="Distributions")
