"""/api/auth: register, login, refresh, logout, me, sse-ticket, password resets.

Two ways to hold a session (docs/architecture.md, "Sign-in and tokens"). API clients get both tokens in the JSON body. A browser
sends `X-LabHub-Session: cookie`: the refresh token then travels only in an HttpOnly, SameSite=Strict
cookie scoped to /api/auth, and the body carries the access token alone. A cookie refresh without
that header is refused, so a cross-site form (which cannot set headers) never spends the cookie.
"""

from __future__ import annotations

import attrs
from aiohttp import web

from domain.accounts.models import User
from domain.accounts.signin import SseTicket, TokenPair
from domain.core.errors import BadRequest, Unauthenticated
from handlers.codec import json_response, parse_body
from handlers.errors import problem_response
from handlers.identity import require_user
from handlers.keys import ACCOUNTS, AUTH, GRANT, PASSWORD_RESETS, SETTINGS
from handlers.openapi import doc

routes = web.RouteTableDef()

SESSION_HEADER = "X-LabHub-Session"
REFRESH_COOKIE = "labhub_refresh"
COOKIE_PATH = "/api/auth"
_NO_STORE = {"Cache-Control": "no-store"}


@attrs.frozen
class BrowserSession:
    """What a cookie session's login and refresh answer: the refresh token is in the cookie only."""

    access_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


def wants_cookie(request: web.Request) -> bool:
    return request.headers.get(SESSION_HEADER, "").strip().lower() == "cookie"


def secure_cookie(request: web.Request) -> bool:
    """Whether the session cookie is Secure: from http.public_url when set (behind a TLS proxy the
    request itself is plain HTTP), else from the request."""
    public_url = request.app[SETTINGS].http.public_url
    return public_url.startswith("https://") if public_url else request.secure


def set_session_cookie(request: web.Request, response: web.StreamResponse, refresh_token: str) -> None:
    """The browser session's refresh token, as a password sign-in and single sign-on both set it."""
    response.set_cookie(
        REFRESH_COOKIE, refresh_token, path=COOKIE_PATH, httponly=True, samesite="Strict",
        secure=secure_cookie(request), max_age=request.app[SETTINGS].auth.refresh_ttl_s,
    )  # fmt: skip


def _session_response(request: web.Request, pair: TokenPair) -> web.Response:
    if not wants_cookie(request):
        return json_response(pair, headers=_NO_STORE)
    response = json_response(
        BrowserSession(access_token=pair.access_token, expires_in=pair.expires_in), headers=_NO_STORE
    )
    set_session_cookie(request, response, pair.refresh_token)
    return response


def _clear_cookie(request: web.Request, response: web.StreamResponse) -> None:
    response.set_cookie(
        REFRESH_COOKIE, "", path=COOKIE_PATH, httponly=True, samesite="Strict", secure=secure_cookie(request),
        max_age=0, expires="Thu, 01 Jan 1970 00:00:00 GMT",
    )  # fmt: skip


async def _refresh_token_of(request: web.Request) -> str:
    """The cookie's token when the client asked for a cookie session, else the body's."""
    if wants_cookie(request):
        token = request.cookies.get(REFRESH_COOKIE)
        if not token:
            raise Unauthenticated("no session cookie; sign in again", code="invalid_refresh_token")
        return token
    if REFRESH_COOKIE in request.cookies and not await request.read():
        raise BadRequest(
            f"a session cookie is only used with the header {SESSION_HEADER}: cookie",
            code="session_header_required",
        )
    return (await parse_body(request, RefreshBody)).refresh_token


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
    user = await request.app[ACCOUNTS].register(
        email=body.email, password=body.password, name=body.name, client=request.remote or "unknown"
    )
    return json_response(user, status=201)


@routes.post("/api/auth/login")
@doc("Sign in: an access token (15 min) and a rotating refresh token; with X-LabHub-Session: cookie "
     "the refresh token is set as an HttpOnly cookie instead of returned", body=LoginBody,
     response=TokenPair | BrowserSession, auth="none")  # fmt: skip
async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginBody)
    pair = await request.app[AUTH].login(
        email=body.email, password=body.password, client=request.remote or "unknown"
    )
    return _session_response(request, pair)


