"""Access tokens and SSE tickets (PyJWT, one pinned algorithm) and opaque refresh tokens."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from datetime import datetime, timedelta

import attrs
import jwt

from domain.core.cache import TtlCache
from domain.core.errors import Unauthenticated

ALGORITHM = "HS256"
SSE_AUDIENCE = "sse"
REQUIRED_CLAIMS = ("sub", "iat", "nbf", "exp", "iss", "aud", "jti")
LEEWAY_S = 5  # clock skew tolerated between instances


@attrs.frozen
class TokenConfig:
    secret: str = attrs.field(repr=False)
    issuer: str
    audience: str
    access_ttl_s: int
    sse_ttl_s: int


@attrs.frozen
class Claims:
    sub: str
    role: str | None
    jti: str
    exp: int
    iat: float = 0.0
    projects: tuple[str, ...] | None = None  # an SSE ticket made with a project-narrowed token


def _encode(config: TokenConfig, claims: dict[str, object], now: datetime, ttl_s: int) -> str:
    payload = {
        **claims,
        # to the microsecond, not the second: a token made just after a sign-out everywhere (in
        # the same second) must be told from one made just before it
        "iat": now.timestamp(),
        "nbf": now,
        "exp": now + timedelta(seconds=ttl_s),
        "iss": config.issuer,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(payload, config.secret, algorithm=ALGORITHM)


def issue_access_token(config: TokenConfig, user_id: str, role: str, now: datetime) -> str:
    claims: dict[str, object] = {"sub": user_id, "role": role, "aud": config.audience}
    return _encode(config, claims, now, config.access_ttl_s)


def issue_sse_ticket(
    config: TokenConfig, user_id: str, now: datetime, projects: tuple[str, ...] | None = None
) -> str:
    claims: dict[str, object] = {"sub": user_id, "aud": SSE_AUDIENCE}
    if projects is not None:
        claims["projects"] = list(projects)
    return _encode(config, claims, now, config.sse_ttl_s)


def verify_token(config: TokenConfig, token: str, *, audience: str | None = None) -> Claims:
    """Any failure (bad signature, other algorithm, expired, wrong audience...) is a plain 401."""
    try:
        payload = jwt.decode(
            token,
            config.secret,
            algorithms=[ALGORITHM],
            audience=audience or config.audience,
            issuer=config.issuer,
            leeway=LEEWAY_S,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthenticated("token expired; refresh it or sign in again", code="token_expired") from None
    except jwt.InvalidTokenError:
        raise Unauthenticated("invalid token", code="invalid_token") from None
    sub, jti, exp = payload.get("sub"), payload.get("jti"), payload.get("exp")
    if not isinstance(sub, str) or not isinstance(jti, str) or not isinstance(exp, int):
        raise Unauthenticated("invalid token", code="invalid_token")
    role = payload.get("role")
    projects = payload.get("projects")
    narrowed = tuple(str(p) for p in projects) if isinstance(projects, list) else None
    iat = payload.get("iat")
    issued = float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else 0.0
    return Claims(
        sub=sub, role=role if isinstance(role, str) else None, jti=jti, exp=exp, iat=issued, projects=narrowed
    )


def check_session(claims: Claims, sessions_valid_after: datetime | None) -> None:
    """A token issued before its user signed out everywhere is refused (docs/architecture.md, "Limits and security")."""
    if sessions_valid_after is not None and claims.iat < sessions_valid_after.timestamp():
        raise Unauthenticated("this session was signed out; sign in again", code="session_ended")


class VerifiedTokens:
    """verify_token with a memory: a token that verified once is not verified again (an HMAC, base64
    and JSON decoding, the claim checks) for `ttl_s`, nor past its own `exp`. Keyed by the token's
    SHA-256, bounded in size; only successes are kept, so a bad token costs a full check each time.
    What can end a valid access token early (a deactivated account) is checked on every request
    after this, by the account lookup."""

    def __init__(self, config: TokenConfig, *, ttl_s: float = 60.0, max_entries: int = 10_000) -> None:
        self._config = config
        self._verified: TtlCache[tuple[bytes, str | None], Claims] = TtlCache(ttl_s, max_entries)

    def verify(self, token: str, *, audience: str | None = None) -> Claims:
        key = (hashlib.sha256(token.encode()).digest(), audience)
        claims = self._verified.get(key)
        if claims is not None and claims.exp > time.time():
            return claims
        claims = verify_token(self._config, token, audience=audience)
        self._verified.put(key, claims, ttl_s=claims.exp - time.time())
        return claims


def new_refresh_token() -> str:
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """How every random secret is stored (refresh tokens, personal access tokens, calendar links):
    they carry 256 random bits, so a plain SHA-256 is safe, unlike for passwords."""
    return hashlib.sha256(secret.encode()).hexdigest()
