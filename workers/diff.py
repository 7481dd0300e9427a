"""Rows added, removed and changed between two versions of a dataset, by its key columns
(docs/architecture.md, "Versions"): DuckDB over the two Parquet files, in the query lane.

The connection is the query lane's locked one (workers/sql.py) with two views, `old` and `new`, and
nothing else. Keys are matched with IS NOT DISTINCT FROM, so a key holding nulls still finds its row.
A column whose type changed between the versions is compared as numbers when both are numbers, else
as text. Counts are exact; of each kind the first `limit` rows in key order are returned.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import duckdb

from workers.sql import (
    QueryError,
    locked_connection,
    mark_started,
    out_of_memory,
    query_failure,
    quote,
    time_limit,
)


def _expr(table: str, column: dict[str, Any]) -> str:
    ref = f"{table}.{quote(column['name'])}"
    cast = column.get("cast")
    return f"CAST({ref} AS {cast})" if cast else ref


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = con.sql(sql).to_arrow_table().to_pylist()
    return rows


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    rows = con.sql(sql).fetchall()
    return int(rows[0][0]) if rows else 0


def diff_rows(request: dict[str, Any]) -> dict[str, Any]:
    """{added, removed, changed: {count, rows}} or {error: {code, message}}.

    request: views [{name: old|new, path}], keys [{name, cast}], columns [{name, cast}] (compared,
    in both versions), limit, threads, memory_bytes, timeout_s, query_id.
    """
    mark_started(request)
    started = time.perf_counter()
    keys, columns, limit = request["keys"], request["columns"], int(request["limit"])
    timeout_s = float(request["timeout_s"])
    try:
        con = locked_connection(request)
    except duckdb.Error as exc:
        return {"error": {"code": "diff_failed", "message": str(exc).splitlines()[0]}}
    try:
        with time_limit(con, timeout_s) as fired:
            try:
                return _diff(con, keys, columns, limit, started)
            except duckdb.Error as exc:
                failure = query_failure(exc, "", fired.is_set(), timeout_s)
                raise QueryError(failure.code, failure.message) from None
            except (MemoryError, OSError) as exc:
                raise out_of_memory(exc) from None
    except QueryError as error:
        return {"error": {"code": error.code, "message": error.message}}
    finally:
        with contextlib.suppress(Exception):
            con.close()


def _diff(
    con: duckdb.DuckDBPyConnection, keys: list[dict[str, Any]], columns: list[dict[str, Any]], limit: int,
    started: float,
) -> dict[str, Any]:  # fmt: skip
    key_list = ", ".join(quote(k["name"]) for k in keys)
    duplicated = {}
    for side in ("old", "new"):
        duplicated[side] = _count(
            con, f"SELECT count(*) FROM (SELECT 1 FROM {side} GROUP BY {key_list} HAVING count(*) > 1)"  # noqa: S608
        )
    if any(duplicated.values()):
        side = "old" if duplicated["old"] else "new"
        return {"error": {
            "code": "keys_not_unique",
            "message": f"the key columns do not identify rows: {duplicated[side]:,} keys appear more than once "
                       f"in the {'older' if side == 'old' else 'newer'} version",
        }}  # fmt: skip
    same_key = " AND ".join(f"{_expr('a', k)} IS NOT DISTINCT FROM {_expr('b', k)}" for k in keys)
    order = ", ".join(str(i + 1) for i in range(len(keys)))
    out: dict[str, Any] = {}
    for kind, inner, outer in (("added", "new", "old"), ("removed", "old", "new")):
        alias_in, alias_out = ("b", "a") if inner == "new" else ("a", "b")
        anti = (
            f"FROM {inner} {alias_in} WHERE NOT EXISTS (SELECT 1 FROM {outer} {alias_out} WHERE {same_key})"  # noqa: S608 - names quoted, views ours
        )
        count = _count(con, f"SELECT count(*) {anti}")
        ordered = ", ".join(quote(k["name"]) for k in keys)
        rows = _rows(con, f"SELECT {alias_in}.* {anti} ORDER BY {ordered} LIMIT {limit}")
        out[kind] = {"count": count, "rows": rows}
    if columns:
        differs = " OR ".join(f"{_expr('a', c)} IS DISTINCT FROM {_expr('b', c)}" for c in columns)
        picked = ", ".join(
            [f"b.{quote(k['name'])} AS k{i}" for i, k in enumerate(keys)]
            + [f"{_expr('a', c)} AS f{i}, {_expr('b', c)} AS t{i}, ({_expr('a', c)} IS DISTINCT FROM "
               f"{_expr('b', c)}) AS d{i}" for i, c in enumerate(columns)]
        )  # fmt: skip
        joined = f"FROM old a JOIN new b ON {same_key} WHERE {differs}"
        count = _count(con, f"SELECT count(*) {joined}")
        changed = []
        for row in _rows(con, f"SELECT {picked} {joined} ORDER BY {order} LIMIT {limit}"):
            changed.append({
                "key": {k["name"]: row[f"k{i}"] for i, k in enumerate(keys)},
                "changes": {c["name"]: [row[f"f{i}"], row[f"t{i}"]] for i, c in enumerate(columns) if row[f"d{i}"]},
            })  # fmt: skip
        out["changed"] = {"count": count, "rows": changed}
    else:
        out["changed"] = {"count": 0, "rows": []}
    out["engine_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return out
