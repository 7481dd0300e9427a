"""/api/datasets: what ingestion produced; rows read by row group, Parquet and CSV downloads."""

from __future__ import annotations

from typing import Literal

import attrs
from aiohttp import web

from domain.core.pagination import Page
from domain.datasets.models import Dataset, DatasetChange, DatasetRows, DatasetSummary, Series, SeriesRequest
from domain.jobs.models import Job
from domain.sql.models import DatasetDiff, DiffQuery, SavedQuery
from handlers.codec import json_response, parse_body, parse_query
from handlers.downloads import stream_content, stream_file
from handlers.export import stream_csv
from handlers.identity import require_user
from handlers.keys import DATASETS, SERIES, SQL
from handlers.openapi import doc

routes = web.RouteTableDef()


@attrs.frozen
class DatasetListQuery:
    dataset_type: str | None = None
    tag: str | None = None
    limit: int | None = None
    cursor: str | None = None


@attrs.frozen
class VersionQuery:
    """version: which version of the dataset (default: its latest)."""

    version: int | None = None


@attrs.frozen
class RowsQuery:
    """columns: comma-separated names (default: all); version: which version (default: the latest)."""

    offset: int = 0
    limit: int = 100
    columns: str | None = None
    version: int | None = None


@attrs.frozen
class DownloadQuery:
    """columns: comma-separated names (default: all); only those are read and sent; version: which
    version (default: the latest)."""

    format: Literal["parquet", "csv", "arrow"] = "parquet"
    columns: str | None = None
    version: int | None = None


@routes.get("/api/projects/{pid}/datasets")
@doc("The project's datasets, newest first; filter by dataset_type and tag", query=DatasetListQuery,
     response=Page[DatasetSummary])  # fmt: skip
async def list_datasets(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, DatasetListQuery)
    page = await request.app[DATASETS].list_datasets(
        actor, request.match_info["pid"], dataset_type=query.dataset_type, tag=query.tag, limit=query.limit,
        cursor=query.cursor,
    )  # fmt: skip
    return json_response(page)


@routes.post("/api/projects/{pid}/datasets")
@doc("Save a query as a dataset: the statement (as POST /api/sql takes it) runs as a job, and its whole "
     "result becomes a new dataset of this project, with schema, statistics and the query and its "
     "input datasets as provenance; the job's result names the dataset", body=SavedQuery, response=Job,
     status=202)  # fmt: skip
async def save_query(request: web.Request) -> web.Response:
    actor = await require_user(request)
    body = await parse_body(request, SavedQuery)
    job = await request.app[SQL].save(actor, request.match_info["pid"], body)
    return json_response(job, status=202, headers={"Location": f"/api/jobs/{job.id}"})


@routes.get("/api/datasets/{id}")
@doc("A dataset (its latest version, or ?version=): schema, row count, statistics, sample rows, warnings, "
     "source and provenance, its version and latest_version", query=VersionQuery, response=Dataset)  # fmt: skip
async def get_dataset(request: web.Request) -> web.Response:
    actor = await require_user(request)
    version = parse_query(request, VersionQuery).version
    return json_response(await request.app[DATASETS].get(actor, request.match_info["id"], version))


@routes.patch("/api/datasets/{id}")
@doc("Change a dataset: key_columns, which identify a row across its versions (creator, leads, heads)",
     body=DatasetChange, response=Dataset)  # fmt: skip
async def change_dataset(request: web.Request) -> web.Response:
    actor = await require_user(request)
    change = await parse_body(request, DatasetChange)
    return json_response(await request.app[DATASETS].change(actor, request.match_info["id"], change))


@routes.get("/api/datasets/{id}/diff")
@doc("What changed between two versions (default: the latest and the one before): columns added, "
     "dropped, retyped and with new units; the row count; each column's statistics; with key columns, "
     "rows added, removed and changed (counts and the first 100 of each)", query=DiffQuery,
     response=DatasetDiff)  # fmt: skip
async def diff_dataset(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, DiffQuery)
    diff = await request.app[SQL].diff(
        actor, request.match_info["id"], before=query.from_, after=query.to, key=query.key
    )
    return json_response(diff)


