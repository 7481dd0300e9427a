"""/api/auth/device: command-line login without a password (docs/architecture.md, "Device login").

The client starts a login and polls for its token; the person looks the code up at /device in the
console and approves or denies it, from a signed-in session (a personal access token cannot approve:
tokens never mint tokens).
"""

from __future__ import annotations

from aiohttp import web

from domain.tokens.devices import DeviceCode, DevicePoll, DeviceRequest, DeviceStart
from domain.tokens.models import NewToken
from handlers.calendar import public_base
from handlers.codec import json_response, parse_body
from handlers.identity import require_user
from handlers.keys import DEVICE_LOGINS
from handlers.openapi import doc

routes = web.RouteTableDef()
_NO_STORE = {"Cache-Control": "no-store"}


@routes.post("/api/auth/device")
@doc("Start a command-line login: a device code (the client's secret) and a user code to type at "
     "verification_uri; both expire in 10 minutes. Limited per client address", body=DeviceStart,
     response=DeviceCode, auth="none")  # fmt: skip
async def start(request: web.Request) -> web.Response:
    body = await parse_body(request, DeviceStart)
    code = await request.app[DEVICE_LOGINS].start(body, request.remote or "unknown", public_base(request))
    return json_response(code, headers=_NO_STORE)


@routes.post("/api/auth/device/token")
@doc("The client's poll: once approved, a personal access token (shown this once); before, 400 with "
     "code authorization_pending, slow_down (polled within the interval), access_denied or "
     "expired_token (RFC 8628)", body=DevicePoll, response=NewToken, auth="none")  # fmt: skip
async def poll(request: web.Request) -> web.Response:
    body = await parse_body(request, DevicePoll)
    return json_response(await request.app[DEVICE_LOGINS].poll(body), headers=_NO_STORE)


@routes.get("/api/auth/device/{user_code}")
@doc("What a waiting login asks for: the client, its machine and address, the scopes and the token it "
     "would get (signed-in sessions only; wrong codes are limited per person)", response=DeviceRequest)  # fmt: skip
async def describe(request: web.Request) -> web.Response:
    user = await require_user(request)
    found = await request.app[DEVICE_LOGINS].describe(user, request.match_info["user_code"])
    return json_response(found, headers=_NO_STORE)


@routes.post("/api/auth/device/{user_code}/approve")
@doc("Approve a waiting login: the client's next poll gets a personal access token of yours with the "
     "scopes it asked for (admin only from heads)", response=DeviceRequest)  # fmt: skip
async def approve(request: web.Request) -> web.Response:
    user = await require_user(request)
    return json_response(await request.app[DEVICE_LOGINS].approve(user, request.match_info["user_code"]))


@routes.post("/api/auth/device/{user_code}/deny")
@doc("Deny a waiting login: the client's next poll answers access_denied", response=DeviceRequest)
async def deny(request: web.Request) -> web.Response:
    user = await require_user(request)
    return json_response(await request.app[DEVICE_LOGINS].deny(user, request.match_info["user_code"]))
