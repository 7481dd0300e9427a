"""Calendar files and subscription links over HTTP (the iCalendar itself is written in domain.meetings.ical)."""

from __future__ import annotations

import hashlib

from aiohttp import web

from domain.meetings.calendar_links import CalendarLink, UserFeed
from domain.meetings.ical import MEDIA_TYPE, feed_ical
from domain.meetings.service import Calendar
from handlers.codec import json_response
from handlers.downloads import content_disposition
from handlers.identity import require_user
from handlers.keys import CALENDAR_LINKS, SETTINGS
from handlers.openapi import doc


def to_ical(calendar: Calendar | UserFeed, *, name: str) -> bytes:
    return feed_ical(calendar.meetings, calendar.people, name=name)


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
