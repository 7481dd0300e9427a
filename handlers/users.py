"""/api/users: heads list and manage accounts; everyone manages their own profile."""

from __future__ import annotations

import attrs
from aiohttp import web

from domain.accounts.models import NotificationSettings, NotificationSettingsChanges, User, UserChanges
from domain.core.errors import Forbidden
from domain.core.pagination import Page
from domain.quotas.service import Usage
from domain.resets.service import ResetLink
from handlers.calendar import public_base
from handlers.codec import json_response, parse_body, parse_query
from handlers.identity import require_user
from handlers.keys import ACCOUNTS, GRANT, PASSWORD_RESETS, QUOTAS
from handlers.openapi import doc

routes = web.RouteTableDef()


@attrs.frozen
class UserListQuery:
    q: str | None = None
    limit: int | None = None
    cursor: str | None = None


@routes.get("/api/users")
@doc("List users (heads); q= matches the start of a name or email", query=UserListQuery,
     response=Page[User])  # fmt: skip
async def list_users(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, UserListQuery)
    page = await request.app[ACCOUNTS].list_users(actor, q=query.q, limit=query.limit, cursor=query.cursor)
    return json_response(page)


@routes.get("/api/users/{id}")
@doc("One user (self or heads)", response=User)
async def get_user(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[ACCOUNTS].get(actor, request.match_info["id"]))


@routes.patch("/api/users/{id}")
@doc("Change a user: self name/password, heads role/active", body=UserChanges, response=User)
async def patch_user(request: web.Request) -> web.Response:
    actor = await require_user(request)
    changes = await parse_body(request, UserChanges)
    if changes.password is not None and GRANT in request:
        raise Forbidden("only a signed-in session can change a password, not a personal access token",
                        code="session_required")  # fmt: skip
    user = await request.app[ACCOUNTS].update(actor, request.match_info["id"], changes)
    return json_response(user)


@routes.post("/api/users/{id}/password-reset")
@doc("Make a one-time password reset link for a user (heads, signed-in sessions only): "
     "{public_url}/reset#token=…, valid auth.reset_ttl_s; a newer link voids the older",
     response=ResetLink, status=201)  # fmt: skip
async def make_reset_link(request: web.Request) -> web.Response:
    actor = await require_user(request)
    link = await request.app[PASSWORD_RESETS].create_for(
        actor, request.match_info["id"], public_base(request)
    )
    return json_response(link, status=201, headers={"Cache-Control": "no-store"})


@routes.get("/api/users/me/notification-settings")
@doc("Which mail you get: meeting invitations and job notices (reset links always come)",
     response=NotificationSettings)  # fmt: skip
async def get_notification_settings(request: web.Request) -> web.Response:
    user = await require_user(request)
    return json_response(await request.app[ACCOUNTS].notification_settings(user))


@routes.get("/api/users/me/usage")
@doc("What you hold against your quotas: storage, unfinished uploads, jobs waiting or running, open "
     "event streams (on this instance); a limit of null is no limit", response=Usage)  # fmt: skip
async def get_usage(request: web.Request) -> web.Response:
    user = await require_user(request)
    return json_response(await request.app[QUOTAS].usage(user.id))


@routes.patch("/api/users/me/notification-settings")
@doc("Turn meeting invitations or job notices by mail on or off", body=NotificationSettingsChanges,
     response=NotificationSettings)  # fmt: skip
async def patch_notification_settings(request: web.Request) -> web.Response:
    user = await require_user(request)
    changes = await parse_body(request, NotificationSettingsChanges)
    return json_response(await request.app[ACCOUNTS].change_notification_settings(user, changes))
