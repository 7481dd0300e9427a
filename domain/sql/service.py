"""SQL over the datasets a person may read (docs/architecture.md, "SQL").

A statement is checked (check.py), its tables resolved against what the caller may read (a table
outside that is simply not there), the Parquet files fetched into the local cache once, and the query
run in the query lane (lane.py) with its limits. A saved query is a job in the main pool that keeps
the result as a new dataset, with the query and its inputs as its provenance.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import attrs

from domain.accounts.models import User
from domain.core.clock import utcnow
from domain.core.errors import (
    BadRequest,
    DomainError,
    Forbidden,
    TimedOut,
    TooLarge,
    Unavailable,
    field_error,
)
from domain.core.settings import IngestSettings, SqlSettings
from domain.datasets.models import (
    DatasetFile,
    NewDataset,
    StoredDataset,
    check_labels,
    dataset_key,
    output_id,
    raw_key,
)
from domain.datasets.service import DatasetsService
from domain.infra.localfiles import LocalFiles
from domain.infra.objects import ObjectStore
from domain.jobs.models import Attempt, Job, JobKind
from domain.jobs.service import JobsService
from domain.projects.models import Need
from domain.projects.service import ProjectGate
from domain.sql.catalog import CATALOG_TABLE, ID_TABLE, Named, assign
from domain.sql.check import Checked, TableRef, check_statement, invalid
from domain.sql.diff import DIFF_ROWS, MAX_COMPARED_COLUMNS, comparison, schema_diff, stat_changes
from domain.sql.lane import QueryLane
from domain.sql.models import (
    DatasetDiff,
    DiffSide,
    KeyedDiff,
    RowChanges,
    SavedQuery,
    SqlAnswer,
    SqlFormat,
    SqlRequest,
)
from workers.worker import JobFailed

log = logging.getLogger("labhub.sql")

SAVE_KIND = "sql_dataset"
MAX_NAME = 200
ELAPSED_TAIL = b'"elapsed_ms":0}'  # how the worker ends a JSON answer (the server knows the real time)
# what each refusal a worker reports answers with (an unknown code: 400)
REFUSALS: dict[str, type[DomainError]] = {
    "invalid_sql": BadRequest, "query_failed": BadRequest, "sql_not_allowed": Forbidden,
    "query_timeout": TimedOut, "result_too_large": TooLarge, "query_out_of_memory": TooLarge,
}  # fmt: skip


@attrs.frozen
class Scope:
    """What a caller's statement may name: schema -> project id, project id -> its schema."""

    projects: dict[str, str]
    schemas: dict[str, str]
    names: dict[str, str]  # project id -> the project's own name
    context: str | None


@attrs.frozen
class Resolved:
    views: list[dict[str, Any]]  # {schema, name, dataset_id}
    catalog: bool
    files: dict[str, DatasetFile]  # dataset id -> where its Parquet is


DIFF_ROWS_FUNCTION = "workers.diff:diff_rows"


def _side(stored: StoredDataset) -> DiffSide:
    d = stored.dataset
    return DiffSide(d.version, stored.id, d.row_count, d.source.name, d.created_at)


