"""A statement checked before DuckDB sees it (docs/architecture.md, "SQL").

One read-only query (SELECT, or WITH … SELECT), parsed with sqlglot in DuckDB's dialect. Refused:
anything else (COPY, ATTACH, INSTALL/LOAD, PRAGMA, SET, EXPORT, DDL and DML, several statements),
table functions other than unnest, range and generate_series (read_csv, read_parquet, glob, query
and friends), and the functions that reach a file, the environment or the engine itself (getenv,
current_setting, duckdb_*). The tables a statement names are returned, to be resolved against what
the caller may read; a name not found there is an unknown table, whether or not it exists elsewhere.
The worker locks DuckDB down as well (workers/sql.py): this check is the first of two walls.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from domain.core.errors import BadRequest, Forbidden

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # its "falling back to a Command" notes are ours to refuse

TABLE_FUNCTIONS = frozenset({"unnest", "range", "generate_series", "generate_subscripts"})
DENIED_FUNCTIONS = frozenset({
    "getenv", "current_setting", "glob", "query", "query_table", "read_text", "read_blob", "read_csv",
    "read_csv_auto", "read_json", "read_json_auto", "read_json_objects", "read_ndjson", "read_parquet",
    "parquet_scan", "parquet_metadata", "parquet_schema", "parquet_file_metadata", "parquet_kv_metadata",
    "sniff_csv", "which_secret", "checkpoint", "force_checkpoint", "export_database", "import_database",
    "sql_auto_complete", "test_all_types", "test_vector_types", "enable_profiling", "disable_profiling",
    "set_variable", "getvariable", "load_extension", "install_extension", "shell", "system",
})  # fmt: skip
DENIED_PREFIXES = ("read_", "duckdb_", "pragma_", "sqlite_", "postgres_", "mysql_", "iceberg_", "delta_",
                   "parquet_", "json_execute", "http", "s3", "azure", "ducklake", "arrow_scan", "pg_")  # fmt: skip
# statements and clauses a read-only query never holds, wherever they appear
DENIED_NODES: tuple[type, ...] = (exp.Command, exp.Into, exp.DML, exp.DDL, exp.Pragma, exp.Set,
                                                 exp.Copy, exp.Attach, exp.Detach, exp.Use, exp.Transaction,
                                                 exp.Commit, exp.Rollback, exp.Describe, exp.Show,
                                                 exp.Summarize, exp.Export)  # fmt: skip


@attrs.frozen
class TableRef:
    """A table a statement names: `schema.name` or `name`, lower-cased, and where it is."""

    schema: str | None
    name: str
    line: int
    column: int

    @property
    def text(self) -> str:
        return f"{self.schema}.{self.name}" if self.schema else self.name


@attrs.frozen
class Checked:
    sql: str
    tables: list[TableRef]


def _where(sql: str, node: Any) -> dict[str, int] | None:
    """Line and 1-based column of a node, from the offset sqlglot keeps on its identifier."""
    target = node
    if isinstance(node, exp.Table):  # where its first part is: catalog, schema or name
        target = next((p for p in (node.args.get("catalog"), node.args.get("db"), node.this) if p is not None), node)
    meta = getattr(target, "meta", None) or {}
    start = meta.get("start")
    if not isinstance(start, int):
        return None
    before = sql[:start]
    return {"line": before.count("\n") + 1, "column": start - (before.rfind("\n") + 1) + 1}


def invalid(message: str, position: dict[str, int] | None = None) -> BadRequest:
    return BadRequest(message, code="invalid_sql", extra={"position": position} if position else None)


def not_allowed(message: str, position: dict[str, int] | None = None) -> Forbidden:
    return Forbidden(message, code="sql_not_allowed", extra={"position": position} if position else None)


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def _parse(sql: str) -> Any:
    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        position = {"line": first["line"], "column": first["col"]} if "line" in first else None
        message = str(first.get("description") or "the statement cannot be read")
        raise invalid(f"syntax error: {message}", position) from None
    except RecursionError:
        raise invalid("the statement is nested too deeply to be read") from None
    except SqlglotError as exc:
        raise invalid(f"syntax error: {str(exc).splitlines()[0][:300]}") from None
    if not statements:
        raise invalid("there is no statement to run")
    if len(statements) > 1:
        raise invalid("send one statement at a time")
    return statements[0]


def check_statement(sql: str, *, max_chars: int) -> Checked:
    """The statement, checked; its table references (CTE names left out)."""
    if not sql.strip():
        raise invalid("there is no statement to run")
    if len(sql) > max_chars:
        raise invalid(f"the statement is longer than the limit of {max_chars} characters")
    if "\x00" in sql:
        raise invalid("the statement holds a NUL character")
    tree = _parse(sql)
    if not isinstance(tree, exp.Query) or type(tree).__name__ == "Values":
        kind = str(getattr(tree, "key", "statement")).upper()
        raise not_allowed(f"only SELECT statements (and WITH … SELECT) are run; this is a {kind}")
    ctes = {str(cte.alias_or_name).lower() for cte in tree.find_all(exp.CTE)}
    tables: list[TableRef] = []
    try:
        nodes = list(tree.walk())
    except RecursionError:
        raise invalid("the statement is nested too deeply to be read") from None
    for node in nodes:
        if isinstance(node, DENIED_NODES):
            raise not_allowed(f"{node.key.upper()} is not allowed in a query", _where(sql, node))
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES):
                raise not_allowed(f"the function {name} is not allowed in a query", _where(sql, node))
        if isinstance(node, exp.Table):
            ref = _table_ref(sql, node, ctes)
            if ref is not None:
                tables.append(ref)
    return Checked(sql, tables)


def _table_ref(sql: str, node: exp.Table, ctes: set[str]) -> TableRef | None:
    where = _where(sql, node) or {"line": 1, "column": 1}
    if isinstance(node.this, exp.Func):
        name = _function_name(node.this)
        if name not in TABLE_FUNCTIONS:
            raise not_allowed(f"the table function {name} is not allowed in a query; name a dataset's table", where)
        return None
    if not node.name:
        return None
    if node.catalog:
        raise invalid(f"no table named {node.catalog}.{node.db}.{node.name}", where)
    name = str(node.name).lower()
    schema = str(node.db).lower() or None
    if schema is None and name in ctes:
        return None
    return TableRef(schema, name, where["line"], where["column"])
