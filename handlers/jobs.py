"""/api/jobs: a job's state, its live events (SSE), cancel and retry."""

from __future__ import annotations

import attrs
from aiohttp import web

from domain.core.pagination import Page
from domain.jobs.models import Job
from handlers.codec import json_response, parse_query
from handlers.identity import require_sse_user, require_user
from handlers.keys import JOBS
from handlers.openapi import doc
from handlers.sse import StreamEvent, StreamSource, stream_events

routes = web.RouteTableDef()


@attrs.frozen
class JobQuery:
    all: bool = False
    status: str | None = None
    kind: str | None = None
    project_id: str | None = None
    limit: int | None = None
    cursor: str | None = None


@routes.get("/api/jobs")
@doc("Your jobs, newest first (heads: all=true for everyone's), by status, kind or project",
     query=JobQuery, response=Page[Job])  # fmt: skip
async def list_jobs(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, JobQuery)
    page = await request.app[JOBS].list_jobs(
        actor, everyone=query.all, status=query.status, kind=query.kind, project_id=query.project_id,
        limit=query.limit, cursor=query.cursor,
    )  # fmt: skip
    return json_response(page)


@routes.get("/api/jobs/{id}")
@doc("A job: status, attempt, progress, result or error", response=Job)
async def get_job(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[JOBS].get(actor, request.match_info["id"]))


@routes.get("/api/jobs/{id}/events")
@doc("Live job events (text/event-stream): a snapshot, what came after Last-Event-ID, then live "
     "progress until the job ends; 204 when a finished job has nothing more to send",
     auth="sse", response=StreamEvent, response_content_type="text/event-stream",
     also={204: "the job has finished and nothing came after Last-Event-ID"})  # fmt: skip
async def job_events(request: web.Request) -> web.StreamResponse:
    return await stream_events(request, await _job_source(request))


async def _job_source(request: web.Request) -> StreamSource:
    stream, snapshot, finished = await request.app[JOBS].watch(
        await require_sse_user(request), request.match_info["id"]
    )
    return StreamSource(stream, snapshot, finished)


@routes.post("/api/jobs/{id}/cancel")
@doc("Cancel a job: a queued one at once, a running one at its next progress point (killed after a grace period)",
     response=Job, status=202)  # fmt: skip
async def cancel_job(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[JOBS].cancel(actor, request.match_info["id"]), status=202)


@routes.post("/api/jobs/{id}/retry")
@doc("Queue a failed or cancelled job again as a new attempt", response=Job, status=202)
async def retry_job(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[JOBS].retry(actor, request.match_info["id"]), status=202)
