"""Who is calling: a bearer access token, a personal access token (lhp_...) or, for EventSource,
an SSE ticket, resolved to a user. A personal access token is also checked against the route: its
scopes, and (through the project gate) its projects."""

from __future__ import annotations

from aiohttp import web

from domain.accounts.models import User
from domain.core.errors import Unauthenticated
from domain.projects.grant import current_grant
from domain.tokens.models import Scope, TokenGrant, check_use, looks_like_token
from handlers.keys import ACCESS_TOKENS, AUTH, GRANT, USER_ID

_TOKEN_IN_URL = Unauthenticated(
    "a personal access token was sent in the URL: send it as Authorization: Bearer, never in a URL",
    code="token_in_url",
)


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


async def require_user(request: web.Request) -> User:
    if any(looks_like_token(value) for value in request.query.values()):
        raise _TOKEN_IN_URL  # refused, never used (and the access log never prints query strings)
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated(
            "sign in first: send Authorization: Bearer <access token>", code="missing_token"
        )
    if looks_like_token(token):
        user, grant = await request.app[ACCESS_TOKENS].authenticate(token, request.remote or "unknown")
        check_use(grant, request.method, route_of(request), head=user.is_head)
        current_grant.set(grant)  # the project gate and the listings narrow to the token's projects
        request[GRANT] = grant
    else:
        user = await request.app[AUTH].authenticate(token)
        current_grant.set(None)  # each request runs in its own task; this only makes it plain
    request[USER_ID] = user.id
    return user


async def require_sse_user(request: web.Request) -> User:
    """EventSource cannot send headers, so SSE routes also take ?ticket= from /api/auth/sse-ticket."""
    ticket = request.query.get("ticket")
    if bearer_token(request) is not None or not ticket:
        return await require_user(request)
    if looks_like_token(ticket):
        raise _TOKEN_IN_URL
    user, projects = await request.app[AUTH].authenticate_sse(ticket)
    if projects is not None:  # made with a project-narrowed token: the stream keeps to its projects
        current_grant.set(TokenGrant("sse-ticket", frozenset({Scope.READ}), frozenset(projects)))
    request[USER_ID] = user.id
    return user
