"""Datasets and ingestions: what an upload of instrument files becomes, and the options it takes."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

import attrs

from domain.core.errors import field_error
from domain.core.ids import derived_id, looks_like_id
from domain.jobs.models import Job, error_map

MAX_LABEL = 64
PARQUET = "application/vnd.apache.parquet"
NUMBER_TYPES = frozenset({"integer", "number"})  # the schema's names for columns of numbers
MAX_FILES_PER_BATCH = 100
MAX_CUSTOM_HEADERS = 2000


@attrs.frozen
class ColumnSchema:
    name: str
    type: str
    unit: str | None = None


@attrs.frozen
class SourceFile:
    name: str
    size: int
    sha256: str
    content_type: str


@attrs.frozen
class Dataset:
    id: str
    project_id: str
    job_id: str
    name: str
    sheet: str | None
    dataset_type: str | None
    tag: str | None
    schema: list[ColumnSchema]
    row_count: int
    stats: dict[str, Any]
    sample: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    metadata: dict[str, Any]
    source: SourceFile
    provenance: dict[str, Any]
    created_by: str
    created_at: datetime
    parquet_bytes: int = 0
    visualizations: list[dict[str, Any]] = attrs.field(factory=list)
    sorted_columns: list[str] = attrs.field(factory=list)  # never decreasing, no gaps: what may be a chart's x
    version: int = 1  # this version's number (docs/architecture.md, "Versions")
    latest_version: int = 1  # the dataset's newest version
    version_id: str = ""  # this version's own id (the first version's is the dataset's)
    published: dict[str, Any] | None = None  # {slug, license, description, published_at, by}: public
    part: str | None = None  # the sheet, group or segment of the file it was made from
    key_columns: list[str] = attrs.field(factory=list)  # what identifies a row across versions (diff)


@attrs.frozen
class DatasetChange:
    """PATCH /api/datasets/{id}: key_columns, the columns that identify a row across the dataset's
    versions (the diff compares rows by them; [] for none)."""

    key_columns: list[str] | None = None


@attrs.frozen
class NewDataset:
    """A dataset an ingestion attempt made, as it hands it to the store."""

    project_id: str
    name: str
    sheet: str | None
    dataset_type: str | None
    tag: str | None
    schema: list[dict[str, Any]]
    row_count: int
    stats: dict[str, dict[str, Any]]
    sample: list[dict[str, Any]]
    warnings: list[Any]
    metadata: dict[str, Any]
    source: dict[str, Any]
    provenance: dict[str, Any]
    parquet_key: str
    parquet_bytes: int
    parquet_sha256: str
    created_by: str
    created_at: datetime
    summary_key: str | None = None  # the min/max levels (workers/summary.py), beside the Parquet
    sorted_columns: list[str] = attrs.field(factory=list)  # never decreasing, no gaps: x candidates
    part: str | None = None  # the sheet, group or segment of the file it was made from


@attrs.frozen
class DatasetFile:
    """Where a dataset version's Parquet is (S3 key and hash: the local cache's name for it); id is
    the dataset's, version its number."""

    id: str
    project_id: str
    parquet_key: str
    parquet_sha256: str
    version: int = 1
    version_id: str = ""  # the version's own id (its local copies are named by it)


@attrs.frozen
class DatasetEntry:
    """A dataset as the SQL catalog lists it."""

    id: str
    project_id: str
    name: str
    schema: list[ColumnSchema]
    row_count: int
    created_at: datetime
    parquet_key: str = ""
    parquet_sha256: str = ""
    version: int = 1
    version_id: str = ""

    @property
    def file(self) -> DatasetFile:
        return DatasetFile(
            self.id, self.project_id, self.parquet_key, self.parquet_sha256, self.version, self.version_id
        )


@attrs.frozen
class StoredDataset:
    """A dataset and where its bytes are: what services work with (the API shows `dataset`)."""

    dataset: Dataset
    parquet_key: str
    parquet_sha256: str
    summary_key: str | None = None

    @property
    def id(self) -> str:
        """This version's own id: what its objects, caches and jobs are keyed by."""
        return self.dataset.version_id or self.dataset.id

    @property
    def file(self) -> DatasetFile:
        return DatasetFile(
            self.dataset.id, self.dataset.project_id, self.parquet_key, self.parquet_sha256, self.dataset.version,
            self.id,
        )

    @property
    def columns(self) -> list[dict[str, Any]]:
        """The schema as plain maps (name, type, unit), as plot specs and workers take it."""
        return [attrs.asdict(c) for c in self.dataset.schema]


