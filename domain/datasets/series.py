"""A dataset's series for charts: answered from its summary (workers/series.py), kept open in memory for
the next zoom; a dataset stored before summaries existed gets one on first use, by a job
(docs/architecture.md, "Series")."""

from __future__ import annotations

import asyncio
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Any

from domain.accounts.models import User
from domain.core.errors import Conflict, field_error
from domain.core.flight import SingleFlight
from domain.core.ids import derived_id
from domain.datasets.models import NUMBER_TYPES, Series, SeriesAxis, SeriesLine, SeriesRequest, StoredDataset
from domain.datasets.service import DatasetsService
from domain.infra.localfiles import LocalFiles
from domain.jobs.models import Attempt, Job, JobKind
from domain.jobs.service import JobsService
from workers.series import (
    MAX_POINTS,
    RowsNeeded,
    SeriesError,
    SeriesSource,
    arrow_stream,
    json_values,
    parse_bound,
)
from workers.summary import is_time
from workers.worker import JobFailed

SUMMARY_KIND = "dataset_summary"
ROW_NUMBER = "_row"  # x=_row asks for the row number (unless a column has that name)
DEFAULT_YS = 4  # without y: the first columns of numbers
SOURCES_KEPT = 32


class SeriesService:
    def __init__(
        self, datasets: DatasetsService, jobs: JobsService, files: LocalFiles, *, zone: str, wait_s: float = 20.0,
        cache_bytes: int = 512 * 1024**2,
    ) -> None:  # fmt: skip
        self._zone = zone  # the lab's: where a time with a zone is shown
        self._datasets = datasets
        self._jobs = jobs
        self._files = files
        self._wait_s = wait_s
        self._cache_bytes = cache_bytes
        self._sources: OrderedDict[tuple[str, str], SeriesSource] = OrderedDict()
        self._opening: SingleFlight[tuple[str, str], SeriesSource] = SingleFlight()

    def job_kind(self) -> JobKind:
        return JobKind(
            SUMMARY_KIND, "workers.series:build_summary", title="Chart summary", prepare=self._prepare,
            commit=self._commit, cleanup=self._cleanup, timeout_s=3600.0, max_attempts=2, prepare_stage="read",
            commit_stage="store",
        )  # fmt: skip

    async def series(self, actor: User, dataset_id: str, request: SeriesRequest) -> Series | bytes | Job:
        """The series asked for (JSON model or Arrow IPC bytes), or the job still making the dataset's
        summary (a dataset stored before summaries existed)."""
        stored = await self._datasets.readable(actor, dataset_id, request.version)
        if not 2 <= request.points <= MAX_POINTS:
            raise field_error("query.points", f"must be between 2 and {MAX_POINTS}")
        schema = {c.name: c for c in stored.dataset.schema}
        ys = [name.strip() for name in (request.y or "").split(",") if name.strip()]
        for name in ys:
            if name not in schema:
                raise field_error("query.y", f"unknown column {name!r}")
            if schema[name].type not in NUMBER_TYPES:
                raise field_error("query.y", f"column {name!r} does not hold numbers, so it cannot be drawn as a y")
        asked_x = request.x.strip() if request.x else None
        if asked_x and asked_x not in schema and asked_x != ROW_NUMBER:
            raise field_error("query.x", f"unknown column {asked_x!r}")
        if stored.summary_key is None:
            made = await self._summary_of(stored)
            if isinstance(made, Job):
                return made
            stored = made
        source = await self._source(stored)
        x = source.x if not asked_x else None if asked_x == ROW_NUMBER and asked_x not in schema else asked_x
        if not ys:
            ys = [f.name for f in source.schema if f.name != x and not is_time(f)][:DEFAULT_YS]
        try:
            source.check(x, ys, set(schema))
            x_field = source.schema.field(x) if x is not None else None
            low = parse_bound(request.from_, x_field, "from")
            high = parse_bound(request.to, x_field, "to")
            answer = await self._answer(stored, source, x, ys, low, high, request.points, set(schema))
        except SeriesError as exc:
            raise field_error(f"query.{exc.field}", str(exc)) from None
        if request.format == "arrow":
            return await asyncio.to_thread(arrow_stream, answer, x_field)
        whole = x is None
        return Series(
            x=SeriesAxis(
                name=x, unit=schema[x].unit if x is not None else None,
                type="row" if x_field is None else "time" if is_time(x_field) else "number",
                timezone=getattr(x_field.type, "tz", None) if x_field is not None else None,
                lab_timezone=self._zone, extent=json_values(source.extent(x), x_field, whole=whole),
            ),
            series=[
                SeriesLine(
                    name=line["name"], unit=schema[line["name"]].unit, x=json_values(line["x"], x_field, whole=whole),
                    y=json_values(line["y"], source.schema.field(line["name"])),
                )
                for line in answer["series"]
            ],
            source=answer["source"],
            rows=list(answer["rows"]),
        )  # fmt: skip

    async def _answer(
        self, stored: StoredDataset, source: SeriesSource, x: str | None, ys: list[str], low: float | None,
        high: float | None, points: int, known: set[str],
    ) -> dict[str, Any]:  # fmt: skip
        """From the summary alone when it can (a first, whole view); with the Parquet file for a zoom."""
        try:
            return await asyncio.to_thread(source.answer, x, ys, low, high, points, known)
        except RowsNeeded:
            pass
        source.attach_rows(await self._datasets.local_parquet(stored))
        return await asyncio.to_thread(source.answer, x, ys, low, high, points, known)

    async def _source(self, stored: StoredDataset) -> SeriesSource:
        """The dataset's summary, opened once per version and kept for the next zoom."""
        key = (stored.id, stored.parquet_sha256)
        if key in self._sources:
            self._sources.move_to_end(key)
            return self._sources[key]

        async def open_source() -> SeriesSource:
            summary = await self._datasets.local_summary(stored)
            assert summary is not None
            return await asyncio.to_thread(SeriesSource, summary)  # rows are attached when a zoom needs them

        source = await self._opening.run(key, open_source)
        self._sources[key] = source
        while len(self._sources) > SOURCES_KEPT or (
            len(self._sources) > 1 and sum(s.nbytes for s in self._sources.values()) > self._cache_bytes
        ):
            self._sources.popitem(last=False)
        return source

    # -- summaries for datasets stored without one ---------------------------------------------------

    async def _summary_of(self, stored: StoredDataset) -> StoredDataset | Job:
        """The dataset with its summary, made by a job (one per dataset version, however many ask);
        the job itself if it takes longer than wait_s."""
        job_id = derived_id(f"summary:{stored.id}:{stored.parquet_sha256}")
        job = await self._jobs.find(job_id)
        if job is None or (job.final and job.status.value != "succeeded"):
            if job is not None and job.status.value == "failed":
                message = job.error.message if job.error else "the summary could not be made"
                raise Conflict(f"this dataset cannot be drawn: {message}", code="summary_failed")
            job = await self._jobs.enqueue(
                stored.dataset.created_by, stored.dataset.project_id, SUMMARY_KIND, {"dataset_id": stored.id},
                job_id=job_id,
            )  # fmt: skip
        deadline = asyncio.get_running_loop().time() + self._wait_s
        while True:
            again = await self._datasets.find_version(stored.id)
            if again is None:
                raise field_error("path.id", "the dataset was deleted")
            if again.summary_key is not None:
                return again
            job = await self._jobs.find(job_id) or job
            if job.final and job.status.value != "succeeded":
                message = job.error.message if job.error else "the summary could not be made"
                raise Conflict(f"this dataset cannot be drawn: {message}", code="summary_failed")
            if asyncio.get_running_loop().time() > deadline:
                return job
            await asyncio.sleep(0.2)

    async def _prepare(self, job: Job) -> dict[str, Any]:
        stored = await self._datasets.find_version(job.params["dataset_id"])
        if stored is None:
            raise JobFailed("dataset_gone", "the dataset was deleted before its summary was made")
        out = self._files.work_dir(job.id, job.attempt)
        shutil.rmtree(out, ignore_errors=True)
        path = await self._datasets.local_parquet(stored)
        return {"parquet_path": str(path), "out_dir": str(out)}

    async def _commit(self, job: Job, result: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
        stored = await self._datasets.find_version(job.params["dataset_id"])
        if stored is None:
            raise JobFailed("dataset_gone", "the dataset was deleted before its summary was stored")
        if stored.summary_key is None and not await self._datasets.set_summary(
            stored, Path(result["summary_path"]), result["sorted_columns"]
        ):
            raise JobFailed(
                "dataset_gone", "the dataset changed or was deleted before its summary was stored"
            )
        return {"dataset_id": stored.id, "sorted_columns": result["sorted_columns"]}

    async def _cleanup(self, job: Job) -> None:
        shutil.rmtree(self._files.work_dir(job.id, job.attempt), ignore_errors=True)
