"""Datasets service: list, read (rows, Parquet, CSV, raw bytes) and delete datasets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import attrs

from domain.accounts.models import User
from domain.core.content import Content
from domain.core.errors import NotFound, field_error
from domain.core.pagination import Page, clamp_limit
from domain.datasets.models import (
    PARQUET,
    Dataset,
    DatasetChange,
    DatasetEntry,
    DatasetFile,
    DatasetRows,
    DatasetSummary,
    NewDataset,
    StoredDataset,
    raw_key,
    summary_key,
)
from domain.datasets.store import DatasetStore
from domain.infra.localfiles import LocalFiles, file_chunks
from domain.infra.objects import ObjectReader, ObjectStore, StoredObject
from domain.jobs.models import Attempt
from domain.projects.models import Need, check_owner_or_lead
from domain.projects.service import ProjectGate
from workers.datasets import read_rows, row_groups, write_columns, write_csv

MAX_ROWS_PAGE = 5000
MAX_KEY_COLUMNS = 16


class DatasetsService:
    def __init__(
        self,
        gate: ProjectGate,
        store: DatasetStore,
        objects: ObjectStore,
        files: LocalFiles,
        *,
        part_size: int = 8 * 1024**2,
    ) -> None:
        self._gate = gate
        self._part_size = part_size
        self._store = store
        self._objects = objects
        self._files = files
        self._removers: list[Callable[[str, str], Awaitable[None]]] = []
        self._guards: list[Callable[[list[str]], Awaitable[None]]] = []
        self._related: Callable[[str], Awaitable[list[dict[str, Any]]]] | None = None

    def on_remove(self, remover: Callable[[str, str], Awaitable[None]]) -> None:
        """What else goes when a dataset version goes (its visualizations): called with the dataset's
        id and the version's own id."""
        self._removers.append(remover)

    def guard_with(self, guard: Callable[[list[str]], Awaitable[None]]) -> None:
        """What may refuse the removal of dataset versions (a published one), before anything goes."""
        self._guards.append(guard)

    def list_related_with(self, related: Callable[[str], Awaitable[list[dict[str, Any]]]]) -> None:
        """How a dataset's visualizations are listed on the dataset."""
        self._related = related

    async def list_datasets(
        self, actor: User, project_id: str, *, dataset_type: str | None, tag: str | None, limit: int | None,
        cursor: str | None,
    ) -> Page[DatasetSummary]:  # fmt: skip
        project = await self._gate.require(actor, project_id, Need.READ)
        items, next_cursor = await self._store.page(
            project.id, dataset_type=dataset_type, tag=tag, limit=clamp_limit(limit), cursor=cursor
        )
        return Page(items, next_cursor)

    async def find(self, dataset_id: str, version: int | None = None) -> StoredDataset | None:
        """For an area that checks its caller itself (a plot of this dataset): the stored dataset's
        latest version, or the one numbered `version`."""
        return await self._store.get(dataset_id, version)

    async def find_version(self, version_id: str) -> StoredDataset | None:
        """Exactly the version stored as version_id (what a job queued for it reads)."""
        return await self._store.get_version(version_id)

    async def _load(
        self, actor: User, dataset_id: str, need: Need = Need.READ, version: int | None = None
    ) -> StoredDataset:
        if version is not None and version < 1:
            raise field_error("query.version", "versions are numbered from 1")
        stored = await self._store.get(dataset_id, version)
        if stored is None:
            if version is not None and await self._store.get(dataset_id) is not None:
                raise NotFound(f"the dataset has no version {version}")
            raise NotFound("dataset not found")
        dataset = stored.dataset
        project = await self._gate.require(actor, dataset.project_id, need, what="dataset")
        if need is Need.WRITE:
            check_owner_or_lead(actor, project, dataset.created_by, "the dataset's creator")
        return stored

    async def get(self, actor: User, dataset_id: str, version: int | None = None) -> Dataset:
        dataset = (await self._load(actor, dataset_id, version=version)).dataset
        if version is not None:
            dataset = attrs.evolve(dataset, latest_version=await self._store.latest_version(dataset.id))
        if self._related is not None:
            dataset = attrs.evolve(dataset, visualizations=await self._related(dataset.id))
        inputs = dataset.provenance.get("inputs")
        if inputs:  # a derived dataset: which of its inputs have a newer version now
            latest = {f.id: f.version for f in await self._store.files([i["dataset_id"] for i in inputs])}
            marked = [
                {**i, "latest_version": latest.get(i["dataset_id"]),
                 "newer_version": latest.get(i["dataset_id"], 0) > i.get("version", 1)}
                for i in inputs
            ]  # fmt: skip
            dataset = attrs.evolve(dataset, provenance={**dataset.provenance, "inputs": marked})
        return dataset

    async def change(self, actor: User, dataset_id: str, change: DatasetChange) -> Dataset:
        """Set what the caller may change of a dataset: its key columns (those of its latest version)."""
        stored = await self._load(actor, dataset_id, Need.WRITE)
        if change.key_columns is not None:
            keys = [k.strip() for k in change.key_columns]
            names = {c.name for c in stored.dataset.schema}
            for i, key in enumerate(keys):
                if key not in names:
                    raise field_error(f"$.key_columns[{i}]", f"{key!r} is not a column of the dataset")
            if len(set(keys)) != len(keys) or len(keys) > MAX_KEY_COLUMNS:
                raise field_error("$.key_columns", f"at most {MAX_KEY_COLUMNS} columns, each named once")
            await self._store.set_key_columns(stored.dataset.id, keys)
        return await self.get(actor, stored.dataset.id)

    async def set_published(self, version_id: str, published: dict[str, Any] | None) -> None:
        """For the publishing area: what a version's description says of its publication (None: none)."""
        await self._store.set_published(version_id, published)

    async def raw_file(self, stored: StoredDataset) -> Path:
        """The raw file a version was made from, on local disk (a cache)."""
        source = stored.dataset.source
        return await self.local_copy(raw_key(source.sha256), f"raw-{source.sha256[:32]}")

    async def versions(self, actor: User, dataset_id: str) -> list[DatasetSummary]:
        """Every version of a dataset, oldest first."""
        stored = await self._load(actor, dataset_id)
        return await self._store.versions(stored.dataset.id)

    async def version_number(self, dataset_id: str, version_id: str) -> int:
        """For the job storing a new version: its number (docs/architecture.md, "Versions")."""
        return await self._store.version_number(dataset_id, version_id)

    async def adjacent_version(self, dataset_id: str, version: int, *, later: bool) -> StoredDataset | None:
        """For lineage: the version before (or after) one."""
        return await self._store.adjacent(dataset_id, version, later=later)

    async def made_from(self, version_id: str, dataset_id: str) -> list[tuple[str, str]]:
        """For lineage: (version id, job id) of what saved queries made from this version."""
        return await self._store.made_from(version_id, dataset_id)

    async def versions_made_by(self, job_id: str) -> list[StoredDataset]:
        """For lineage: the dataset versions a job (an ingestion, a saved query) made."""
        return await self._store.made_by(job_id)

    async def entries(self, project_ids: list[str], *, with_schema: bool = False) -> list[DatasetEntry]:
        """For an area that has checked its caller (SQL's catalog): the datasets of these projects."""
        return await self._store.entries(project_ids, with_schema=with_schema) if project_ids else []

    async def files(self, dataset_ids: list[str]) -> list[DatasetFile]:
        """For an area that has checked its caller: where these datasets' Parquet files are."""
        return await self._store.files(dataset_ids) if dataset_ids else []

    async def write_output(
        self, dataset_id: str, made: NewDataset, attempt: Attempt, *, version_of: str | None = None, version: int = 1
    ) -> bool:
        """A dataset (or, with version_of, a new version of that one) a job attempt made; False if a
        newer attempt wrote it already."""
        written = await self._store.write_output(dataset_id, made, attempt, version_of=version_of, version=version)
        if written and version_of is not None:
            await self._store.settle_latest(version_of)
        return written

    async def store_file(self, key: str, path: Path) -> StoredObject:
        """A job's Parquet output (a dataset, a summary) stored under key, streamed from local disk."""
        return await self._objects.put_stream(
            key, file_chunks(path), max_bytes=2**62, part_size=self._part_size, content_type=PARQUET
        )

    async def store_summary(self, dataset_id: str, path: str | None) -> str | None:
        """A job's summary file (workers/summary.py) stored beside the dataset's Parquet; its key."""
        if not path or not Path(path).exists():
            return None
        key = summary_key(dataset_id)
        await self.store_file(key, Path(path))
        return key

    async def local_parquet(self, stored: StoredDataset | DatasetFile) -> Path:
        """The dataset's Parquet on local disk (a cache), downloaded once, streamed."""
        file = stored.file if isinstance(stored, StoredDataset) else stored
        version = (file.parquet_sha256 or "0")[:16]
        return await self.local_copy(file.parquet_key, f"{file.version_id or file.id}-{version}.parquet")

    async def local_csv(self, stored: StoredDataset) -> Path:
        """The version as CSV on local disk (a cache beside its Parquet), written once: what packages
        and public pages hand out, so a second download costs no conversion."""
        version = (stored.parquet_sha256 or "0")[:16]
        path = self._files.cached(f"{stored.id}-{version}.csv")
        if path.exists():
            path.touch()
            return path
        parquet = await self.local_parquet(stored)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")  # two requests may write it at once
        try:
            await asyncio.to_thread(write_csv, parquet, partial)
            partial.rename(path)
        finally:
            partial.unlink(missing_ok=True)
        await asyncio.to_thread(self._files.trim_cache)
        return path

    async def local_summary(self, stored: StoredDataset) -> Path | None:
        """The dataset's summary (workers/summary.py) on local disk; None for a dataset without one."""
        if stored.summary_key is None:
            return None
        version = (stored.parquet_sha256 or "0")[:16]
        return await self.local_copy(stored.summary_key, f"{stored.id}-{version}.summary.parquet")

    async def local_copy(self, key: str, name: str) -> Path:
        """An object on local disk under the cache's name for it, downloaded once, streamed."""
        path = self._files.cached(name)
        if path.exists():
            path.touch()
            return path
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")  # two requests may fetch it at once
        try:
            async with self._objects.open_read(key) as reader:
                with partial.open("wb") as handle:
                    async for chunk in reader.chunks():
                        handle.write(chunk)
            partial.rename(path)
        finally:
            partial.unlink(missing_ok=True)
        await asyncio.to_thread(self._files.trim_cache)
        return path

    async def readable(self, actor: User, dataset_id: str, version: int | None = None) -> StoredDataset:
        """A dataset (its latest version, or `version`) the caller may read (else NotFound or Forbidden)."""
        return await self._load(actor, dataset_id, version=version)

    async def set_summary(self, stored: StoredDataset, path: Path, sorted_columns: list[str]) -> bool:
        """A summary made later for a dataset stored without one (False: the dataset changed or went)."""
        key = summary_key(stored.id)
        await self.store_file(key, path)
        return await self._store.set_summary(stored.id, stored.parquet_sha256, key, sorted_columns)

    async def rows(
        self, actor: User, dataset_id: str, *, offset: int, limit: int, columns: list[str] | None,
        version: int | None = None,
    ) -> DatasetRows:  # fmt: skip
        stored = await self._load(actor, dataset_id, version=version)
        if offset < 0:
            raise field_error("query.offset", "must be 0 or more")
        if not 1 <= limit <= MAX_ROWS_PAGE:
            raise field_error("query.limit", f"must be between 1 and {MAX_ROWS_PAGE}")
        _check_columns(stored, columns)
        path = await self.local_parquet(stored)
        names, rows, total = await asyncio.to_thread(read_rows, path, offset, limit, columns)
        return DatasetRows(columns=names, rows=rows, offset=offset, limit=limit, total=total)

    async def csv_rows(
        self, actor: User, dataset_id: str, columns: list[str] | None = None, version: int | None = None
    ) -> tuple[str, list[str], AsyncIterator[list[Any]]]:
        """(file name, header, rows) for a streamed CSV download; rows are read a row group at a time."""
        stored = await self._load(actor, dataset_id, version=version)
        _check_columns(stored, columns)
        path = await self.local_parquet(stored)
        header = columns or [c.name for c in stored.dataset.schema]
        return f"{Path(stored.dataset.name).stem}.csv", header, _iterate(row_groups(path, columns))

    async def columns_file(
        self, actor: User, dataset_id: str, columns: list[str] | None, fmt: str, version: int | None = None
    ) -> tuple[str, str, Path]:
        """(file name, media type, a temporary local file the caller removes) of the chosen columns,
        as Parquet or an Arrow IPC stream."""
        stored = await self._load(actor, dataset_id, version=version)
        _check_columns(stored, columns)
        path = await self.local_parquet(stored)
        suffix, media = ("arrows", "application/vnd.apache.arrow.stream") if fmt == "arrow" else (
            "parquet", PARQUET)  # fmt: skip
        out = self._files.work / f"download-{uuid.uuid4().hex}.{suffix}"
        try:
            await asyncio.to_thread(write_columns, path, out, columns, fmt)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        return f"{Path(stored.dataset.name).stem}.{suffix}", media, out

    async def parquet(self, actor: User, dataset_id: str, version: int | None = None) -> Content:
        stored = await self._load(actor, dataset_id, version=version)
        name = f"{Path(stored.dataset.name).stem}.parquet"
        return Content(
            stored.parquet_key, name, PARQUET, stored.dataset.parquet_bytes,
            stored.parquet_sha256,
        )  # fmt: skip

    async def raw(self, actor: User, dataset_id: str, version: int | None = None) -> Content:
        source = (await self._load(actor, dataset_id, version=version)).dataset.source
        return Content(raw_key(source.sha256), source.name, source.content_type, source.size, source.sha256)

    def open(
        self, content: Content, byte_range: tuple[int, int] | None
    ) -> AbstractAsyncContextManager[ObjectReader]:
        return self._objects.open_read(content.key, byte_range)

    async def delete(self, actor: User, dataset_id: str) -> None:
        """The dataset with every version."""
        stored = await self._load(actor, dataset_id, Need.WRITE)
        versions = [v.version_id for v in await self._store.versions(stored.dataset.id)]
        for guard in self._guards:  # all refused before any goes
            await guard(versions)
        for version_id in versions:
            await self._remove(version_id)

    async def remove(self, version_id: str) -> None:
        """Delete one version's document, objects and cached copies (no permission check); the
        dataset's latest version is then its highest remaining one."""
        for guard in self._guards:
            await guard([version_id])
        await self._remove(version_id)

    async def _remove(self, version_id: str) -> None:
        removed = await self._store.delete(version_id)
        if removed is None:
            return
        dataset_id, keys = removed
        for remover in self._removers:
            await remover(dataset_id, version_id)
        await self._objects.delete(keys)
        for cached in self._files.cache.glob(f"{version_id}-*"):  # its Parquet, summary and CSV
            cached.unlink(missing_ok=True)
        await self._store.settle_latest(dataset_id)  # an ingestion lists it no more once none is left

    async def purge_project(self, project_id: str) -> None:
        await self._objects.delete(await self._store.delete_project(project_id))


def _check_columns(stored: StoredDataset, columns: list[str] | None) -> None:
    known = {c.name for c in stored.dataset.schema}
    unknown = [c for c in columns or [] if c not in known]
    if unknown:
        raise field_error("query.columns", f"unknown column(s): {', '.join(unknown[:20])}")
    if columns and len(set(columns)) != len(columns):
        raise field_error("query.columns", "names a column twice")


async def _iterate(groups: Iterator[list[list[Any]]]) -> AsyncIterator[list[Any]]:
    """Rows from a blocking row-group iterator, each group read in a thread."""
    sentinel: list[list[Any]] = []
    while True:
        group = await asyncio.to_thread(next, groups, sentinel)
        if group is sentinel:
            return
        for row in group:
            yield row
