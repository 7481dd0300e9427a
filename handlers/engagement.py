"""/api/engagement: time students log, the per-student summary (JSON or CSV) and its plot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import Any, Literal

import attrs
from aiohttp import web

from domain.core.pagination import Page
from domain.engagement.models import (
    Activity,
    EngagementPlotInput,
    Entry,
    EntryChanges,
    EntryInput,
    Group,
    Summary,
    SummaryRow,
)
from domain.visualizations.models import Visualization
from handlers.codec import json_response, parse_body, parse_query
from handlers.export import stream_csv
from handlers.identity import require_user
from handlers.keys import ENGAGEMENT
from handlers.openapi import doc

routes = web.RouteTableDef()

COUNTS = ("meetings_attended", "meetings_missed", "uploads", "ingestions", "records")
CSV_HEADER = (
    "student_id", "student_name", "period", "period_start", "period_end", "minutes",
    *(f"minutes_{a.value}" for a in Activity), *COUNTS, "last_active",
)  # fmt: skip


@attrs.frozen
class EntryListQuery:
    """Students get their own entries; leads and heads everyone's (student_id= for one)."""

    student_id: str | None = None
    from_: date | None = None
    to: date | None = None
    activity: Activity | None = None
    limit: int | None = None
    cursor: str | None = None


@attrs.frozen
class SummaryQuery:
    """from defaults to the project's first day (or its earliest entry), to to today, in the lab's time zone."""

    project_id: str
    student_id: str | None = None
    from_: date | None = None
    to: date | None = None
    group: Group = Group.WEEK
    format: Literal["json", "csv"] = "json"


def csv_row(row: SummaryRow) -> Sequence[Any]:
    return (
        row.student_id, row.student_name, row.period, row.period_start, row.period_end, row.minutes,
        *(row.minutes_by_activity[a.value] for a in Activity), *(getattr(row, c) for c in COUNTS), row.last_active,
    )  # fmt: skip


async def _rows(summary: Summary) -> AsyncIterator[Sequence[Any]]:
    for row in summary.rows:
        yield csv_row(row)


@routes.post("/api/projects/{pid}/engagement")
@doc("Log time (your own; leads and heads may log for a member with student_id)", body=EntryInput,
     response=Entry, status=201)  # fmt: skip
async def create_entry(request: web.Request) -> web.Response:
    actor = await require_user(request)
    body = await parse_body(request, EntryInput)
    return json_response(
        await request.app[ENGAGEMENT].create(actor, request.match_info["pid"], body), status=201
    )


@routes.get("/api/projects/{pid}/engagement")
@doc("Logged time, latest day first: your own, or everyone's for leads and heads", query=EntryListQuery,
     response=Page[Entry])  # fmt: skip
async def list_entries(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, EntryListQuery)
    page = await request.app[ENGAGEMENT].list_entries(
        actor, request.match_info["pid"], student_id=query.student_id, start=query.from_, end=query.to,
        activity=query.activity, limit=query.limit, cursor=query.cursor,
    )  # fmt: skip
    return json_response(page)


@routes.get("/api/engagement/summary")
@doc("Per student and week or month: logged minutes and what LabHub counted (meetings, uploads, ingestions, "
     "records); students get their own rows. format=csv for a spreadsheet", query=SummaryQuery,
     response=Summary, response_content_type=("application/json", "text/csv"))  # fmt: skip
async def summary(request: web.Request) -> web.StreamResponse:
    actor = await require_user(request)
    query = parse_query(request, SummaryQuery)
    result = await request.app[ENGAGEMENT].summary(
        actor,
        query.project_id,
        student_id=query.student_id,
        start=query.from_,
        end=query.to,
        group=query.group,
    )
    if query.format == "csv":
        name = f"engagement-{result.project_id}-{result.start.isoformat()}-{result.end.isoformat()}.csv"
        return await stream_csv(request, name, CSV_HEADER, _rows(result))
    return json_response(result)


@routes.patch("/api/engagement/{id}")
@doc("Correct an entry (the student, leads, heads)", body=EntryChanges, response=Entry)
async def patch_entry(request: web.Request) -> web.Response:
    actor = await require_user(request)
    changes = await parse_body(request, EntryChanges)
    return json_response(await request.app[ENGAGEMENT].update(actor, request.match_info["id"], changes))


@routes.delete("/api/engagement/{id}")
@doc("Delete an entry (the student, leads, heads)", status=204)
async def delete_entry(request: web.Request) -> web.Response:
    actor = await require_user(request)
    await request.app[ENGAGEMENT].delete(actor, request.match_info["id"])
    return web.Response(status=204)


@routes.post("/api/projects/{pid}/engagement/visualizations")
@doc("Plot logged time per student over time, stacked by activity (students: their own); a job renders it",
     body=EngagementPlotInput, response=Visualization, status=202)  # fmt: skip
async def plot(request: web.Request) -> web.Response:
    actor = await require_user(request)
    body = await parse_body(request, EngagementPlotInput)
    return json_response(
        await request.app[ENGAGEMENT].plot(actor, request.match_info["pid"], body), status=202
    )
