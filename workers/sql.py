"""SQL in a worker (docs/architecture.md, "SQL"): DuckDB over the Parquet files of the datasets a
query may read, locked down before the statement runs.

The connection is in memory and new for every query. Only the tables the statement names are set up
(views over the local Parquet copies, in a schema per project), plus the `datasets` catalog when it
is named. Then DuckDB is locked: extensions neither installed nor loaded, file access off except for
exactly those Parquet files, the configuration frozen. The server has parsed and checked the
statement already (domain/sql/check.py); DuckDB's own parser checks again here that it is one SELECT.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import io
import os
import re
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc
import pyarrow.parquet as pq

from workers.datasets import FORMULA_STARTS
from workers.ingest.common import DatasetBuilder, Limits
from workers.worker import JobFailed, Reporter, control_dir, query_pid_file

BATCH_ROWS = 10_000
CONTENT_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}
# types a saved dataset keeps as they are; others become text (or numbers, for the wide numeric ones)
KEPT_TYPES = ("BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER",
              "UBIGINT", "FLOAT", "DOUBLE", "VARCHAR", "DATE", "TIMESTAMP", "TIME", "TIMESTAMP WITH TIME ZONE")  # fmt: skip


OUT_OF_MEMORY = ("the query needed more memory than a query may use: select fewer columns or rows, "
                 "or aggregate first")  # fmt: skip


class QueryError(Exception):
    """A query refused or stopped: a code the API answers with, a message, where in the statement."""

    def __init__(self, code: str, message: str, position: dict[str, int] | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.position = position


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _config(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "threads": int(request["threads"]),
        "memory_limit": f"{max(64, int(request['memory_bytes']) // 2**20)}MB",
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "temp_directory": "",  # nothing spills to disk: past the memory limit a query stops
    }


class _Spares:
    """A new database for the next query, made while the worker is idle, and the last one closed
    then too: making one (its threads, its catalog) and closing it cost ~20 ms a query otherwise.
    Every query still gets a database no statement ran in before."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: tuple[tuple[Any, ...], duckdb.DuckDBPyConnection] | None = None
        self._work: threading.Thread | None = None

    def take(self, config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
        key = tuple(sorted(config.items()))
        if self._work is not None:  # the last database is closed first: its memory is the next one's
            self._work.join()
            self._work = None
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is not None and ready[0] == key:
            return ready[1]
        if ready is not None:
            ready[1].close()
        return duckdb.connect(":memory:", config=config)

    def done_with(self, con: duckdb.DuckDBPyConnection, config: dict[str, Any]) -> None:
        """Close the used database and make the next one, in the background."""

        def work() -> None:
            with contextlib.suppress(Exception):
                con.close()
            key = tuple(sorted(config.items()))
            try:
                fresh = duckdb.connect(":memory:", config=config)
            except Exception:  # noqa: BLE001 - the next query makes its own
                return
            with self._lock:
                old, self._ready = self._ready, (key, fresh)
            if old is not None:
                old[1].close()

        thread = threading.Thread(target=work, name="duckdb-spare", daemon=True)
        previous = threading.stack_size(WORKER_THREAD_STACK)
        try:
            thread.start()
        finally:
            threading.stack_size(previous)
        self._work = thread


SPARES = _Spares()
WORKER_THREAD_STACK = 1024 * 1024  # address space counts against the worker's RLIMIT_AS


def locked_connection(request: dict[str, Any], *, spare: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the request's views (and catalog), then locked down."""
    config = _config(request)
    con = SPARES.take(config) if spare else duckdb.connect(":memory:", config=config)
    schemas: set[str] = set()
    paths: list[str] = []
    for view in request["views"]:
        schema = view.get("schema")
        if schema and schema not in schemas:
            con.execute(f"CREATE SCHEMA {quote(schema)}")
            schemas.add(schema)
        target = f"{quote(schema)}.{quote(view['name'])}" if schema else quote(view["name"])
        source = f"read_parquet({_literal(view['path'])})"  # server-made path and names, quoted
        con.execute(f"CREATE VIEW {target} AS SELECT * FROM {source}")  # noqa: S608
        paths.append(view["path"])
    if request.get("catalog") is not None:
        catalog = pa.Table.from_pylist(request["catalog"], schema=CATALOG_SCHEMA)
        con.register("catalog_rows", catalog)
        con.execute("CREATE TABLE datasets AS SELECT * FROM catalog_rows")
        con.unregister("catalog_rows")
    con.execute(f"SET allowed_paths = [{', '.join(_literal(p) for p in paths)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


CATALOG_SCHEMA = pa.schema([
    ("id", pa.string()), ("table_name", pa.string()), ("name", pa.string()), ("project_id", pa.string()),
    ("project", pa.string()),
    ("columns", pa.list_(pa.struct([("name", pa.string()), ("type", pa.string()), ("unit", pa.string())]))),
    ("rows", pa.int64()), ("created_at", pa.timestamp("us", tz="UTC")),
])  # fmt: skip


def _position(sql: str, message: str) -> dict[str, int] | None:
    """Where DuckDB's caret points ("LINE 3: select …" over "          ^"), as a line and a 1-based
    column of the statement (DuckDB shows long lines cut, starting with "...")."""
    lines = message.splitlines()
    for i in range(len(lines) - 1):
        found = re.match(r"LINE (\d+): (.*)", lines[i])
        if not found or "^" not in lines[i + 1]:
            continue
        line, shown = int(found.group(1)), found.group(2)
        caret = lines[i + 1].index("^") - (len(lines[i]) - len(shown))
        start = 0
        if shown.startswith("..."):
            source_lines = sql.splitlines() or [""]
            source = source_lines[line - 1] if line <= len(source_lines) else ""
            at = source.find(shown[3:].removesuffix("..."))
            start = at - 3 if at >= 0 else 0
        return {"line": line, "column": max(1, start + caret + 1)}
    return None


def _first_line(message: str) -> str:
    text = message.split("\n\nLINE ", maxsplit=1)[0].strip()
    return text[:1000]


def _statement(con: duckdb.DuckDBPyConnection, sql: str) -> str:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError("invalid_sql", _first_line(str(exc)), _position(sql, str(exc))) from None
    if len(statements) != 1:
        raise QueryError("invalid_sql", "send one statement at a time")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise QueryError("sql_not_allowed", "only SELECT statements (and WITH … SELECT) are run")
    return str(statements[0].query)


@contextlib.contextmanager
def time_limit(con: duckdb.DuckDBPyConnection, seconds: float) -> Iterator[threading.Event]:
    fired = threading.Event()

    def stop() -> None:
        fired.set()
        con.interrupt()

    timer = threading.Timer(seconds, stop)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        timer.cancel()


def query_failure(exc: duckdb.Error, sql: str, timed_out: bool, timeout_s: float) -> QueryError:
    message = str(exc)
    if timed_out or isinstance(exc, duckdb.InterruptException):
        return QueryError("query_timeout", f"the query ran longer than its limit of {timeout_s:g} s and was stopped")
    if isinstance(exc, duckdb.OutOfMemoryException):
        return QueryError("query_out_of_memory", OUT_OF_MEMORY)
    if isinstance(exc, duckdb.PermissionException):
        return QueryError("sql_not_allowed", "this statement reaches beyond the datasets it may read")
    if isinstance(exc, duckdb.ParserException | duckdb.BinderException | duckdb.CatalogException):
        return QueryError("invalid_sql", _first_line(message), _position(sql, message))
    return QueryError("query_failed", _first_line(message), _position(sql, message))


def _relation(con: duckdb.DuckDBPyConnection, statement: str) -> duckdb.DuckDBPyRelation:
    """The statement as a relation; a statement that does not bind fails with DuckDB's message as
    execute gives it (with the "LINE n:" caret, which the relation's binding leaves out)."""
    try:
        return con.sql(statement)
    except (duckdb.BinderException, duckdb.CatalogException, duckdb.ParserException) as exc:
        if "\nLINE " in str(exc):
            raise
        try:
            con.execute(statement)
        except type(exc) as detailed:
            raise detailed from None
        raise


def out_of_memory(exc: BaseException) -> QueryError:
    if isinstance(exc, OSError) and not isinstance(exc, pa.ArrowMemoryError) and "memory" not in str(exc).lower():
        return QueryError("query_failed", f"the query failed: {str(exc)[:300]}")
    return QueryError("query_out_of_memory", OUT_OF_MEMORY)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def _json_ready(column: pa.Array) -> pa.Array:
    """Intervals and durations as text (JSON has no such values)."""
    if pa.types.is_interval(column.type) or pa.types.is_duration(column.type):
        return pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())
    return column


def _encode_json(table: pa.Table, types: list[str], truncated: bool) -> bytes:
    columns = [_json_ready(c.combine_chunks()).to_pylist() for c in table.columns]
    rows = [list(row) for row in zip(*columns, strict=True)] if columns else []
    body = {
        "columns": [{"name": n, "type": t} for n, t in zip(table.column_names, types, strict=True)],
        "rows": rows,
        "row_count": table.num_rows,
        "truncated": truncated,
        "elapsed_ms": 0,  # the server writes the real figure over this
    }
    return orjson.dumps(body, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


def _text_safe(table: pa.Table) -> pa.Table:
    """A table CSV can hold: nested and binary values as text, and text that a spreadsheet would run
    as a formula neutralised with a leading apostrophe."""
    columns = []
    for column in table.columns:
        data = column.combine_chunks()
        kind = data.type
        if pa.types.is_nested(kind) or pa.types.is_interval(kind) or pa.types.is_binary(kind) or pa.types.is_decimal(kind):
            data = pa.array(
                [None if v is None else orjson.dumps(v, default=_json_default).decode().strip('"')
                 for v in data.to_pylist()], pa.string(),
            )  # fmt: skip
        if pa.types.is_string(data.type) or pa.types.is_large_string(data.type):
            risky = pc.starts_with(data, FORMULA_STARTS[0])
            for start in FORMULA_STARTS[1:]:
                risky = pc.or_(risky, pc.starts_with(data, start))
            data = pc.if_else(risky, pc.binary_join_element_wise("'", data, ""), data)
        columns.append(data)
    return pa.table(columns, names=table.column_names) if columns else table


def encode(table: pa.Table, fmt: str, types: list[str], truncated: bool) -> bytes:
    if fmt == "json":
        return _encode_json(table, types, truncated)
    sink = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(_text_safe(table), sink)
    elif fmt == "parquet":
        pq.write_table(table, sink, compression="zstd")
    else:
        with pyarrow.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    return sink.getvalue()


def _unique_names(names: list[str]) -> list[str]:
    taken: set[str] = set()
    out = []
    for name in names:
        base = name or "column"
        candidate, n = base, 1
        while candidate.lower() in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken.add(candidate.lower())
        out.append(candidate)
    return out


def mark_started(request: dict[str, Any]) -> None:
    """Leave this worker's pid where the server looks for it when a query outlives its time limit."""
    control = control_dir()
    if control is not None and request.get("query_id"):
        with contextlib.suppress(OSError):
            query_pid_file(control, request["query_id"]).write_text(str(os.getpid()))


def run_query(request: dict[str, Any]) -> dict[str, Any]:
    """One query; {body, content_type, rows, truncated, columns} or {error: {code, message, position}}.

    request: sql, views [{schema, name, path}], catalog (rows or None), threads, memory_bytes,
    timeout_s, limit (rows), max_bytes, format (json|csv|parquet|arrow), query_id.
    """
    mark_started(request)
    sql, timeout_s = request["sql"], float(request["timeout_s"])
    started = time.perf_counter()
    try:
        con = locked_connection(request, spare=True)
    except duckdb.Error as exc:
        return {"error": {"code": "query_failed", "message": _first_line(str(exc)), "position": None}}
    try:
        statement = _statement(con, sql)
        limit, max_bytes = int(request["limit"]), int(request["max_bytes"])
        with time_limit(con, timeout_s) as fired:
            try:
                relation = _relation(con, statement)
                names, types = list(relation.columns), [str(t) for t in relation.types]
                batches, rows, held = [], 0, 0
                reader = relation.to_arrow_reader(BATCH_ROWS)
                truncated = False
                for read in reader:
                    batch = read
                    if rows + batch.num_rows > limit:
                        batch = batch.slice(0, limit - rows)
                        truncated = True
                    batches.append(batch)
                    rows += batch.num_rows
                    held += batch.nbytes
                    if held > max_bytes * 4:
                        raise QueryError("result_too_large", _too_large(max_bytes))
                    if truncated:
                        break
                with contextlib.suppress(Exception):
                    reader.close()
            except duckdb.Error as exc:
                raise query_failure(exc, sql, fired.is_set(), timeout_s) from None
            except (MemoryError, OSError, pa.ArrowMemoryError) as exc:  # Arrow's buffers past the memory cap
                raise out_of_memory(exc) from None
        schema = batches[0].schema if batches else None
        table = pa.Table.from_batches(batches, schema) if batches else _empty(relation)
        table = table.rename_columns(_unique_names(names)) if request["format"] != "json" else table.rename_columns(names)
        try:
            body = encode(table, request["format"], types, truncated)
        except (MemoryError, OSError, pa.ArrowMemoryError) as exc:
            raise out_of_memory(exc) from None
        if len(body) > max_bytes:
            raise QueryError("result_too_large", _too_large(max_bytes))
    except QueryError as error:
        return {"error": {"code": error.code, "message": error.message, "position": error.position}}
    finally:
        SPARES.done_with(con, _config(request))
    return {
        "body": body,
        "content_type": CONTENT_TYPES[request["format"]],
        "rows": table.num_rows,
        "truncated": truncated,
        "columns": [{"name": n, "type": t} for n, t in zip(names, types, strict=True)],
        "engine_ms": round((time.perf_counter() - started) * 1000, 2),
    }


def _too_large(max_bytes: int) -> str:
    return (f"the answer is larger than the limit of {max_bytes} bytes: select fewer rows or columns, "
            "or aggregate")  # fmt: skip


def _empty(relation: duckdb.DuckDBPyRelation) -> pa.Table:
    return relation.limit(0).to_arrow_table()


# -- a saved query: the job that makes a dataset of a query's result -----------------------------


def _storable(relation: duckdb.DuckDBPyRelation) -> duckdb.DuckDBPyRelation:
    """Unique column names, and types a dataset holds (others become text or numbers)."""
    names = _unique_names(list(relation.columns))
    parts = []
    for old, new, kind in zip(relation.columns, names, [str(t) for t in relation.types], strict=True):
        if kind in KEPT_TYPES:
            expression = quote(old)
        elif kind.startswith(("DECIMAL", "HUGEINT", "UHUGEINT")):
            expression = f"CAST({quote(old)} AS DOUBLE)"
        else:
            expression = f"CAST({quote(old)} AS VARCHAR)"
        parts.append(f"{expression} AS {quote(new)}")
    return relation.project(", ".join(parts))


def save_query(params: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """A saved query's worker: run it without a row limit and write the result as a dataset."""
    request = params["request"]
    sql = request["sql"]
    out = Path(params["work_dir"]) / "data.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    con = locked_connection(request)
    builder: DatasetBuilder | None = None
    try:
        statement = _statement(con, sql)
        reporter.progress("query", 0, None, "running the query")
        with time_limit(con, float(request["timeout_s"])) as fired:
            try:
                relation = _storable(_relation(con, statement))
                reader = relation.to_arrow_reader(100_000)
                builder = DatasetBuilder(out, reader.schema, Limits.from_params(params.get("limits")), reporter,
                                         stage="query")  # fmt: skip
                for batch in reader:
                    builder.add(batch)
            except duckdb.Error as exc:
                raise query_failure(exc, sql, fired.is_set(), float(request["timeout_s"])) from None
        dataset = builder.finish()
        builder = None
        if dataset["row_count"] == 0:
            out.unlink(missing_ok=True)
            raise JobFailed("no_rows", "the query answered no rows; a dataset needs at least one")
    except BaseException as exc:
        if builder is not None:  # its writer thread stops, its files go
            builder.abort()
        if isinstance(exc, QueryError):
            raise JobFailed(exc.code, exc.message) from None
        raise
    finally:
        con.close()
    versions = {"duckdb": duckdb.__version__}
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        versions["pyarrow"] = importlib.metadata.version("pyarrow")
    return {"datasets": [dataset], "versions": versions}
