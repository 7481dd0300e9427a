"""Single sign-on (docs/architecture.md, "Single sign-on"): which ways to sign in there are, the
OpenID Connect redirect and callback, and the head's choice of who may still use a password.

The callback answers the browser, never a script: success sets the same refresh cookie a password
sign-in sets and goes to /signin/sso (where the console picks the session up); every failure goes
to /signin?sso_error=<code>, which the sign-in page says in words. Never a JSON page or a trace.
"""

from __future__ import annotations

import logging
import urllib.parse

import attrs
from aiohttp import web

from domain.accounts.models import SignInPolicy, SignInPolicyChange
from domain.infra.availability import unavailable_service
from domain.sso.models import ProviderError
from domain.sso.service import ProviderInfo
from handlers.auth import secure_cookie, set_session_cookie
from handlers.calendar import public_base
from handlers.codec import json_response, parse_body
from handlers.identity import require_user
from handlers.keys import SETTINGS, SIGN_IN_POLICIES, SSO
from handlers.openapi import doc

log = logging.getLogger("labhub.sso")
routes = web.RouteTableDef()

STATE_COOKIE = "labhub_oidc"
STATE_COOKIE_PATH = "/api/auth/oidc"
CALLBACK_PATH = "/api/auth/oidc/callback"
_NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@attrs.frozen
class OidcLoginQuery:
    next: str = "/"


@attrs.frozen
class OidcCallbackQuery:
    state: str = ""
    code: str = ""
    error: str = ""
    iss: str = ""


def _to_sign_in_page(code: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/signin?{urllib.parse.urlencode({'sso_error': code})}", headers=_NO_STORE)


@routes.get("/api/auth/providers")
@doc("How one may sign in here: password (for everyone, or heads only), registration, and the "
     "institution's single sign-on with its button text; reasons: what the sign-in page says for "
     "/signin?sso_error=<code>", response=ProviderInfo, auth="none")  # fmt: skip
async def providers(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    password = await request.app[SIGN_IN_POLICIES].password_for_everyone()
    info = request.app[SSO].info(
        password_for_everyone=password, open_registration=settings.auth.open_registration
    )
    return json_response(info, headers={"Cache-Control": "no-cache"})


@routes.get("/api/auth/oidc/login")
@doc("Start signing in with the institution's account: a redirect to the provider (code flow with "
     "PKCE, state and nonce); next: a path of this site to open afterwards. When single sign-on is "
     "off or the provider cannot be reached, a redirect to the sign-in page with sso_error",
     query=OidcLoginQuery, status=303, auth="none")  # fmt: skip
async def oidc_login(request: web.Request) -> web.Response:
    redirect_uri = public_base(request) + CALLBACK_PATH
    try:
        url, state = await request.app[SSO].start(
            next_path=request.query.get("next"), redirect_uri=redirect_uri
        )
    except ProviderError as exc:
        log.warning("single sign-on could not start", extra={"code": exc.code, "reason": exc.detail})
        raise _to_sign_in_page(exc.code) from None
    except Exception as exc:
        if not unavailable_service(exc):
            raise
        raise _to_sign_in_page("unavailable") from None  # Redis or MongoDB restarting: a sentence, not JSON
    response = web.HTTPSeeOther(url, headers=_NO_STORE)
    # the browser that started the sign-in must be the one that finishes it (no login CSRF); Lax,
    # because the provider sends the browser back with a top-level GET from its own site
    response.set_cookie(
        STATE_COOKIE, state, path=STATE_COOKIE_PATH, httponly=True, samesite="Lax", secure=secure_cookie(request),
        max_age=request.app[SETTINGS].oidc.state_ttl_s,
    )  # fmt: skip
    raise response


@routes.get(CALLBACK_PATH)
@doc("Where the provider sends the browser back: checks state (once, and this browser's), trades the "
     "code (with the PKCE verifier), checks the ID token (signature by the provider's keys, issuer, "
     "audience, expiry, nonce), then signs in: the session cookie and a redirect to /signin/sso; any "
     "failure redirects to /signin?sso_error=<code>", query=OidcCallbackQuery, status=303, auth="none")  # fmt: skip
async def oidc_callback(request: web.Request) -> web.Response:
    try:
        signed_in = await request.app[SSO].finish(dict(request.query), request.cookies.get(STATE_COOKIE))
    except ProviderError as exc:
        log.warning("single sign-on refused", extra={"code": exc.code, "reason": exc.detail})
        response = _to_sign_in_page(exc.code)
    except Exception as exc:
        if not unavailable_service(exc):
            raise
        response = _to_sign_in_page("unavailable")  # Redis or MongoDB restarting: a sentence, not JSON
    else:
        log.info("signed in with the identity provider", extra={"user_id": signed_in.user.id})
        response = web.HTTPSeeOther(
            f"/signin/sso?{urllib.parse.urlencode({'next': signed_in.next})}", headers=_NO_STORE
        )
        set_session_cookie(request, response, signed_in.session.refresh_token)
    response.del_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH)
    raise response


@routes.get("/api/auth/sign-in-policy")
@doc("Who may sign in with a password (heads)", response=SignInPolicy)
async def get_policy(request: web.Request) -> web.Response:
    return json_response(await request.app[SIGN_IN_POLICIES].read(await require_user(request)))


@routes.patch("/api/auth/sign-in-policy")
@doc("Heads: password sign-in for everyone, or for heads only (the others sign in with the "
     "institution's account); signed-in sessions only", body=SignInPolicyChange, response=SignInPolicy)  # fmt: skip
async def change_policy(request: web.Request) -> web.Response:
    user = await require_user(request)
    body = await parse_body(request, SignInPolicyChange)
    return json_response(await request.app[SIGN_IN_POLICIES].change(user, body))
