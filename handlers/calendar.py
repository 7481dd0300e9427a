"""Meetings as iCalendar (RFC 5545), written with the icalendar library.

Each meeting is one VEVENT whose UID never changes; SEQUENCE is the meeting's revision count, so a
calendar that subscribed to the feed replaces the old copy, and a cancelled meeting stays in the
feed with STATUS:CANCELLED so subscribers remove it.
"""

from __future__ import annotations

import hashlib

from aiohttp import web
from icalendar import Calendar as ICalendar
from icalendar import Event, vCalAddress

from domain import __version__
from domain.calendar_links import CalendarLink, UserFeed
from domain.meeting_service import Calendar
from domain.meetings import Meeting, MeetingStatus, RsvpResponse
from domain.users import User
from handlers.codec import json_response
from handlers.downloads import content_disposition
from handlers.identity import require_user
from handlers.keys import CALENDAR_LINKS, SETTINGS
from handlers.openapi import doc

MEDIA_TYPE = "text/calendar"
PRODID = f"-//LabHub//LabHub {__version__}//EN"
UID_DOMAIN = "meetings.labhub"
PARTSTAT = {
    RsvpResponse.YES: "ACCEPTED",
    RsvpResponse.NO: "DECLINED",
    RsvpResponse.MAYBE: "TENTATIVE",
    None: "NEEDS-ACTION",
}


def meeting_uid(meeting_id: str) -> str:
    return f"{meeting_id}@{UID_DOMAIN}"


def _address(user: User, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{user.email}")
    address.params["cn"] = user.name.replace('"', "'")  # a parameter value cannot hold a double quote
    address.params.update(params)
    return address


def _event(meeting: Meeting, people: dict[str, User]) -> Event:
    event = Event()
    event.add("uid", meeting_uid(meeting.id))
    event.add("dtstamp", meeting.updated_at)
    event.add("created", meeting.created_at)
    event.add("last-modified", meeting.updated_at)
    event.add("sequence", meeting.sequence)
    event.add("dtstart", meeting.starts_at)
    event.add("dtend", meeting.ends_at)
    event.add("summary", meeting.title)
    cancelled = meeting.status is MeetingStatus.CANCELLED
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    description = "\n\n".join(part for part in (meeting.agenda, meeting.link or "") if part)
    if description:
        event.add("description", description)
    if meeting.location or meeting.link:
        event.add("location", meeting.location or meeting.link)
    if meeting.link:
        event.add("url", meeting.link)
    organiser = people.get(meeting.created_by)
    if organiser is not None:
        event.add("organizer", _address(organiser), encode=False)
    for user_id in meeting.attendee_ids:
        user = people.get(user_id)
        if user is not None:
            status = PARTSTAT[meeting.rsvp_of(user_id)]
            event.add(
                "attendee", _address(user, role="REQ-PARTICIPANT", partstat=status, cutype="INDIVIDUAL"),
                encode=False,
            )  # fmt: skip
    return event


def to_ical(calendar: Calendar | UserFeed, *, name: str) -> bytes:
    document = ICalendar()
    document.add("prodid", PRODID)
    document.add("version", "2.0")
    document.add("calscale", "GREGORIAN")
    document.add("method", "PUBLISH")
    document.add("x-wr-calname", name)
    for meeting in calendar.meetings:
        document.add_component(_event(meeting, calendar.people))
    return bytes(document.to_ical())


def ical_response(body: bytes, filename: str) -> web.Response:
    return web.Response(
        body=body,
        content_type=MEDIA_TYPE,
        charset="utf-8",
        headers={
            "Content-Disposition": content_disposition(filename),
            "Cache-Control": "private, no-cache",
        },
    )


def public_base(request: web.Request) -> str:
    """The base of links LabHub hands out: http.public_url, else this request's scheme and Host."""
    configured = request.app[SETTINGS].http.public_url
    return configured or f"{request.scheme}://{request.host}"


routes = web.RouteTableDef()


@routes.post("/api/calendar/link")
@doc("Make (or replace) your calendar subscription link: a secret URL of your meetings' feed for "
     "calendar apps; the old link stops at once (signed-in sessions only)", response=CalendarLink,
     status=201)  # fmt: skip
async def make_link(request: web.Request) -> web.Response:
    actor = await require_user(request)
    link = await request.app[CALENDAR_LINKS].create(actor, public_base(request))
    return json_response(link, status=201, headers={"Cache-Control": "no-store"})


@routes.delete("/api/calendar/link")
@doc("Remove your calendar subscription link (signed-in sessions only)", status=204)
async def remove_link(request: web.Request) -> web.Response:
    actor = await require_user(request)
    await request.app[CALENDAR_LINKS].remove(actor)
    return web.Response(status=204)


@routes.get("/api/calendar/{secret}.ics")
@doc("A user's meetings for calendar apps (the link's secret is the only credential): every project "
     "they belong to, upcoming and the last 90 days, cancelled ones marked; ETag / If-None-Match",
     response=bytes, response_content_type=MEDIA_TYPE, auth="none",
     also={304: "the feed has not changed since the ETag sent in If-None-Match"})  # fmt: skip
async def feed(request: web.Request) -> web.Response:
    user_feed = await request.app[CALENDAR_LINKS].feed(request.match_info["secret"])
    body = to_ical(user_feed, name=f"{user_feed.user.name} (LabHub)")
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=MEDIA_TYPE, charset="utf-8", headers=headers)
