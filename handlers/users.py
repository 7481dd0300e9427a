"""/api/users: heads list and manage accounts; everyone manages their own profile."""

from __future__ import annotations

import attrs
from aiohttp import web

from domain.errors import Forbidden
from domain.pagination import Page
from domain.users import User, UserChanges
from handlers.codec import json_response, parse_body, parse_query
from handlers.identity import require_user
from handlers.keys import ACCOUNTS, GRANT
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
