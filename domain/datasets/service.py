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
    Dataset,
    DatasetEntry,
    DatasetFile,
    DatasetRows,
    DatasetSummary,
    NewDataset,
    StoredDataset,
    raw_key,
    summary_key,
)
from domain.datasets.store import DatasetStore, IngestionStore
from domain.infra.localfiles import LocalFiles, file_chunks
from domain.infra.objects import ObjectReader, ObjectStore, StoredObject
from domain.jobs.models import Attempt
from domain.projects.models import Need, check_owner_or_lead
from domain.projects.service import ProjectGate
from workers.datasets import read_rows, row_groups, write_columns

MAX_ROWS_PAGE = 5000
PARQUET = "application/vnd.apache.parquet"


class DatasetsService:
    def __init__(
        self,
        gate: ProjectGate,
        store: DatasetStore,
        ingestions: IngestionStore,
        objects: ObjectStore,
        files: LocalFiles,
        *,
        part_size: int = 8 * 1024**2,
    ) -> None:
        self._gate = gate
        self._part_size = part_size
        self._store = store
        self._ingestions = ingestions
        self._objects = objects
        self._files = files
        self._removers: list[Callable[[str], Awaitable[None]]] = []
        self._related: Callable[[str], Awaitable[list[dict[str, Any]]]] | None = None

    def on_remove(self, remover: Callable[[str], Awaitable[None]]) -> None:
        """What else goes when a dataset goes (its visualizations)."""
        self._removers.append(remover)

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

    async def find(self, dataset_id: str) -> StoredDataset | None:
        """For an area that has checked its caller (a plot of this dataset): the stored dataset."""
        return await self._store.get(dataset_id)

    async def _load(self, actor: User, dataset_id: str, need: Need = Need.READ) -> StoredDataset:
        stored = await self._store.get(dataset_id)
        if stored is None:
            raise NotFound("dataset not found")
        dataset = stored.dataset
        project = await self._gate.require(actor, dataset.project_id, need, what="dataset")
        if need is Need.WRITE:
            check_owner_or_lead(actor, project, dataset.created_by, "the dataset's creator")
        return stored

    async def get(self, actor: User, dataset_id: str) -> Dataset:
        dataset = (await self._load(actor, dataset_id)).dataset
        if self._related is not None:
            dataset = attrs.evolve(dataset, visualizations=await self._related(dataset.id))
        return dataset

    async def entries(self, project_ids: list[str], *, with_schema: bool = False) -> list[DatasetEntry]:
        """For an area that has checked its caller (SQL's catalog): the datasets of these projects."""
        return await self._store.entries(project_ids, with_schema=with_schema) if project_ids else []

    async def files(self, dataset_ids: list[str]) -> list[DatasetFile]:
        """For an area that has checked its caller: where these datasets' Parquet files are."""
        return await self._store.files(dataset_ids) if dataset_ids else []

    async def write_output(self, dataset_id: str, made: NewDataset, attempt: Attempt) -> bool:
        """A dataset a job attempt made (another area's job: a saved query); False if a newer attempt
        wrote it already."""
        return await self._store.write_output(dataset_id, made, attempt)

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
        return await self.local_copy(file.parquet_key, f"{file.id}-{version}.parquet")

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

    async def readable(self, actor: User, dataset_id: str) -> StoredDataset:
        """A dataset the caller may read (else NotFound or Forbidden)."""
        return await self._load(actor, dataset_id)

    async def set_summary(self, stored: StoredDataset, path: Path, sorted_columns: list[str]) -> bool:
        """A summary made later for a dataset stored without one (False: the dataset changed or went)."""
        key = summary_key(stored.id)
        await self.store_file(key, path)
        return await self._store.set_summary(stored.id, stored.parquet_sha256, key, sorted_columns)

    async def rows(
        self, actor: User, dataset_id: str, *, offset: int, limit: int, columns: list[str] | None
    ) -> DatasetRows:
        stored = await self._load(actor, dataset_id)
        if offset < 0:
            raise field_error("query.offset", "must be 0 or more")
        if not 1 <= limit <= MAX_ROWS_PAGE:
            raise field_error("query.limit", f"must be between 1 and {MAX_ROWS_PAGE}")
        _check_columns(stored, columns)
        path = await self.local_parquet(stored)
        names, rows, total = await asyncio.to_thread(read_rows, path, offset, limit, columns)
        return DatasetRows(columns=names, rows=rows, offset=offset, limit=limit, total=total)

    async def csv_rows(
        self, actor: User, dataset_id: str, columns: list[str] | None = None
    ) -> tuple[str, list[str], AsyncIterator[list[Any]]]:
        """(file name, header, rows) for a streamed CSV download; rows are read a row group at a time."""
        stored = await self._load(actor, dataset_id)
        _check_columns(stored, columns)
        path = await self.local_parquet(stored)
        header = columns or [c.name for c in stored.dataset.schema]
        return f"{Path(stored.dataset.name).stem}.csv", header, _iterate(row_groups(path, columns))

    async def columns_file(
        self, actor: User, dataset_id: str, columns: list[str] | None, fmt: str
    ) -> tuple[str, str, Path]:
        """(file name, media type, a temporary local file the caller removes) of the chosen columns,
        as Parquet or an Arrow IPC stream."""
        stored = await self._load(actor, dataset_id)
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

    async def parquet(self, actor: User, dataset_id: str) -> Content:
        stored = await self._load(actor, dataset_id)
        name = f"{Path(stored.dataset.name).stem}.parquet"
        return Content(
            stored.parquet_key, name, PARQUET, stored.dataset.parquet_bytes,
            stored.parquet_sha256,
        )  # fmt: skip

    async def raw(self, actor: User, dataset_id: str) -> Content:
        source = (await self._load(actor, dataset_id)).dataset.source
        return Content(raw_key(source.sha256), source.name, source.content_type, source.size, source.sha256)

    def open(
        self, content: Content, byte_range: tuple[int, int] | None
    ) -> AbstractAsyncContextManager[ObjectReader]:
        return self._objects.open_read(content.key, byte_range)

    async def delete(self, actor: User, dataset_id: str) -> None:
        stored = await self._load(actor, dataset_id, Need.WRITE)
        await self.remove(stored.id)

    async def remove(self, dataset_id: str) -> None:
        """Delete a dataset's document, Parquet object and cached copy (no permission check)."""
        keys = await self._store.delete(dataset_id)
        if keys is None:
            return
        for remover in self._removers:
            await remover(dataset_id)
        await self._objects.delete(keys)
        for cached in self._files.cache.glob(f"{dataset_id}-*.parquet"):  # and its summary
            cached.unlink(missing_ok=True)
        await self._ingestions.forget_dataset(dataset_id)

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
