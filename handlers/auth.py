"""/api/auth: register, login, refresh, logout, me, sse-ticket."""

from __future__ import annotations

import attrs
from aiohttp import web

from domain.auth import SseTicket, TokenPair
from domain.users import User
from handlers.codec import json_response, parse_body
from handlers.identity import require_user
from handlers.keys import ACCOUNTS, AUTH
from handlers.openapi import doc

routes = web.RouteTableDef()


@attrs.frozen
class RegisterBody:
    email: str
    password: str
    name: str


@attrs.frozen
class LoginBody:
    email: str
    password: str


@attrs.frozen
class RefreshBody:
    refresh_token: str


@routes.post("/api/auth/register")
@doc("Create a student account (when open registration is on)", body=RegisterBody, response=User,
     status=201, auth="none")  # fmt: skip
async def register(request: web.Request) -> web.Response:
    body = await parse_body(request, RegisterBody)
    user = await request.app[ACCOUNTS].register(email=body.email, password=body.password, name=body.name)
    return json_response(user, status=201)


@routes.post("/api/auth/login")
@doc("Sign in: an access token (15 min) and a rotating refresh token", body=LoginBody,
     response=TokenPair, auth="none")  # fmt: skip
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginBody)
    pair = await request.app[AUTH].login(
        email=body.email, password=body.password, client=request.remote or "unknown"
    )
    return json_response(pair, headers={"Cache-Control": "no-store"})


@routes.post("/api/auth/refresh")
@doc("Trade a refresh token for a new pair; a reused token ends its whole session family",
     body=RefreshBody, response=TokenPair, auth="none")  # fmt: skip
async def refresh(request: web.Request) -> web.Response:
    body = await parse_body(request, RefreshBody)
    pair = await request.app[AUTH].refresh(body.refresh_token)
    return json_response(pair, headers={"Cache-Control": "no-store"})


@routes.post("/api/auth/logout")
@doc("End the session the refresh token belongs to", body=RefreshBody, status=204, auth="none")
async def logout(request: web.Request) -> web.Response:
    body = await parse_body(request, RefreshBody)
    await request.app[AUTH].logout(body.refresh_token)
    return web.Response(status=204)


@routes.get("/api/auth/me")
@doc("The signed-in user", response=User)
async def me(request: web.Request) -> web.Response:
    return json_response(await require_user(request))


@routes.post("/api/auth/sse-ticket")
@doc("A short-lived ticket (audience sse) for EventSource, which cannot send headers",
     response=SseTicket)  # fmt: skip
async def sse_ticket(request: web.Request) -> web.Response:
    user = await require_user(request)
    return json_response(request.app[AUTH].sse_ticket(user), headers={"Cache-Control": "no-store"})
