"""Visualizations service: plot specs become render jobs; images are stored with all it takes to
render them again identically (the spec, the dataset's version, the libraries' versions)."""

from __future__ import annotations

import hashlib
import json
import shutil
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import attrs

from domain.accounts.models import User
from domain.core.clock import utcnow
from domain.core.content import Content
from domain.core.errors import NotFound
from domain.core.pagination import Page, clamp_limit
from domain.datasets.models import StoredDataset
from domain.datasets.service import DatasetsService
from domain.infra.localfiles import LocalFiles, file_chunks
from domain.infra.mongo import Document
from domain.infra.objects import ObjectReader, ObjectStore
from domain.jobs.models import Attempt, Job, JobKind
from domain.jobs.service import JobsService
from domain.projects.models import Need, Project, check_owner_or_lead, manages
from domain.projects.service import ProjectGate
from domain.visualizations.models import PlotSpec, StoredPlot, Visualization, check_spec, default_spec
from domain.visualizations.store import ENGAGEMENT_TABLE, VisualizationStore
from workers.worker import JobFailed

PLOTS = "workers.plots"  # imported by the workers only

PLOT_KIND = "plot"
ENGAGEMENT_PLOT_KIND = "engagement_plot"
ENGAGEMENT = "engagement"
MEDIA_TYPES = {"png": "image/png", "svg": "image/svg+xml"}


def image_key(visualization_id: str, fmt: str) -> str:
    return f"visualizations/{visualization_id}.{fmt}"


def _sees_time_of(actor: User, project: Project, subject_id: str | None) -> bool:
    """Logged time is everyone's to leads and heads, and a student's own to them (subject_id None:
    every student's)."""
    return manages(actor, project) or (subject_id is not None and subject_id == actor.id)


def _sees(actor: User, project: Project, plot: StoredPlot) -> bool:
    if plot.visualization.source != ENGAGEMENT:
        return True
    return _sees_time_of(actor, project, plot.subject_id)


def _sees_engagement_job(actor: User, project: Project, job: Job) -> bool:
    """Its job shows no more than the plot: only those who may see the plot see the job."""
    subject = job.params.get("subject_id")
    return _sees_time_of(actor, project, subject if isinstance(subject, str) else None)


