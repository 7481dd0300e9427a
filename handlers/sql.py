"""/api/sql: one read-only statement over the datasets the caller may read (domain/sql/)."""

from __future__ import annotations

from aiohttp import web

from domain.sql.models import MEDIA_TYPES, SqlFormat, SqlRequest, SqlResult
from handlers.codec import parse_body
from handlers.downloads import content_disposition
from handlers.identity import require_user
from handlers.keys import SQL
from handlers.openapi import doc

routes = web.RouteTableDef()

FILE_NAMES = {"csv": "query.csv", "parquet": "query.parquet", "arrow": "query.arrows"}


def answer_format(request: web.Request, asked: SqlFormat | None) -> SqlFormat:
    """The body's format, else the first media type of Accept that names one, else JSON."""
    if asked is not None:
        return asked
    for part in request.headers.get("Accept", "").split(","):
        media = part.split(";")[0].strip().lower()
        if media in MEDIA_TYPES:
            return MEDIA_TYPES[media]
    return "json"


@routes.post("/api/sql")
@doc(
    "Run one read-only SQL statement (SELECT or WITH … SELECT, DuckDB's dialect) over the datasets you "
    "may read: each is the table project.dataset (or ds_<id>; with project_id, its tables without the "
    "project part), and the table `datasets` lists them. Answers JSON, CSV, Parquet or Arrow IPC "
    "(format, or Accept); LabHub-Row-Count and LabHub-Truncated headers on every format",
    body=SqlRequest, response=SqlResult,
    response_content_type=("application/json", "text/csv", "application/vnd.apache.parquet",
                           "application/vnd.apache.arrow.stream"),
    also={400: "invalid_sql (with position {line, column}) or query_failed", 403: "sql_not_allowed",
          408: "query_timeout", 413: "result_too_large or query_out_of_memory"},
)  # fmt: skip
async def run_sql(request: web.Request) -> web.Response:
    actor = await require_user(request)
    body = await parse_body(request, SqlRequest)
    fmt = answer_format(request, body.format)
    answer = await request.app[SQL].run(actor, body, fmt)
    headers = {
        "Content-Type": answer.content_type,
        "LabHub-Row-Count": str(answer.rows),
        "LabHub-Truncated": "true" if answer.truncated else "false",
        "LabHub-Elapsed-Ms": f"{answer.elapsed_ms:g}",
        "Cache-Control": "no-store",
    }
    if fmt in FILE_NAMES:
        headers["Content-Disposition"] = content_disposition(FILE_NAMES[fmt])
    return web.Response(body=answer.body, headers=headers)
