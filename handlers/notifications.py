"""/api/notifications: a user's notifications, unread count, read marks and a live stream."""

from __future__ import annotations

import attrs
from aiohttp import web

from domain.core.pagination import Page
from domain.notifications.models import Notification, UnreadCount
from handlers.codec import json_response, parse_query
from handlers.identity import require_sse_user, require_user
from handlers.keys import NOTIFICATIONS
from handlers.openapi import doc
from handlers.sse import StreamEvent, StreamSource, stream_events

routes = web.RouteTableDef()


@attrs.frozen
class NotificationQuery:
    unread: bool = False
    limit: int | None = None
    cursor: str | None = None


@routes.get("/api/notifications")
@doc("Your notifications, newest first; unread=true for unread ones only", query=NotificationQuery,
     response=Page[Notification])  # fmt: skip
async def list_notifications(request: web.Request) -> web.Response:
    user = await require_user(request)
    query = parse_query(request, NotificationQuery)
    page = await request.app[NOTIFICATIONS].list_for(
        user, unread_only=query.unread, limit=query.limit, cursor=query.cursor
    )
    return json_response(page)


@routes.get("/api/notifications/unread-count")
@doc("How many of your notifications are unread", response=UnreadCount)
async def unread_count(request: web.Request) -> web.Response:
    user = await require_user(request)
    return json_response(await request.app[NOTIFICATIONS].unread_count(user))


@routes.post("/api/notifications/read-all")
@doc("Mark all your notifications read", response=UnreadCount)
async def read_all(request: web.Request) -> web.Response:
    user = await require_user(request)
    return json_response(await request.app[NOTIFICATIONS].mark_all_read(user))


@routes.post("/api/notifications/{id}/read")
@doc("Mark one notification read", response=Notification)
async def read_one(request: web.Request) -> web.Response:
    user = await require_user(request)
    return json_response(await request.app[NOTIFICATIONS].mark_read(user, request.match_info["id"]))


@routes.get("/api/notifications/events")
@doc("Live notifications (text/event-stream): a snapshot of the unread count, then what came after "
     "Last-Event-ID, then new ones", auth="sse", response=StreamEvent,
     response_content_type="text/event-stream")  # fmt: skip
async def notification_events(request: web.Request) -> web.StreamResponse:
    return await stream_events(request, await _notification_source(request))


async def _notification_source(request: web.Request) -> StreamSource:
    user = await require_sse_user(request)
    service = request.app[NOTIFICATIONS]
    return StreamSource(
        service.stream(user), attrs.asdict(await service.unread_count(user)), finished=False,
        accepts=service.stream_filter(),
    )  # fmt: skip