@attrs.frozen
class DatasetSummary:
    id: str
    project_id: str
    job_id: str
    name: str
    sheet: str | None
    dataset_type: str | None
    tag: str | None
    row_count: int
    columns: int
    created_at: datetime
    version: int = 1
    version_id: str = ""  # this version's own id
    created_by: str = ""
    source_name: str = ""  # the file it was made from


@attrs.frozen
class DatasetRows:
    columns: list[str]
    rows: list[dict[str, Any]]
    offset: int
    limit: int
    total: int


@attrs.frozen
class ParseRange:
    start_line: int = 1
    end_line: int | None = None


@attrs.frozen
class ManifestEntry:
    """Per-file options, aligned with the uploaded files."""

    ingest: bool = True
    sheets: list[str] | None = None
    parse_range: ParseRange | None = None
    variables: list[str] | None = None
    profile: Literal["wind_tunnel", "labview_lvm"] | None = None
    visualize: bool = False


@attrs.frozen
class IngestOptions:
    dataset_type: str | None = None
    tag: str | None = None
    header_mode: Literal["file", "none", "custom"] = "file"
    custom_headers: list[str] | None = None
    manifest: list[ManifestEntry] = attrs.field(factory=list)
    version_of: str | None = None  # a dataset of the project this one file becomes a new version of


@attrs.frozen(kw_only=True)
class UploadedIngestion(IngestOptions):
    """A JSON body: finished resumable uploads (POST /api/uploads) to ingest, in manifest order,
    with the same options as the multipart form."""

    upload_ids: list[str]

    def options(self) -> IngestOptions:
        return IngestOptions(**{f.name: getattr(self, f.name) for f in attrs.fields(IngestOptions)})


def _check_headers(options: IngestOptions) -> None:
    if options.header_mode == "custom":
        if not options.custom_headers:
            raise field_error("$.custom_headers", "is required when header_mode is custom")
        if len(options.custom_headers) > MAX_CUSTOM_HEADERS:
            raise field_error("$.custom_headers", f"at most {MAX_CUSTOM_HEADERS} names")
        for i, name in enumerate(options.custom_headers):
            if not name.strip() or len(name) > 200:
                raise field_error(f"$.custom_headers[{i}]", "must be 1-200 characters")
    elif options.custom_headers:
        raise field_error("$.custom_headers", "is only used with header_mode custom")


def check_labels(**labels: str | None) -> None:
    """A dataset's dataset_type and tag: absent, or 1-MAX_LABEL characters."""
    for field, value in labels.items():
        if value is not None and (not value.strip() or len(value) > MAX_LABEL):
            raise field_error(f"$.{field}", f"must be 1-{MAX_LABEL} characters")


