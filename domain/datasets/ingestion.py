"""Ingestion: uploads become raw objects and jobs; the job kind turns each file into datasets.

The upload is spooled to local disk (hashed on the way), jobs are queued at once and parse from
the spool while the raw bytes go to S3 as raw/{sha256} (stored once, whoever uploads them again);
the request answers when the raw bytes are safely stored. A job claimed by another instance
downloads the raw object instead; every commit waits until the raw object exists. Finished
resumable uploads are used the same way, their bytes moved to raw/{sha256} inside the object store.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs

from domain.accounts.models import User
from domain.activity.models import Signal
from domain.activity.service import ActivityLog
from domain.core.clock import utcnow
from domain.core.errors import DomainError, NotFound, TooLarge, Unavailable, field_error
from domain.core.pagination import Page, clamp_limit
from domain.core.settings import IngestSettings
from domain.datasets.follower import OutputFollower
from domain.datasets.models import (
    Ingestion,
    IngestionBatch,
    IngestionJob,
    IngestOptions,
    ManifestEntry,
    NewDataset,
    SourceFile,
    dataset_key,
    made_by,
    output_id,
    raw_key,
    with_job,
)
from domain.datasets.raw import RawFiles
from domain.datasets.service import DatasetsService
from domain.datasets.store import DatasetStore, IngestionStore
from domain.documents.models import clean_content_type, clean_file_name
from domain.infra.localfiles import LocalFiles, SpooledFile, file_chunks
from domain.infra.objects import ObjectStore
from domain.jobs.models import Attempt, Job, JobKind
from domain.jobs.service import JobsService
from domain.projects.models import Need, check_owner_or_lead
from domain.projects.service import ProjectGate
from domain.quotas.service import Quotas, Room
from domain.uploads.service import UploadsService
from workers.worker import JobFailed

log = logging.getLogger("labhub.ingestion")

INGEST_KIND = "ingest"
SPOOL_HOLD_S = 3600.0  # a queued job's hold on its spooled upload lapses after this (it reads S3 then)
HOLDS_BEFORE_PRUNING = 1000  # lapsed holds are looked for once this many are kept


def _version_output(outputs: list[dict[str, Any]], target: dict[str, Any]) -> dict[str, Any]:
    """Of what a file made, the one that is the new version: the only one, or the same part."""
    if len(outputs) == 1:
        return outputs[0]
    same = [d for d in outputs if (d.get("sheet") or d.get("part")) == target["part"]]
    if len(same) != 1:
        made = ", ".join(str(d.get("sheet") or d.get("part")) for d in outputs[:10])
        raise JobFailed(
            "version_mismatch",
            f"the file made {len(outputs)} datasets ({made}) and none is the part "
            f"{target['part']!r} this dataset was made from: choose one sheet, or upload that part alone",
        )
    return same[0]


def _job_count(options: IngestOptions, files: int) -> int:
    """How many jobs a batch queues: one per file ingested, one per chosen sheet of a workbook."""
    entries = [options.manifest[i] if i < len(options.manifest) else ManifestEntry() for i in range(files)]
    return sum((len(e.sheets) if e.sheets else 1) for e in entries if e.ingest)


class IngestionService:
    def __init__(
        self,
        gate: ProjectGate,
        jobs: JobsService,
        ingestions: IngestionStore,
        datasets: DatasetStore,
        objects: ObjectStore,
        files: LocalFiles,
        dataset_service: DatasetsService,
        settings: IngestSettings,
        activity: ActivityLog,
        resumable: UploadsService,
        quotas: Quotas,
        *,
        part_size: int,
    ) -> None:
        self._gate = gate
        self._quotas = quotas
        self._resumable = resumable
        self._activity = activity
        self._jobs = jobs
        self._ingestions = ingestions
        self._datasets = datasets
        self._objects = objects
        self._files = files
        # job id -> the spooled file (sha256) a job queued here holds until its attempt ends, and
        # when the hold lapses (a job that ran on another instance never lets go here); a job that
        # runs elsewhere, again after a crash, or after its hold lapsed reads the raw object instead
        self._job_holds: dict[str, tuple[str, float]] = {}
        self._dataset_service = dataset_service
        self.settings = settings
        self._part_size = part_size
        self._raw = RawFiles(objects, ingestions, lease_s=settings.raw_lease_s, wait_s=settings.raw_wait_s)
        self._followers: dict[tuple[str, int], OutputFollower] = {}
        # set at assembly: queues a dataset's first plot (manifest visualize: true)
        self.visualize: Callable[[str, str], Awaitable[Any]] | None = None

    def job_kind(self) -> JobKind:
        return JobKind(
            INGEST_KIND, "workers.ingest.run:ingest_file", title="Ingestion", prepare=self._prepare, commit=self._commit,
            cleanup=self._cleanup, timeout_s=self.settings.timeout_s, max_attempts=3, prepare_stage="upload",
        )  # fmt: skip

    # -- the upload ------------------------------------------------------------------------------

    async def check_project(self, actor: User, project_id: str) -> None:
        """Before any byte is read: the caller may add data to this project (checked again when the
        upload is accepted)."""
        await self._gate.require(actor, project_id, Need.WRITE, early=True)

    async def storage_room(self, actor: User, project_id: str) -> Room:
        """Before any byte is read: what the quotas leave for an upload (413 if nothing)."""
        return await self._quotas.check_storage(actor.id, project_id, 1)

    async def accept(
        self, actor: User, project_id: str, options: IngestOptions, files: list[SpooledFile]
    ) -> IngestionBatch:
        """Files spooled from a multipart body."""
        if not files:
            raise field_error("$.files", "upload at least one file in a field named files")
        sources = [
            SourceFile(f.name, f.size, f.sha256, f.content_type or "application/octet-stream") for f in files
        ]
        paths = {f.sha256: f.path for f in files}

        async def put(source: SourceFile) -> None:
            await self._objects.put_stream(
                raw_key(source.sha256), file_chunks(paths[source.sha256]), max_bytes=source.size,
                part_size=self._part_size, content_type=source.content_type, known_sha256=source.sha256,
            )  # fmt: skip

        return await self._accept(actor, project_id, options, sources, put)

    async def accept_uploads(
        self, actor: User, project_id: str, options: IngestOptions, upload_ids: list[str]
    ) -> IngestionBatch:
        """Finished resumable uploads: their bytes move to raw/{sha256} inside the object store,
        and each upload is used up once its jobs are queued (left as it was if anything fails)."""
        await self._gate.require(actor, project_id, Need.WRITE)
        if not upload_ids:
            raise field_error("$.upload_ids", "name at least one finished upload")
        if len(upload_ids) > self.settings.max_files:
            raise TooLarge(
                f"at most {self.settings.max_files} files can be ingested at once", code="too_many_files"
            )
        if len(set(upload_ids)) != len(upload_ids):
            raise field_error("$.upload_ids", "names an upload more than once")
        try:
            uploads = await self._resumable.claim(
                actor, upload_ids, max_bytes=self.settings.max_file_bytes, use="ingestion"
            )
        except NotFound:
            if (replayed := await self._replay(project_id, actor, upload_ids)) is not None:
                return replayed
            raise
        async with self._resumable.using(uploads):
            # the uploads' bytes count as the person's already; the project takes them on now
            await self._quotas.check_storage(None, project_id, sum(u.length for u in uploads))
            sources = []
            for upload in uploads:
                name = clean_file_name(upload.filename or f"upload-{upload.id}")
                media_type = clean_content_type(upload.content_type, name)
                sources.append(SourceFile(name, upload.length, str(upload.sha256), media_type))
            by_sha = {u.sha256: u for u in uploads}

            async def put(source: SourceFile) -> None:
                await self._resumable.place(
                    by_sha[source.sha256], raw_key(source.sha256), source.content_type
                )

            return await self._accept(actor, project_id, options, sources, put, [u.id for u in uploads])

    async def _replay(self, project_id: str, actor: User, upload_ids: list[str]) -> IngestionBatch | None:
        """The batch these uploads already made, when a client asks again (its answer was lost on
        the way): the same answer, so that a retried request never ingests a file twice."""
        made = await self._ingestions.batch_from_upload(actor.id, upload_ids[0])
        if not made or {i.upload_id for i in made} != set(upload_ids) or made[0].project_id != project_id:
            return None
        views = await self._views(made)
        return IngestionBatch(
            made[0].batch_id, [IngestionJob(v.id, v.file.name, v.sheet, v.status) for v in views]
        )

    async def _accept(
        self, actor: User, project_id: str, options: IngestOptions, sources: list[SourceFile],
        put: Callable[[SourceFile], Awaitable[None]], upload_ids: list[str] | None = None,
    ) -> IngestionBatch:  # fmt: skip
        project = await self._gate.require(actor, project_id, Need.WRITE)
        if len(options.manifest) > len(sources):
            raise field_error("$.manifest", f"has {len(options.manifest)} entries for {len(sources)} file(s)")
        target = await self._version_target(project.id, options, sources)
        await self._quotas.check_jobs(actor.id, _job_count(options, len(sources)))
        batch_id = self._ingestions.new_id()
        accepted: list[IngestionJob] = []
        added = 0  # bytes the batch's records count (each its file's size) for the quota sums
        raw_until = utcnow() + timedelta(seconds=self.settings.raw_lease_s)
        storing = False
        try:
            async with self._raw.holding(batch_id):
                for index, source in enumerate(sources):
                    entry = options.manifest[index] if index < len(options.manifest) else ManifestEntry()
                    origin = upload_ids[index] if upload_ids else None
                    sheets: list[str | None] = list(entry.sheets) if entry.sheets and entry.ingest else [None]
                    for sheet in sheets:
                        added += source.size
                        accepted.append(await self._record(
                            actor, project.id, batch_id, source, sheet, options, entry, job=entry.ingest,
                            upload_id=origin, raw_until=raw_until, target=target,
                        ))  # fmt: skip
                storing = True
                unique = {f.sha256: f for f in sources}.values()
                await asyncio.gather(*(self._raw.store(f, put) for f in unique))
        except BaseException as exc:
            # nothing of a batch that was not accepted may stay queued: its jobs would wait for
            # raw files that never come
            await asyncio.shield(self._withdraw(batch_id, accepted))
            if storing and isinstance(exc, Exception) and not isinstance(exc, DomainError):
                log.exception("raw upload failed", extra={"batch_id": batch_id})
                raise Unavailable(
                    "the files could not be stored; nothing was kept, upload them again"
                ) from None
            raise
        # each record counts its file's bytes (the sums held for the quota grow by as much); bytes of
        # resumable uploads were counted already, and are now counted as the ingestion's instead
        self._quotas.stored(actor.id, project.id, added=None if upload_ids else added)
        try:
            await self._activity.count(project.id, actor.id, Signal.INGESTION, utcnow(), n=len(sources))
        except Exception as exc:  # noqa: BLE001 - the batch is accepted: a lost count must not undo that
            log.warning(
                "could not count the ingestion", extra={"batch_id": batch_id, "error": repr(exc)[:200]}
            )
        return IngestionBatch(batch_id, accepted)

    async def _version_target(
        self, project_id: str, options: IngestOptions, sources: list[SourceFile]
    ) -> dict[str, Any] | None:
        """With version_of: the dataset the one file becomes a new version of, as the job needs it
        (its id, part, name, type and tag; docs/architecture.md, "Versions")."""
        if options.version_of is None:
            return None
        entry = options.manifest[0] if options.manifest else ManifestEntry()
        if len(sources) != 1 or not entry.ingest or len(entry.sheets or []) > 1:
            raise field_error("$.version_of", "a new version is made from exactly one file (and at most one sheet)")
        try:
            found = await self._dataset_service.find(options.version_of)
        except DomainError:
            found = None
        if found is None or found.dataset.project_id != project_id:
            raise field_error("$.version_of", "names no dataset of this project")
        dataset = found.dataset
        part = dataset.part or dataset.sheet
        if part is None and " — " in dataset.name and dataset.name.startswith(dataset.source.name):
            part = dataset.name.removeprefix(f"{dataset.source.name} — ")  # made before parts were kept
        return {
            "dataset_id": dataset.id, "part": part, "name": dataset.name,
            "dataset_type": dataset.dataset_type, "tag": dataset.tag,
        }

    async def _withdraw(self, batch_id: str, accepted: list[IngestionJob]) -> None:
        """Best effort (a store may be what failed): end the batch's raw lease (a job already
        running fails at once) and cancel its queued jobs."""
        try:
            await self._ingestions.hold_raw(batch_id, utcnow() - timedelta(seconds=1))
            for item in accepted:
                if item.status != "stored":
                    await self._jobs.withdraw(item.id)
                    self._let_go(item.id)
        except Exception as exc:  # noqa: BLE001 - left to the lease, which is no longer renewed
            log.warning(
                "could not withdraw a failed batch", extra={"batch_id": batch_id, "error": repr(exc)[:200]}
            )

    async def _record(
        self, actor: User, project_id: str, batch_id: str, source: SourceFile, sheet: str | None,
        options: IngestOptions, entry: ManifestEntry, *, job: bool, upload_id: str | None, raw_until: datetime,
        target: dict[str, Any] | None = None,
    ) -> IngestionJob:  # fmt: skip
        ingestion_id = self._ingestions.new_id()
        job_options: dict[str, Any] = {
            "header_mode": options.header_mode,
            "custom_headers": options.custom_headers,
            "sheets": [sheet] if sheet else None,
            "parse_range": attrs.asdict(entry.parse_range) if entry.parse_range else None,
            "variables": entry.variables,
            "profile": entry.profile,
            "visualize": entry.visualize,
        }
        dataset_type = options.dataset_type or (target or {}).get("dataset_type")
        tag = options.tag or (target or {}).get("tag")
        await self._ingestions.insert({
            "_id": ingestion_id, "project_id": project_id, "batch_id": batch_id,
            "file": attrs.asdict(source), "sheet": sheet, "dataset_type": dataset_type, "tag": tag,
            "options": job_options, "job_id": ingestion_id if job else None, "dataset_ids": [],
            "stored_only": not job, "reason": None if job else "ingest was false: stored as is",
            "created_by": actor.id, "created_at": utcnow(), "upload_id": upload_id,
            "raw_until": raw_until,
        })  # fmt: skip
        if not job:
            return IngestionJob(ingestion_id, source.name, sheet, "stored")
        params = {
            "batch_id": batch_id, "file": attrs.asdict(source), "sheet": sheet, "options": job_options,
            "dataset_type": dataset_type, "tag": tag, **({"version_of": target} if target else {}),
        }  # fmt: skip
        # the caller checked the project (_accept); held before it is queued (it may end at once)
        self._hold(ingestion_id, source.sha256)
        try:
            queued = await self._jobs.enqueue(actor.id, project_id, INGEST_KIND, params, job_id=ingestion_id)
        except BaseException:
            self._let_go(ingestion_id)
            raise
        return IngestionJob(queued.id, source.name, sheet, queued.status.value)

    # -- the job kind ----------------------------------------------------------------------------

    async def _prepare(self, job: Job) -> dict[str, Any]:
        sha = job.params["file"]["sha256"]
        local = self._files.spool_path(sha)
        if not local.exists():  # claimed by another instance than the one that took the upload
            await self._raw.wait(job.id, sha)
            partial = local.with_name(f".download-{job.id}")
            async with self._objects.open_read(raw_key(sha)) as reader:
                with partial.open("wb") as handle:
                    async for chunk in reader.chunks():
                        handle.write(chunk)
            partial.rename(local)
        work = self._files.work_dir(job.id, job.attempt)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        self._followers[(job.id, job.attempt)] = OutputFollower(self._objects, work, job.id, self._part_size)
        s = self.settings
        return {
            "path": str(local),
            "file_name": job.params["file"]["name"],
            "work_dir": str(work),
            "options": job.params["options"],
            "limits": {
                "max_columns": s.max_columns, "max_cell_bytes": s.max_cell_bytes,
                "max_uncompressed_bytes": s.max_uncompressed_bytes, "max_zip_entries": s.max_zip_entries,
                "max_compression_ratio": s.max_compression_ratio, "block_bytes": s.block_bytes,
                "stats_values": s.stats_values,
            },
        }  # fmt: skip

    async def _commit(self, job: Job, result: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
        params = job.params
        # what the job made is recorded by its final write only (models.with_job reads it there)
        if result.get("stored_only"):
            return {
                "stored_only": True,
                "reason": result.get("reason"),
                "dataset_id": None,
                "dataset_ids": [],
            }
        if not self._raw.stored_lately(params["file"]["sha256"]):
            await self._raw.wait(job.id, params["file"]["sha256"])
        ids: list[str] = []
        version_ids: list[str] = []
        versions: list[int] = []
        parquet_bytes: list[int] = []
        follower = self._followers.get((job.id, job.attempt))
        target: dict[str, Any] | None = params.get("version_of")
        outputs = result["datasets"] if target is None else [_version_output(result["datasets"], target)]
        for dataset in outputs:
            path = Path(dataset["parquet_path"])
            dataset_id = output_id(job.id, path.stem)
            version = 1 if target is None else await self._dataset_service.version_number(
                target["dataset_id"], dataset_id
            )
            key = dataset_key(dataset_id)
            stored = await follower.stored(path) if follower else None
            if stored is None:
                stored = await self._dataset_service.store_file(key, path)
            sheet = dataset.get("sheet")
            part = sheet or dataset.get("part")  # a sheet, or an HDF5/NetCDF/TDMS group, or an LVM segment
            made = NewDataset(
                project_id=job.project_id,
                name=target["name"] if target else f"{params['file']['name']} — {part}" if part
                else params["file"]["name"],
                sheet=sheet, dataset_type=params.get("dataset_type"), tag=params.get("tag"),
                schema=dataset["schema"], row_count=dataset["row_count"], stats=dataset["stats"],
                sample=dataset["sample"], warnings=dataset.get("warnings", []), metadata=dataset.get("metadata", {}),
                source={**params["file"], "raw_key": raw_key(params["file"]["sha256"])},
                provenance={
                    "options": params["options"], "format": result.get("format"), "versions": result.get("versions"),
                    "job_id": job.id, "attempt": attempt.attempt, "ingested_at": utcnow(),
                },
                parquet_key=key, parquet_bytes=stored.size, parquet_sha256=stored.sha256,
                created_by=job.owner_id, created_at=job.created_at,
                summary_key=await self._dataset_service.store_summary(dataset_id, dataset.get("summary_path")),
                sorted_columns=dataset.get("sorted_columns", []), part=part,
            )  # fmt: skip
            written = await self._dataset_service.write_output(
                dataset_id, made, attempt, version_of=target["dataset_id"] if target else None, version=version
            )
            if not written:
                raise JobFailed(
                    "stale_attempt", "a newer attempt of this job has already written its results"
                )
            if follower:
                follower.used.add(key)
            parquet_bytes.append(stored.size)
            ids.append(target["dataset_id"] if target else dataset_id)
            version_ids.append(dataset_id)
            versions.append(version)
        self._quotas.stored(job.owner_id, job.project_id, added=sum(parquet_bytes))
        if params["options"].get("visualize") and self.visualize is not None:
            for version_id in version_ids:
                await self.visualize(job.owner_id, version_id)
        rows = sum(d["row_count"] for d in outputs)
        return {
            "stored_only": False, "dataset_id": ids[0], "dataset_ids": ids, "rows": rows,
            "version": versions[0], "version_ids": version_ids,
        }  # fmt: skip

    async def _cleanup(self, job: Job) -> None:
        follower = self._followers.pop((job.id, job.attempt), None)
        if follower is not None:
            # a failed or stale attempt may have stored Parquet files that no dataset uses
            stored = await follower.stop()
            unused = [
                key for key in stored if key not in follower.used and not await self._datasets.uses_key(key)
            ]
            await self._objects.delete(unused)
        for attempt in range(
            1, job.attempt + 1
        ):  # this attempt's and older ones' (a crash left them), never a newer one's
            shutil.rmtree(self._files.work_dir(job.id, attempt), ignore_errors=True)
        self._let_go(job.id)
        self._release(job.params["file"]["sha256"])

    def _hold(self, job_id: str, sha256: str) -> None:
        now = time.monotonic()
        if len(self._job_holds) >= HOLDS_BEFORE_PRUNING:
            for lapsed, (lapsed_sha, _) in [(j, h) for j, h in self._job_holds.items() if h[1] < now]:
                self._let_go(lapsed)
                self._release(lapsed_sha)
        self._files.hold(sha256)
        self._job_holds[job_id] = (sha256, now + SPOOL_HOLD_S)

    def _let_go(self, job_id: str) -> None:
        if (held := self._job_holds.pop(job_id, None)) is not None:
            self._files.let_go(held[0])

    def _release(self, sha256: str) -> None:
        """A spooled upload goes once no upload request and no job queued here holds it. (A job
        queued elsewhere, or tried again after a crash, reads the raw object when the file is gone.)"""
        if not self._raw.under_way(sha256) and not self._files.held(sha256):
            self._files.spool_path(sha256).unlink(missing_ok=True)

    async def release_spool(self, files: list[SpooledFile]) -> None:
        """After an upload request, accepted or refused: its spooled files stay only while a job needs them."""
        for spooled in files:
            self._files.let_go(spooled.sha256)
        for spooled in files:
            self._release(spooled.sha256)

    # -- reading and deleting --------------------------------------------------------------------

    async def list_ingestions(
        self, actor: User, project_id: str, *, limit: int | None, cursor: str | None
    ) -> Page[Any]:
        project = await self._gate.require(actor, project_id, Need.READ)
        items, next_cursor = await self._ingestions.page(project.id, limit=clamp_limit(limit), cursor=cursor)
        return Page(await self._views(items), next_cursor)

    async def _views(self, items: list[Ingestion]) -> list[Ingestion]:
        """Ingestions with their jobs' live status and what they made folded in, with one read of
        the jobs and one of the datasets."""
        jobs = await self._jobs.find_many([i.job_id for i in items if i.job_id])
        existing = await self._datasets.existing([d for job in jobs.values() for d in made_by(job)])
        return [with_job(i, jobs.get(i.job_id) if i.job_id else None, existing) for i in items]

    async def with_file(self, sha256: str, project_ids: set[str] | None) -> list[str]:
        """For an area that checks its caller itself (lineage): the ingestions of a raw file's bytes
        in these projects (None: any), newest first."""
        return await self._ingestions.with_file(sha256, project_ids)

    async def find(self, ingestion_id: str) -> Ingestion | None:
        """For an area that checks its caller itself (lineage): the ingestion as stored."""
        return await self._ingestions.get(ingestion_id)

    async def get(self, actor: User, ingestion_id: str, need: Need = Need.READ) -> Ingestion:
        ingestion = await self._ingestions.get(ingestion_id)
        if ingestion is None:
            raise NotFound("ingestion not found")
        project = await self._gate.require(actor, ingestion.project_id, need, what="ingestion")
        if need is Need.WRITE:
            check_owner_or_lead(actor, project, ingestion.created_by, "the uploader")
        return (await self._views([ingestion]))[0]

    async def delete(self, actor: User, ingestion_id: str) -> None:
        """Cancel its job, remove its datasets, and its raw bytes when nothing else uses them."""
        ingestion = await self.get(actor, ingestion_id, Need.WRITE)
        if ingestion.job_id and ingestion.status in ("queued", "running"):
            await self._jobs.cancel(actor, ingestion.job_id)
        for dataset_id in await self._datasets.ids_by_job(ingestion.id):
            await self._dataset_service.remove(dataset_id)
        await self._ingestions.delete(ingestion.id)
        if ingestion.job_id:
            await self._jobs.forget(ingestion.job_id)
        if not await self._ingestions.sha_in_use(ingestion.file.sha256):
            await self._raw.remove([ingestion.file.sha256])
        self._quotas.stored(ingestion.created_by, ingestion.project_id)

    async def purge_project(self, project_id: str) -> None:
        shas = await self._ingestions.delete_project(project_id)
        unused = [s for s in shas if not await self._ingestions.sha_in_use(s)]
        await self._raw.remove(unused)