class SqlService:
    def __init__(
        self,
        gate: ProjectGate,
        datasets: DatasetsService,
        jobs: JobsService,
        objects: ObjectStore,
        files: LocalFiles,
        settings: SqlSettings,
        ingest: IngestSettings,
        *,
        part_size: int,
    ) -> None:
        self._gate = gate
        self._datasets = datasets
        self._jobs = jobs
        self._lane: QueryLane | None = None  # the serving process's (server.py); admin commands have none
        self._objects = objects
        self._files = files
        self.settings = settings
        self._ingest = ingest
        self._part_size = part_size

    def use_lane(self, lane: QueryLane) -> None:
        self._lane = lane

    # -- running a query -----------------------------------------------------------------------

    async def run(self, actor: User, request: SqlRequest, fmt: SqlFormat) -> SqlAnswer:
        started = time.perf_counter()
        s = self.settings
        limit = s.default_rows if request.limit is None else request.limit
        if not 1 <= limit <= s.max_rows:
            raise field_error("$.limit", f"must be between 1 and {s.max_rows}")
        checked = await self._check(request.sql)
        scope = await self._scope(actor, request.project_id)
        resolved = await self._resolve(scope, checked)
        views = await self._local_views(resolved.views, resolved.files)
        catalog = await self._catalog(scope) if resolved.catalog else None
        if self._lane is None:
            raise Unavailable("queries are not run by this process", code="query_lane_down")
        answer = await self._lane.run(
            {
                "sql": request.sql, "views": views, "catalog": catalog, "threads": s.threads,
                "memory_bytes": s.memory_bytes, "timeout_s": s.timeout_s, "limit": limit,
                "max_bytes": s.max_answer_bytes, "format": fmt,
            },
            s.timeout_s,
        )  # fmt: skip
        if "error" in answer:
            raise _refusal(answer["error"])
        elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
        body: bytes = answer["body"]
        if fmt == "json" and body.endswith(ELAPSED_TAIL):
            body = body[: -len(ELAPSED_TAIL)] + b'"elapsed_ms":%s}' % str(elapsed_ms).encode()
        return SqlAnswer(body, answer["content_type"], fmt, answer["rows"], answer["truncated"], elapsed_ms)

    # -- two versions of a dataset compared ------------------------------------------------------

    async def diff(
        self, actor: User, dataset_id: str, *, before: int | None, after: int | None, key: str | None
    ) -> DatasetDiff:
        """What changed from version `before` to version `after` (docs/architecture.md, "Versions")."""
        started = time.perf_counter()
        latest = await self._datasets.readable(actor, dataset_id)
        versions = [v.version for v in await self._datasets.versions(actor, latest.dataset.id)]
        to_version = latest.dataset.version if after is None else after
        if before is None:
            earlier = [v for v in versions if v < to_version]
            if not earlier:
                raise field_error("query.from", f"version {to_version} is the first: name a version to compare with")
            before = earlier[-1]
        old = await self._datasets.readable(actor, dataset_id, before)
        new = latest if to_version == latest.dataset.version else await self._datasets.readable(actor, dataset_id, to_version)
        a, b = old.dataset, new.dataset
        old_columns, new_columns = {c.name: c for c in a.schema}, {c.name: c for c in b.schema}
        common = [c.name for c in b.schema if c.name in old_columns]
        keys = [k.strip() for k in key.split(",") if k.strip()] if key else list(latest.dataset.key_columns)
        for name in keys if key else []:
            if name not in old_columns or name not in new_columns:
                raise field_error("query.key", f"{name!r} is not a column of both versions")
        rows = None
        if keys:
            rows = await self._keyed(old, new, keys, [n for n in common if n not in keys])
        return DatasetDiff(
            dataset_id=a.id,
            from_version=_side(old), to_version=_side(new),
            schema=schema_diff(a.schema, b.schema), row_count_delta=b.row_count - a.row_count,
            stats=stat_changes(a.stats, b.stats, common), rows=rows,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 2),
        )  # fmt: skip

    async def _keyed(
        self, old: StoredDataset, new: StoredDataset, keys: list[str], others: list[str]
    ) -> KeyedDiff:
        before = {c.name: c for c in old.dataset.schema}
        after = {c.name: c for c in new.dataset.schema}
        missing = [k for k in keys if k not in before or k not in after]
        if missing:
            which = old.dataset.version if missing[0] not in before else new.dataset.version
            return KeyedDiff(keys, error={"code": "key_missing",
                                          "message": f"the key column {missing[0]!r} is not in version {which}"})  # fmt: skip
        if self._lane is None:
            raise Unavailable("queries are not run by this process", code="query_lane_down")
        compared = others[:MAX_COMPARED_COLUMNS]
        paths = await asyncio.gather(self._datasets.local_parquet(old), self._datasets.local_parquet(new))
        s = self.settings
        answer = await self._lane.run(
            {
                "views": [{"name": "old", "path": str(paths[0])}, {"name": "new", "path": str(paths[1])}],
                "keys": [comparison(before[k], after[k]) for k in keys],
                "columns": [comparison(before[c], after[c]) for c in compared],
                "limit": DIFF_ROWS, "threads": s.threads, "memory_bytes": s.memory_bytes,
                "timeout_s": s.save_timeout_s,
            },
            s.save_timeout_s, function=DIFF_ROWS_FUNCTION,
        )  # fmt: skip
        if "error" in answer:
            if answer["error"]["code"] in {"keys_not_unique", "diff_failed"}:
                return KeyedDiff(keys, error=answer["error"], compared_columns=len(compared))
            raise _refusal({**answer["error"], "position": None})
        return KeyedDiff(
            keys, added=RowChanges(**answer["added"]), removed=RowChanges(**answer["removed"]),
            changed=RowChanges(**answer["changed"]), compared_columns=len(compared),
        )  # fmt: skip

    async def _check(self, sql: str) -> Checked:
        max_chars = self.settings.max_sql_chars
        if len(sql) < 2000:
            return check_statement(sql, max_chars=max_chars)
        return await asyncio.to_thread(check_statement, sql, max_chars=max_chars)

    async def _scope(self, actor: User, project_id: str | None) -> Scope:
        if project_id is not None:
            await self._gate.require(actor, project_id, Need.READ)
        allowed = await self._gate.readable_ids(actor)
        names = await self._gate.names(having=allowed or set())
        readable = {n.id for n in names} if allowed is None else allowed & {n.id for n in names}
        schemas = assign(Named(n.id, n.name, n.created_at) for n in names)
        own = {n.id: n.name for n in names}
        return Scope(
            {schemas[i]: i for i in readable}, {i: schemas[i] for i in readable}, {i: own[i] for i in readable},
            project_id,
        )  # fmt: skip

    async def _tables_of(self, project_id: str) -> dict[str, DatasetFile]:
        """table name -> where the dataset's Parquet is, for one project."""
        entries = await self._datasets.entries([project_id])
        names = assign((Named(e.id, e.name, e.created_at) for e in entries), dataset=True)
        files = {e.id: e.file for e in entries}
        return {name: files[dataset_id] for dataset_id, name in names.items()}

    async def _resolve(self, scope: Scope, checked: Checked) -> Resolved:
        tables: dict[str, dict[str, DatasetFile]] = {}
        views: list[dict[str, Any]] = []
        catalog = False
        by_id: list[tuple[TableRef, str]] = []
        found_files: dict[str, DatasetFile] = {}
        for ref in checked.tables:
            if ref.schema is None and ref.name == CATALOG_TABLE:
                catalog = True
                continue
            if ref.schema is None and (found := ID_TABLE.match(ref.name)):
                by_id.append((ref, found.group(1)))
                continue
            project_id = scope.projects.get(ref.schema) if ref.schema else scope.context
            file = None
            if project_id is not None:
                if project_id not in tables:
                    tables[project_id] = await self._tables_of(project_id)
                file = tables[project_id].get(ref.name)
            if file is None:
                raise _unknown(ref, scope)
            found_files[file.id] = file
            views.append({"schema": ref.schema, "name": ref.name, "dataset_id": file.id})
        if by_id:
            files = {f.id: f for f in await self._datasets.files([i for _, i in by_id])}
            for ref, dataset_id in by_id:
                file = files.get(dataset_id)
                if file is None or file.project_id not in scope.schemas:
                    raise _unknown(ref, scope)
                found_files[file.id] = file
                views.append({"schema": None, "name": ref.name, "dataset_id": dataset_id})
        unique = {(v["schema"], v["name"]): v for v in views}
        return Resolved(list(unique.values()), catalog, found_files)

    async def _local_views(
        self, views: list[dict[str, Any]], files: dict[str, DatasetFile] | None = None
    ) -> list[dict[str, Any]]:
        """The views with the local paths of their Parquet files (fetched from S3 once)."""
        if files is None:
            files = {f.id: f for f in await self._datasets.files(list({v["dataset_id"] for v in views}))}
        missing = [v for v in views if v["dataset_id"] not in files]
        if missing:
            raise invalid(f"no table named {_text(missing[0])}: the dataset was deleted a moment ago")
        paths = await asyncio.gather(*(self._datasets.local_parquet(files[v["dataset_id"]]) for v in views))
        return [{**v, "path": str(path)} for v, path in zip(views, paths, strict=True)]

    async def _input_files(self, inputs: list[dict[str, Any]]) -> dict[str, DatasetFile] | None:
        """The versions a saved query was made from (None: saved before versions were recorded)."""
        if not all(i.get("version_id") for i in inputs):
            return None
        found = await asyncio.gather(*(self._datasets.find_version(i["version_id"]) for i in inputs))
        return {i["dataset_id"]: s.file for i, s in zip(inputs, found, strict=True) if s is not None}

    async def _catalog(self, scope: Scope) -> list[dict[str, Any]]:
        entries = await self._datasets.entries(sorted(scope.schemas), with_schema=True)
        by_project: dict[str, list[Any]] = {}
        for entry in entries:
            by_project.setdefault(entry.project_id, []).append(entry)
        rows = []
        for project_id, items in by_project.items():
            names = assign((Named(e.id, e.name, e.created_at) for e in items), dataset=True)
            for e in sorted(items, key=lambda e: (e.created_at, e.id)):
                rows.append({
                    "id": e.id, "table_name": f"{scope.schemas[project_id]}.{names[e.id]}", "name": e.name,
                    "project_id": project_id, "project": scope.names[project_id],
                    "columns": [{"name": c.name, "type": c.type, "unit": c.unit} for c in e.schema],
                    "rows": e.row_count, "created_at": e.created_at,
                })  # fmt: skip
        return rows

    # -- a saved query: a job that keeps the result as a dataset -------------------------------

    async def save(self, actor: User, project_id: str, saved: SavedQuery) -> Job:
        name = saved.name.strip()
        if not name or len(name) > MAX_NAME:
            raise field_error("$.name", f"must be 1-{MAX_NAME} characters")
        check_labels(dataset_type=saved.dataset_type, tag=saved.tag)
        await self._gate.require(actor, project_id, Need.WRITE)
        checked = await self._check(saved.from_sql)
        scope = await self._scope(actor, project_id)
        resolved = await self._resolve(scope, checked)
        if resolved.catalog:
            raise invalid("a saved query reads datasets; the datasets catalog cannot be saved as one")
        files = resolved.files
        inputs = {
            v["dataset_id"]: {"dataset_id": v["dataset_id"], "table": _text(v),
                              "parquet_sha256": files[v["dataset_id"]].parquet_sha256,
                              "version": files[v["dataset_id"]].version,
                              "version_id": files[v["dataset_id"]].version_id}
            for v in resolved.views if v["dataset_id"] in files
        }  # fmt: skip
        params = {
            "sql": saved.from_sql, "name": name, "dataset_type": saved.dataset_type, "tag": saved.tag,
            "views": resolved.views, "inputs": list(inputs.values()),
        }  # fmt: skip
        return await self._jobs.submit(actor, project_id, SAVE_KIND, params)

    def job_kind(self) -> JobKind:
        return JobKind(
            SAVE_KIND, "workers.sql:save_query", title="Saved query", prepare=self._prepare,
            commit=self._commit, cleanup=self._cleanup, timeout_s=self.settings.save_timeout_s + 60,
            max_attempts=2, prepare_stage="read", commit_stage="store",
        )  # fmt: skip

    async def _prepare(self, job: Job) -> dict[str, Any]:
        try:
            views = await self._local_views(job.params["views"], await self._input_files(job.params["inputs"]))
        except Exception as exc:
            if getattr(exc, "code", "") == "invalid_sql":
                raise JobFailed("input_gone", "a dataset the query reads was deleted before it ran") from None
            raise
        work = self._files.work_dir(job.id, job.attempt)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        s, i = self.settings, self._ingest
        return {
            "request": {
                "sql": job.params["sql"], "views": views, "catalog": None, "threads": s.threads,
                "memory_bytes": s.memory_bytes, "timeout_s": s.save_timeout_s,
            },
            "work_dir": str(work),
            "limits": {"max_columns": i.max_columns, "max_cell_bytes": i.max_cell_bytes,
                       "stats_values": i.stats_values, "block_bytes": i.block_bytes},
        }  # fmt: skip

    async def _commit(self, job: Job, result: dict[str, Any], attempt: Attempt) -> dict[str, Any]:
        params = job.params
        made = result["datasets"][0]
        dataset_id = output_id(job.id, "data")
        key = dataset_key(dataset_id)
        stored = await self._datasets.store_file(key, Path(made["parquet_path"]))
        text = params["sql"].encode()
        sha = hashlib.sha256(text).hexdigest()
        await self._objects.put_bytes(raw_key(sha), text, content_type="application/sql")
        dataset = NewDataset(
            project_id=job.project_id, name=params["name"], sheet=None, dataset_type=params.get("dataset_type"),
            tag=params.get("tag"), schema=made["schema"], row_count=made["row_count"], stats=made["stats"],
            sample=made["sample"], warnings=[], metadata={},
            source={"name": f"{params['name']}.sql", "size": len(text), "sha256": sha,
                    "content_type": "application/sql", "raw_key": raw_key(sha)},
            provenance={
                "derived_from": "sql", "query": params["sql"], "inputs": params["inputs"],
                "versions": result.get("versions"), "job_id": job.id, "attempt": attempt.attempt,
                "ingested_at": utcnow(),
            },
            parquet_key=key, parquet_bytes=stored.size, parquet_sha256=stored.sha256,
            created_by=job.owner_id, created_at=job.created_at,
            summary_key=await self._datasets.store_summary(dataset_id, made.get("summary_path")),
            sorted_columns=made.get("sorted_columns", []),
        )  # fmt: skip
        if not await self._datasets.write_output(dataset_id, dataset, attempt):
            raise JobFailed("stale_attempt", "a newer attempt of this job has already written its results")
        return {"dataset_id": dataset_id, "dataset_ids": [dataset_id], "rows": made["row_count"]}

    async def _cleanup(self, job: Job) -> None:
        for attempt in range(1, job.attempt + 1):
            shutil.rmtree(self._files.work_dir(job.id, attempt), ignore_errors=True)


def _text(view: dict[str, Any]) -> str:
    return f"{view['schema']}.{view['name']}" if view.get("schema") else str(view["name"])


def _unknown(ref: TableRef, scope: Scope) -> Exception:
    hint = (
        "name it as project.table (SELECT table_name FROM datasets lists them)"
        if ref.schema is None and scope.context is None
        else "SELECT table_name FROM datasets lists the tables you may read"
    )
    return invalid(f"no table named {ref.text}: {hint}", {"line": ref.line, "column": ref.column})


def _refusal(error: dict[str, Any]) -> Exception:
    code, position = error["code"], error.get("position")
    return REFUSALS.get(code, BadRequest)(
        error["message"], code=code, extra={"position": position} if position else None
    )
