"""/api/meetings: a project's meetings, answers, attendance and calendar (iCalendar) files."""

from __future__ import annotations

import attrs
from aiohttp import web

from domain.core.pagination import Page
from domain.meetings.models import (
    AttendanceInput,
    Meeting,
    MeetingChanges,
    MeetingInput,
    RsvpInput,
    query_moment,
)
from handlers.calendar import MEDIA_TYPE, ical_response, to_ical
from handlers.codec import json_response, parse_body, parse_query
from handlers.identity import require_user
from handlers.keys import MEETINGS, SETTINGS
from handlers.openapi import doc

routes = web.RouteTableDef()


@attrs.frozen
class MeetingListQuery:
    """from/to: a day (in the lab's time zone) or an ISO 8601 date-time; meetings starting in [from, to)."""

    from_: str | None = None
    to: str | None = None
    limit: int | None = None
    cursor: str | None = None


# the .ics routes come first: /api/meetings/{id} would otherwise take "<id>.ics" as an id
@routes.get("/api/meetings/{id}.ics")
@doc("One meeting as an iCalendar (RFC 5545) file", response=bytes, response_content_type=MEDIA_TYPE)
async def meeting_ics(request: web.Request) -> web.Response:
    actor = await require_user(request)
    calendar = await request.app[MEETINGS].calendar_of(actor, request.match_info["id"])
    meeting = calendar.meetings[0]
    body = to_ical(calendar, name=f"{calendar.project.name}: {meeting.title}")
    return ical_response(body, f"meeting-{meeting.id}.ics")


@routes.get("/api/projects/{pid}/meetings.ics")
@doc("The project's meetings as an iCalendar feed (cancelled ones marked, latest 2000)", response=bytes,
     response_content_type=MEDIA_TYPE)  # fmt: skip
async def project_ics(request: web.Request) -> web.Response:
    actor = await require_user(request)
    calendar = await request.app[MEETINGS].project_calendar(actor, request.match_info["pid"])
    body = to_ical(calendar, name=f"{calendar.project.name} (LabHub)")
    return ical_response(body, f"project-{calendar.project.id}-meetings.ics")


@routes.post("/api/projects/{pid}/meetings")
@doc("Schedule a meeting; the attendees (project members) are notified", body=MeetingInput, response=Meeting,
     status=201)  # fmt: skip
async def create_meeting(request: web.Request) -> web.Response:
    actor = await require_user(request)
    body = await parse_body(request, MeetingInput)
    meeting = await request.app[MEETINGS].create(actor, request.match_info["pid"], body)
    return json_response(meeting, status=201)


@routes.get("/api/projects/{pid}/meetings")
@doc("The project's meetings: upcoming soonest first, then past ones latest first", query=MeetingListQuery,
     response=Page[Meeting])  # fmt: skip
async def list_meetings(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, MeetingListQuery)
    zone = request.app[SETTINGS].app.zone
    page = await request.app[MEETINGS].list_meetings(
        actor, request.match_info["pid"],
        start_from=query_moment(query.from_, "from", zone), start_to=query_moment(query.to, "to", zone, end=True),
        limit=query.limit, cursor=query.cursor,
    )  # fmt: skip
    return json_response(page)


@routes.get("/api/meetings/{id}")
@doc("One meeting", response=Meeting)
async def get_meeting(request: web.Request) -> web.Response:
    actor = await require_user(request)
    meeting, _ = await request.app[MEETINGS].get(actor, request.match_info["id"])
    return json_response(meeting)


@routes.patch("/api/meetings/{id}")
@doc("Change a meeting (organiser, leads, heads; attendees: notes and action items); bumps its sequence",
     body=MeetingChanges, response=Meeting)  # fmt: skip
async def patch_meeting(request: web.Request) -> web.Response:
    actor = await require_user(request)
    changes = await parse_body(request, MeetingChanges)
    return json_response(await request.app[MEETINGS].update(actor, request.match_info["id"], changes))


@routes.delete("/api/meetings/{id}")
@doc("Cancel a meeting (organiser, leads, heads): it stays listed as cancelled and attendees are told",
     status=204)  # fmt: skip
async def cancel_meeting(request: web.Request) -> web.Response:
    actor = await require_user(request)
    await request.app[MEETINGS].cancel(actor, request.match_info["id"])
    return web.Response(status=204)


@routes.post("/api/meetings/{id}/rsvp")
@doc("Answer an invitation: yes, no or maybe (invited people, until the meeting ends)", body=RsvpInput,
     response=Meeting)  # fmt: skip
async def rsvp(request: web.Request) -> web.Response:
    actor = await require_user(request)
    body = await parse_body(request, RsvpInput)
    return json_response(await request.app[MEETINGS].rsvp(actor, request.match_info["id"], body.response))


@routes.post("/api/meetings/{id}/attendance")
@doc("Record who came (leads, heads; once the meeting has started)", body=AttendanceInput, response=Meeting)
async def attendance(request: web.Request) -> web.Response:
    actor = await require_user(request)
    body = await parse_body(request, AttendanceInput)
    return json_response(await request.app[MEETINGS].record_attendance(actor, request.match_info["id"], body))