class VisualizationsService:
    def __init__(
        self,
        gate: ProjectGate,
        store: VisualizationStore,
        dataset_service: DatasetsService,
        jobs: JobsService,
        objects: ObjectStore,
        files: LocalFiles,
        *,
        part_size: int,
    ) -> None:
        self._gate = gate
        self._store = store
        self._dataset_service = dataset_service
        self._jobs = jobs
        self._objects = objects
        self._files = files
        self._part_size = part_size

    def job_kinds(self) -> list[JobKind]:
        common: dict[str, Any] = {"commit": self._commit, "cleanup": self._cleanup, "timeout_s": 600.0,
                                  "max_attempts": 2, "commit_stage": "store"}  # fmt: skip
        return [
            JobKind(PLOT_KIND, f"{PLOTS}:render_plot", title="Plot", prepare=self._prepare, prepare_stage="read",
                    **common),
            JobKind(
                ENGAGEMENT_PLOT_KIND, f"{PLOTS}:render_engagement", title="Engagement plot", prepare=self._prepare_engagement,
                prepare_stage="prepare", visible=_sees_engagement_job, **common,
            ),
        ]  # fmt: skip

    async def create(self, actor: User, dataset_id: str, spec: PlotSpec, version: int | None = None) -> Visualization:
        dataset = await self._dataset_service.find(dataset_id, version)
        if dataset is None:
            raise NotFound("dataset not found")
        await self._gate.require(actor, dataset.dataset.project_id, Need.WRITE, what="dataset")
        check_spec(spec, dataset.columns)
        await self._jobs.quotas.check_jobs(actor.id)
        return await self._queue(actor.id, dataset, spec)

    async def queue_default(self, owner_id: str, version_id: str) -> Visualization | None:
        """The first plot of a freshly ingested dataset version (manifest `visualize: true`)."""
        dataset = await self._dataset_service.find_version(version_id)
        spec = default_spec(dataset.columns) if dataset else None
        if dataset is None or spec is None:
            return None
        return await self._queue(owner_id, dataset, spec)

    async def _queue(self, owner_id: str, dataset: StoredDataset, spec: PlotSpec) -> Visualization:
        fields = {"dataset_id": dataset.dataset.id, "dataset_version": dataset.parquet_sha256,
                  "version": dataset.dataset.version, "dataset_version_id": dataset.id}  # fmt: skip
        params = {"dataset_id": dataset.id}  # this very version
        return await self._enqueue(owner_id, dataset.dataset.project_id, PLOT_KIND, spec, fields, params)

    async def queue_engagement(
        self, owner_id: str, project_id: str, subject_id: str | None, spec: PlotSpec, query: dict[str, str | None],
        table: dict[str, Any],
    ) -> Visualization:  # fmt: skip
        """A plot of logged time (the table: periods × activities per student, built by the
        engagement service); subject_id: whose time it shows (None: the project's students).

        The table holds people's time: it is kept in the plot's record, which only those who may see
        the plot can read, and the job refers to it (the job's params are shown with the job)."""
        await self._jobs.quotas.check_jobs(owner_id)
        encoded = json.dumps(table, sort_keys=True, separators=(",", ":")).encode()
        fields = {"source": ENGAGEMENT, "subject_id": subject_id, "engagement": query, "dataset_id": None,
                  "dataset_version": hashlib.sha256(encoded).hexdigest(), ENGAGEMENT_TABLE: table}  # fmt: skip
        return await self._enqueue(
            owner_id, project_id, ENGAGEMENT_PLOT_KIND, spec, fields, {"subject_id": subject_id}
        )

    async def _enqueue(
        self, owner_id: str, project_id: str, kind: str, spec: PlotSpec, fields: Document,
        params: dict[str, Any],
    ) -> Visualization:  # fmt: skip
        """Store the plot's record (its _id is its job's) and queue the job that renders it."""
        visualization_id = self._store.new_id()
        doc = {
            "_id": visualization_id,
            "project_id": project_id,
            **fields,
            "job_id": visualization_id,
            "spec": attrs.asdict(spec),
            "created_by": owner_id,
            "created_at": utcnow(),
            "library_versions": {},
            "image": None,
        }
        plot = await self._store.insert(doc)
        job = await self._jobs.enqueue(
            owner_id, project_id, kind, {"spec": doc["spec"], **params}, job_id=visualization_id
        )
        return plot.with_job(job)

    # -- the job kinds ----------------------------------------------------------------------------

    async def _prepare(self, job: Job) -> dict[str, Any]:
        dataset = await self._dataset_service.find_version(job.params["dataset_id"])
        if dataset is None:
            raise JobFailed("dataset_gone", "the dataset was deleted before the plot was drawn")
        path = await self._dataset_service.local_parquet(dataset)
        summary = await self._dataset_service.local_summary(dataset)  # a long line plot draws from it
        out = self._files.work_dir(job.id, job.attempt)
        shutil.rmtree(out, ignore_errors=True)
        return {"parquet_path": str(path), "spec": job.params["spec"], "out_dir": str(out),
                "summary_path": str(summary) if summary else None}  # fmt: skip

    async def _prepare_engagement(self, job: Job) -> dict[str, Any]:
        # the plot's record (its id is its job's); jobs queued before the table moved to the record
        # still carry it themselves
        table = await self._store.engagement_table(job.id) or job.params.get("table")
        if table is None:
            raise JobFailed("plot_gone", "the plot was deleted before it was drawn")
        out = self._files.work_dir(job.id, job.attempt)
        shutil.rmtree(out, ignore_errors=True)
        return {"table": table, "spec": job.params["spec"], "out_dir": str(out)}

    async def _commit(self, job: Job, result: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
        fmt = result["format"]
        key = image_key(job.id, fmt)
        path = Path(result["path"])
        stored = await self._objects.put_stream(
            key, file_chunks(path), max_bytes=2**40, part_size=self._part_size, content_type=MEDIA_TYPES[fmt]
        )
        image = {"key": key, "format": fmt, "size": stored.size, "sha256": stored.sha256,
                 "points_drawn": result["points_drawn"], "decimated": result["decimated"], "notes": result["notes"],
                 "rendered_at": utcnow()}  # fmt: skip
        if not await self._store.write_output(
            job.id, {"image": image, "library_versions": result["versions"]}, attempt
        ):
            raise JobFailed("stale_attempt", "a newer attempt of this plot has already stored its image")
        return {
            "visualization_id": job.id,
            "format": fmt,
            "size": stored.size,
            "points_drawn": result["points_drawn"],
        }

    async def _cleanup(self, job: Job) -> None:
        shutil.rmtree(self._files.work_dir(job.id, job.attempt), ignore_errors=True)

    # -- reading and deleting --------------------------------------------------------------------

    async def list_visualizations(
        self, actor: User, project_id: str, *, dataset_id: str | None, limit: int | None, cursor: str | None
    ) -> Page[Visualization]:
        project = await self._gate.require(actor, project_id, Need.READ)
        plots, next_cursor = await self._store.page(
            project.id, dataset_id=dataset_id, limit=clamp_limit(limit), cursor=cursor,
            engagement_of=None if manages(actor, project) else actor.id,
        )  # fmt: skip
        jobs = await self._jobs.find_many([p.visualization.job_id for p in plots])
        return Page([p.with_job(jobs.get(p.visualization.job_id)) for p in plots], next_cursor)

    async def _load(self, actor: User, visualization_id: str, need: Need = Need.READ) -> StoredPlot:
        plot = await self._store.get(visualization_id)
        if plot is None:
            raise NotFound("visualization not found")
        visualization = plot.visualization
        project = await self._gate.require(actor, visualization.project_id, need, what="visualization")
        if not _sees(actor, project, plot):
            raise NotFound("visualization not found")
        if need is Need.WRITE:
            check_owner_or_lead(actor, project, visualization.created_by, "its creator")
        return plot

    async def get(self, actor: User, visualization_id: str) -> Visualization:
        plot = await self._load(actor, visualization_id)
        shown = plot.with_job(await self._jobs.find(plot.visualization.job_id))
        if shown.dataset_id is not None:
            latest = await self._dataset_service.find(shown.dataset_id)
            if latest is not None and latest.dataset.version > (shown.version or 1):
                shown = attrs.evolve(shown, newer_version=latest.dataset.version)
        return shown

    async def image(self, actor: User, visualization_id: str, fmt: str | None) -> Content:
        image = (await self._load(actor, visualization_id)).visualization.image
        if not image:
            raise NotFound("the image is not ready yet; watch the job's events", code="image_not_ready")
        if fmt is not None and fmt != image["format"]:
            raise NotFound(
                f"this plot was rendered as {image['format']}; create another with format {fmt}",
                code="format_not_rendered",
            )
        name = f"plot-{visualization_id}.{image['format']}"
        return Content(image["key"], name, MEDIA_TYPES[image["format"]], image["size"], image["sha256"])

    def open(
        self, content: Content, byte_range: tuple[int, int] | None
    ) -> AbstractAsyncContextManager[ObjectReader]:
        return self._objects.open_read(content.key, byte_range)

    async def delete(self, actor: User, visualization_id: str) -> None:
        plot = await self._load(actor, visualization_id, Need.WRITE)
        job = await self._jobs.find(plot.visualization.job_id)
        if job is not None and not job.final:
            await self._jobs.cancel(actor, job.id)
        await self._remove([await self._store.delete(plot.id)])

    async def _remove(self, plots: list[StoredPlot | None]) -> None:
        images = [p.visualization.image for p in plots if p is not None]
        await self._objects.delete([image["key"] for image in images if image])

    async def summaries_for_dataset(self, dataset_id: str) -> list[dict[str, Any]]:
        plots = await self._store.for_dataset(dataset_id)
        jobs = await self._jobs.find_many([p.visualization.job_id for p in plots])
        return [
            {"id": p.id, "kind": p.visualization.spec.kind, "title": p.visualization.spec.title,
             "status": p.with_job(jobs.get(p.visualization.job_id)).status}
            for p in plots
        ]  # fmt: skip

    async def find(self, visualization_id: str) -> Visualization | None:
        """For an area that checks its caller itself (lineage): the plot as stored."""
        plot = await self._store.get(visualization_id)
        return None if plot is None else plot.visualization

    async def of_version(self, dataset_id: str, version_id: str) -> list[Visualization]:
        """For lineage: the plots drawn from one version of a dataset."""
        return [p.visualization for p in await self._store.of_version(dataset_id, version_id)]

    async def remove_for_dataset(self, dataset_id: str, version_id: str) -> None:
        """The plots of one version of a dataset, which is going."""
        await self._remove(list(await self._store.delete_for_dataset(dataset_id, version_id)))

    async def purge_project(self, project_id: str) -> None:
        await self._remove(list(await self._store.delete_project(project_id)))
