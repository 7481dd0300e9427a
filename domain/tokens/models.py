"""Personal access tokens: credentials for scripts and instrument PCs (docs/architecture.md, "Sign-in and tokens").

A secret looks like `lhp_<43 base62 characters: 32 random bytes><6: a CRC-32 of them>`: the prefix
lets secret scanners and people recognise a leaked one, and the checksum lets LabHub refuse a
mistyped or made-up one before any lookup. Only its SHA-256 is stored (the secret has 256 bits of
entropy, so a fast hash is safe here, unlike passwords).

A token can do at most what its user can do now, narrowed by its scopes and optional projects.
Which routes a scope reaches is decided here, from the method and the route, in one place.
"""

from __future__ import annotations

import binascii
import enum
import hmac
import secrets
from datetime import datetime

import attrs

from domain.core.errors import Forbidden, Unauthenticated, field_error

PREFIX = "lhp_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LENGTH = 43  # 62**43 > 2**256
_CHECK_LENGTH = 6  # 62**6 > 2**32
SECRET_LENGTH = len(PREFIX) + _BODY_LENGTH + _CHECK_LENGTH
SHOWN_PREFIX_LENGTH = len(PREFIX) + 8  # what listings show of a token, to tell them apart
MAX_NAME = 100
MAX_TOKENS_PER_USER = 50
LAST_USED_EVERY_S = 60.0


class Scope(enum.StrEnum):
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"


@attrs.frozen
class AccessToken:
    """A token as its owner (and heads) see it: never the secret."""

    id: str
    user_id: str
    name: str
    prefix: str
    scopes: list[Scope]
    project_ids: list[str] | None
    created_at: datetime
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    last_used_from: str | None = None
    revoked_at: datetime | None = None


@attrs.frozen
class NewToken(AccessToken):
    """The answer to creating a token: the only time its secret is shown."""

    token: str = ""


@attrs.frozen
class TokenInput:
    name: str
    scopes: list[Scope]
    project_ids: list[str] | None = None
    expires_at: datetime | None = None


def _base62(number: int, length: int) -> str:
    chars = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(binascii.crc32(body.encode()), _CHECK_LENGTH)


def new_secret() -> str:
    body = _base62(int.from_bytes(secrets.token_bytes(32), "big"), _BODY_LENGTH)
    return PREFIX + body + _checksum(body)


def looks_like_token(value: str) -> bool:
    return value.startswith(PREFIX)


def well_formed(secret: str) -> bool:
    """The prefix, the length, the alphabet and the checksum: checked before any lookup."""
    if len(secret) != SECRET_LENGTH or not secret.startswith(PREFIX):
        return False
    body, check = secret[len(PREFIX) : -_CHECK_LENGTH], secret[-_CHECK_LENGTH:]
    if any(c not in _ALPHABET for c in body):
        return False
    return hmac.compare_digest(_checksum(body), check)


BAD_TOKEN = Unauthenticated("personal access token is not valid", code="invalid_token")


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME:
        raise field_error("$.name", f"must be 1 to {MAX_NAME} characters")
    return name


def check_scopes(scopes: list[Scope], *, head: bool) -> list[Scope]:
    if not scopes:
        raise field_error("$.scopes", "name at least one scope: read, write or admin")
    if Scope.ADMIN in scopes and not head:
        raise field_error("$.scopes", "only heads (GD, DH) can make admin tokens")
    return sorted(set(scopes), key=list(Scope).index)


def check_expiry(expires_at: datetime | None, now: datetime) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise field_error("$.expires_at", "needs a timezone: end it with Z or an offset such as +01:00")
    if expires_at <= now:
        raise field_error("$.expires_at", "must be in the future")
    return expires_at


# -- what a token may reach ------------------------------------------------------------------------


@attrs.frozen
class TokenGrant:
    """The token a request was made with: its scopes and projects (None = all the user's)."""

    token_id: str
    scopes: frozenset[Scope]
    project_ids: frozenset[str] | None


READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ADMIN_ROUTES = ("/api/users", "/api/system", "/metrics")
# only a signed-in person (a session) can manage credentials: a leaked token cannot mint others
SESSION_ONLY = (("POST", "/api/tokens"), ("DELETE", "/api/tokens/{id}"), ("POST", "/api/calendar/link"),
                ("DELETE", "/api/calendar/link"), ("POST", "/api/users/{id}/password-reset"),
                ("POST", "/api/auth/logout-all"), ("GET", "/api/auth/device/{user_code}"),
                ("POST", "/api/auth/device/{user_code}/approve"), ("POST", "/api/auth/device/{user_code}/deny"),
                ("PATCH", "/api/auth/sign-in-policy"))  # fmt: skip
READ_POSTS = frozenset({"/api/auth/sse-ticket", "/api/sql"})  # an SSE ticket, a query: reading


def check_use(grant: TokenGrant, method: str, route: str, *, head: bool) -> None:
    """Raise unless a token with this grant may call `method route` (route: the canonical path)."""
    if (method, route) in SESSION_ONLY:
        raise Forbidden(
            "only a signed-in session can do this, not a personal access token", code="session_required"
        )
    if route.startswith(ADMIN_ROUTES) and (Scope.ADMIN not in grant.scopes or not head):
        raise Forbidden(
            "this route needs a token with the admin scope, made by a head", code="insufficient_scope"
        )
    if grant.project_ids is not None and (method, route) == ("POST", "/api/projects"):
        raise Forbidden("a token narrowed to some projects cannot create projects", code="insufficient_scope")
    if method in READ_METHODS or (method == "POST" and route in READ_POSTS):
        return
    if not grant.scopes & {Scope.WRITE, Scope.ADMIN}:
        raise Forbidden(
            "this token can only read (scope read); changes need the write scope", code="insufficient_scope"
        )