@routes.post("/api/auth/refresh")
@doc("Trade a refresh token for a new pair; a reused token ends its whole session family. With "
     "X-LabHub-Session: cookie the token comes from (and the new one goes to) the session cookie",
     body=RefreshBody, response=TokenPair | BrowserSession, auth="none",
     also={400: "a session cookie was sent without X-LabHub-Session: cookie"})  # fmt: skip
async def refresh(request: web.Request) -> web.Response:
    token = await _refresh_token_of(request)
    try:
        pair = await request.app[AUTH].refresh(token)
    except Unauthenticated as exc:
        if not wants_cookie(request):
            raise
        response = problem_response(
            request, status=exc.status, code=exc.code, title=exc.title, detail=exc.detail,
            headers={"WWW-Authenticate": 'Bearer realm="labhub"'},
        )  # fmt: skip
        _clear_cookie(request, response)  # a dead session's cookie is of no use to keep
        return response
    return _session_response(request, pair)


@routes.post("/api/auth/logout")
@doc("End the session the refresh token belongs to (the cookie's, with X-LabHub-Session: cookie, "
     "which is cleared)", body=RefreshBody, status=204, auth="none")  # fmt: skip
async def logout(request: web.Request) -> web.Response:
    if wants_cookie(request):
        token = request.cookies.get(REFRESH_COOKIE)
        if token:
            await request.app[AUTH].logout(token)
        response = web.Response(status=204)  # signed out either way: the cookie goes
        _clear_cookie(request, response)
        return response
    await request.app[AUTH].logout(await _refresh_token_of(request))
    return web.Response(status=204)


@routes.post("/api/auth/logout-all")
@doc("Sign out everywhere: every session of yours ends now (access tokens issued until now are "
     "refused, refresh tokens revoked, open event streams closed, on every instance); personal access "
     "tokens stay", status=204)  # fmt: skip
async def logout_all(request: web.Request) -> web.Response:
    user = await require_user(request)
    await request.app[AUTH].sign_out_everywhere(user)
    response = web.Response(status=204)
    if wants_cookie(request):
        _clear_cookie(request, response)
    return response


@routes.get("/api/auth/me")
@doc("The signed-in user", response=User)
async def me(request: web.Request) -> web.Response:
    return json_response(await require_user(request))


@routes.post("/api/auth/sse-ticket")
@doc("A short-lived ticket (audience sse) for EventSource, which cannot send headers",
     response=SseTicket)  # fmt: skip
async def sse_ticket(request: web.Request) -> web.Response:
    user = await require_user(request)
    grant = request.get(GRANT)
    ticket = request.app[AUTH].sse_ticket(user, grant.project_ids if grant else None)
    return json_response(ticket, headers={"Cache-Control": "no-store"})


@attrs.frozen
class ResetRequest:
    email: str


@attrs.frozen
class ResetRequested:
    message: str = "If an account has this address, a reset link is on its way; it works once."


@attrs.frozen
class ResetConfirm:
    token: str
    password: str
    revoke_tokens: bool = False  # also revoke every personal access token of the account


@routes.post("/api/auth/password-reset")
@doc("Ask for a password reset link by mail (when mail is on). Always 202, whatever the address; "
     "limited per address and per client", body=ResetRequest, response=ResetRequested, status=202,
     auth="none", also={403: "this LabHub does not send mail (code mail_disabled)"})  # fmt: skip
async def request_reset(request: web.Request) -> web.Response:
    body = await parse_body(request, ResetRequest)
    await request.app[PASSWORD_RESETS].request_by_mail(body.email, request.remote or "unknown")
    return json_response(ResetRequested(), status=202)


@routes.post("/api/auth/password-reset/confirm")
@doc("Set a new password with a reset link's token: every session ends (and every personal access "
     "token, with revoke_tokens); a used, expired or replaced token answers 400 invalid_reset",
     body=ResetConfirm, status=204, auth="none")  # fmt: skip
async def confirm_reset(request: web.Request) -> web.Response:
    body = await parse_body(request, ResetConfirm)
    await request.app[PASSWORD_RESETS].confirm(
        body.token, body.password, revoke_tokens=body.revoke_tokens, client=request.remote or "unknown"
    )
    return web.Response(status=204, headers={"Cache-Control": "no-store"})