@routes.get("/api/datasets/{id}/versions")
@doc("Every version of a dataset, oldest first (a new version comes from an ingestion with version_of)",
     response=list[DatasetSummary])  # fmt: skip
async def dataset_versions(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[DATASETS].versions(actor, request.match_info["id"]))


@routes.get("/api/datasets/{id}/rows")
@doc("A page of rows, read from the Parquet file by row group", query=RowsQuery, response=DatasetRows)
async def dataset_rows(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, RowsQuery)
    columns = [c.strip() for c in query.columns.split(",") if c.strip()] if query.columns else None
    rows = await request.app[DATASETS].rows(
        actor, request.match_info["id"], offset=query.offset, limit=query.limit, columns=columns,
        version=query.version,
    )  # fmt: skip
    return json_response(rows)


@routes.get("/api/datasets/{id}/download")
@doc("The whole dataset as Parquet (Range works), CSV (streamed, formula-safe) or Arrow IPC (a stream); "
     "with columns, only those columns", query=DownloadQuery,
     response=bytes, response_content_type=("application/vnd.apache.parquet", "text/csv",
                                            "application/vnd.apache.arrow.stream"),
     also={206: "the byte range a Range header asked for", 304: "unchanged since If-None-Match"})  # fmt: skip
async def download_dataset(request: web.Request) -> web.StreamResponse:
    actor = await require_user(request)
    query = parse_query(request, DownloadQuery)
    service = request.app[DATASETS]
    columns = [c.strip() for c in query.columns.split(",") if c.strip()] if query.columns else None
    dataset_id, version = request.match_info["id"], query.version
    if query.format == "csv":
        name, header, rows = await service.csv_rows(actor, dataset_id, columns, version)
        return await stream_csv(request, name, header, rows)
    if query.format == "arrow" or columns:
        name, media, path = await service.columns_file(actor, dataset_id, columns, query.format, version)
        return await stream_file(request, path, name, media)
    return await stream_content(request, await service.parquet(actor, dataset_id, version), service.open)


ARROW_STREAM = "application/vnd.apache.arrow.stream"


@routes.get("/api/datasets/{id}/series")
@doc("A chart's series: per y, at most 2 × points values whose per-group minimum and maximum are "
     "exactly the data's at any zoom (from the summary kept at ingestion, source=summary), or every row "
     "when the range holds no more than 2 × points rows (source=raw); null y is a gap. JSON or an Arrow IPC "
     "stream (one row per point: series, x, y) by format or Accept. A dataset stored before summaries "
     "existed gets one by a job on first use: 202 with the job while it runs", query=SeriesRequest,
     response=Series, response_content_type=("application/json", ARROW_STREAM),
     also={202: "the dataset's summary is being made: the job (Location), ask again when it ends"})  # fmt: skip
async def dataset_series(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, SeriesRequest)
    if "format" not in request.query and ARROW_STREAM in request.headers.get("Accept", ""):
        query = attrs.evolve(query, format="arrow")
    answer = await request.app[SERIES].series(actor, request.match_info["id"], query)
    if isinstance(answer, bytes):
        return web.Response(body=answer, content_type=ARROW_STREAM)
    if isinstance(answer, Job):
        return json_response(answer, status=202, headers={"Location": f"/api/jobs/{answer.id}", "Retry-After": "2"})
    return json_response(answer)


@routes.get("/api/datasets/{id}/raw")
@doc("The file the dataset (its latest version, or ?version=) was made from, as uploaded (its media type "
     "as uploaded, or octet-stream for active content)", query=VersionQuery, response=bytes,
     response_content_type="*/*",
     also={206: "the byte range a Range header asked for", 304: "unchanged since If-None-Match"})  # fmt: skip
async def dataset_raw(request: web.Request) -> web.StreamResponse:
    actor = await require_user(request)
    service = request.app[DATASETS]
    version = parse_query(request, VersionQuery).version
    return await stream_content(request, await service.raw(actor, request.match_info["id"], version), service.open)


@routes.delete("/api/datasets/{id}")
@doc("Delete a dataset with every version and its files (creator, leads, heads)", status=204)
async def delete_dataset(request: web.Request) -> web.Response:
    actor = await require_user(request)
    await request.app[DATASETS].delete(actor, request.match_info["id"])
    return web.Response(status=204)
