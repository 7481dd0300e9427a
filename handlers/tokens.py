"""/api/tokens: personal access tokens for scripts and instrument PCs."""

from __future__ import annotations

from aiohttp import web

from domain.core.pagination import Page
from domain.tokens.models import AccessToken, NewToken, TokenInput
from handlers.codec import json_response, parse_body
from handlers.identity import require_user
from handlers.keys import ACCESS_TOKENS
from handlers.openapi import doc

routes = web.RouteTableDef()


@routes.post("/api/tokens")
@doc("Make a personal access token (signed-in sessions only): its secret is in this answer and never "
     "again; scopes read, write, admin (heads); project_ids narrows it; expires_at optional",
     body=TokenInput, response=NewToken, status=201)  # fmt: skip
async def create_token(request: web.Request) -> web.Response:
    actor = await require_user(request)
    body = await parse_body(request, TokenInput)
    token = await request.app[ACCESS_TOKENS].create(actor, body)
    return json_response(token, status=201, headers={"Cache-Control": "no-store"})


@routes.get("/api/tokens")
@doc("Your tokens (never their secrets): name, prefix, scopes, projects, created, expires, last used "
     "and from where", response=Page[AccessToken])  # fmt: skip
async def list_tokens(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[ACCESS_TOKENS].list_mine(actor))


@routes.delete("/api/tokens/{id}")
@doc("Revoke a token (yours; heads: anyone's), at once on this instance and within "
     "auth.identity_cache_s on the others (signed-in sessions only)", status=204)  # fmt: skip
async def revoke_token(request: web.Request) -> web.Response:
    actor = await require_user(request)
    await request.app[ACCESS_TOKENS].revoke(actor, request.match_info["id"])
    return web.Response(status=204)


@routes.get("/api/users/{id}/tokens")
@doc("A user's tokens (heads)", response=Page[AccessToken])
async def user_tokens(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[ACCESS_TOKENS].list_of(actor, request.match_info["id"]))
