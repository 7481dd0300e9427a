"""Who is calling: the bearer token (or, for EventSource, an SSE ticket) resolved to a user."""

from __future__ import annotations

from aiohttp import web

from domain.errors import Unauthenticated
from domain.users import User
from handlers.keys import AUTH, USER_ID


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def require_user(request: web.Request) -> User:
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated(
            "sign in first: send Authorization: Bearer <access token>", code="missing_token"
        )
    user = await request.app[AUTH].authenticate(token)
    request[USER_ID] = user.id
    return user


async def require_sse_user(request: web.Request) -> User:
    """EventSource cannot send headers, so SSE routes also take ?ticket= from /api/auth/sse-ticket."""
    ticket = request.query.get("ticket")
    if bearer_token(request) is not None or not ticket:
        return await require_user(request)
    user = await request.app[AUTH].authenticate_sse(ticket)
    request[USER_ID] = user.id
    return user