def finite_number(value: Any) -> int | float | None:
    """A statistic as a number to compute with or publish: None for text, booleans, NaN and infinities."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value if math.isfinite(value) else None


def check_options(options: IngestOptions) -> IngestOptions:
    """The rules the shapes alone do not say; each failure names its field."""
    check_labels(dataset_type=options.dataset_type, tag=options.tag)
    if options.version_of is not None and not looks_like_id(options.version_of):
        raise field_error("$.version_of", "must be a dataset id")
    _check_headers(options)
    for i, entry in enumerate(options.manifest):
        if entry.parse_range is not None:
            start, end = entry.parse_range.start_line, entry.parse_range.end_line
            if start < 1:
                raise field_error(f"$.manifest[{i}].parse_range.start_line", "lines are numbered from 1")
            if end is not None and end < start:
                raise field_error(f"$.manifest[{i}].parse_range.end_line", "must not be before start_line")
        for key in ("sheets", "variables"):
            values = getattr(entry, key)
            if values is not None and (not values or any(not v.strip() for v in values)):
                raise field_error(f"$.manifest[{i}].{key}", "must list at least one non-empty name")
    return options


@attrs.frozen
class IngestionJob:
    id: str
    file: str
    sheet: str | None
    status: str


@attrs.frozen
class IngestionBatch:
    batch_id: str
    jobs: list[IngestionJob]


@attrs.frozen
class Ingestion:
    id: str
    project_id: str
    batch_id: str
    file: SourceFile
    sheet: str | None
    status: str
    options: dict[str, Any]
    created_by: str
    created_at: datetime
    job_id: str | None = None
    dataset_ids: list[str] = attrs.field(factory=list)
    stored_only: bool = False
    reason: str | None = None
    error: dict[str, str] | None = None
    progress: dict[str, Any] | None = None
    upload_id: str | None = None  # the resumable upload it was made from


def with_job(ingestion: Ingestion, job: Job | None, existing: set[str]) -> Ingestion:
    """An ingestion with its job's live status folded in ("stored" when no job runs for it), and
    what its job made: the datasets of its result that still exist (`existing`), or that it stored
    the file only (the job's final write is the only record of its outcome)."""
    if job is None:
        return attrs.evolve(ingestion, status="stored")
    error = error_map(job)
    progress = None if job.progress is None else {
        "stage": job.progress.stage, "done": job.progress.done, "total": job.progress.total,
    }  # fmt: skip
    outcome: dict[str, Any] = {}
    if job.result is not None:
        stored_only = bool(job.result.get("stored_only"))
        outcome = {
            "dataset_ids": [i for i in made_by(job) if i in existing],
            "stored_only": stored_only, "reason": job.result.get("reason") if stored_only else ingestion.reason,
        }  # fmt: skip
    return attrs.evolve(ingestion, status=job.status.value, error=error, progress=progress, **outcome)


def made_by(job: Job) -> list[str]:
    """The datasets an ingestion's job made, as its result names them (they may be gone since)."""
    ids = (job.result or {}).get("dataset_ids")
    return [str(i) for i in ids] if isinstance(ids, list) else []


# -- where a dataset's bytes are kept ------------------------------------------------------------


def raw_key(sha256: str) -> str:
    return f"raw/{sha256}"


def output_id(job_id: str, output: str) -> str:
    """The id of a job's dataset written to `output`: the same on every attempt, so a retry overwrites."""
    return derived_id(f"{job_id}:{output}")


def dataset_key(dataset_id: str) -> str:
    return f"datasets/{dataset_id}/data.parquet"


def summary_key(dataset_id: str) -> str:
    return f"datasets/{dataset_id}/summary.parquet"


# -- series (docs/architecture.md, "Series") ----------------------------------------------------------


@attrs.frozen
class SeriesRequest:
    """x: a column that never decreases (default: the dataset's x, its first such time column, else
    its first such column of numbers, else the row number; `_row` asks for the row number); y:
    comma-separated columns of numbers (default: the first four); from/to: the x range (a time
    column takes ISO 8601 or seconds since the epoch; the row number counts from 0); points: the
    chart's width in points, 2..4000 (each series answers at most twice as many values); version:
    which version of the dataset (default: its latest)."""

    x: str | None = None
    y: str | None = None
    from_: str | None = None
    to: str | None = None
    points: int = 1000
    format: Literal["json", "arrow"] = "json"
    version: int | None = None


@attrs.frozen
class SeriesAxis:
    """The x: its column (null: the row number), unit, kind, time zone (a time column with one: its
    values end in Z; without, they are as the instrument wrote them), the lab's time zone (where a
    console shows times with a zone) and the dataset's first and last x."""

    name: str | None
    unit: str | None
    type: Literal["number", "time", "row"]
    timezone: str | None
    lab_timezone: str
    extent: list[Any]


@attrs.frozen
class SeriesLine:
    """One y: its points in x order (null y: a gap)."""

    name: str
    unit: str | None
    x: list[Any]
    y: list[Any]


@attrs.frozen
class Series:
    """source: summary (each group's exact min and max at their x) or raw (every row in the range,
    when it holds no more than 2 × points rows); rows: the rows [from, to) the range holds."""

    x: SeriesAxis
    series: list[SeriesLine]
    source: Literal["summary", "raw"]
    rows: list[int]
