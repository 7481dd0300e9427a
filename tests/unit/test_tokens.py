"""Access tokens: every forgery or misuse is a 401, never accepted."""

from __future__ import annotations

import base64
import json
import time
from datetime import timedelta

import jwt
import pytest

from domain.accounts import jwt as tokens
from domain.accounts.jwt import (
    TokenConfig,
    VerifiedTokens,
    hash_secret,
    issue_access_token,
    issue_sse_ticket,
    new_refresh_token,
    verify_token,
)
from domain.core.clock import utcnow
from domain.core.errors import Unauthenticated

CONFIG = TokenConfig(
    secret="unit-test-secret-0123456789abcdef0123456789",
    issuer="labhub",
    audience="labhub-api",
    access_ttl_s=900,
    sse_ttl_s=60,
)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_round_trip_carries_the_required_claims():
    token = issue_access_token(CONFIG, "abc", "student", utcnow())
    claims = verify_token(CONFIG, token)
    assert claims.sub == "abc"
    assert claims.role == "student"
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(payload) >= {"sub", "role", "iat", "nbf", "exp", "iss", "aud", "jti"}
    assert payload["exp"] - int(payload["iat"]) == 900  # iat keeps microseconds (sign-outs), exp whole seconds


def test_alg_none_is_refused():
    good = issue_access_token(CONFIG, "abc", "DH", utcnow())
    payload = jwt.decode(good, options={"verify_signature": False})
    forged = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(payload)}."
    with pytest.raises(Unauthenticated):
        verify_token(CONFIG, forged)


def test_other_key_is_refused():
    forged = issue_access_token(
        TokenConfig("another-secret-of-enough-length-000000", "labhub", "labhub-api", 900, 60),
        "abc",
        "DH",
        utcnow(),
    )
    with pytest.raises(Unauthenticated):
        verify_token(CONFIG, forged)


def test_tampered_payload_is_refused():
    header, payload, signature = issue_access_token(CONFIG, "abc", "student", utcnow()).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["role"] = "DH"
    with pytest.raises(Unauthenticated):
        verify_token(CONFIG, f"{header}.{_b64(claims)}.{signature}")


def test_other_algorithm_with_same_secret_is_refused():
    payload = jwt.decode(
        issue_access_token(CONFIG, "abc", "student", utcnow()), options={"verify_signature": False}
    )
    forged = jwt.encode(payload, CONFIG.secret * 2, algorithm="HS512")
    with pytest.raises(Unauthenticated):
        verify_token(CONFIG, forged)


def test_expired_token_is_refused():
    token = issue_access_token(CONFIG, "abc", "student", utcnow() - timedelta(hours=1))
    with pytest.raises(Unauthenticated) as caught:
        verify_token(CONFIG, token)
    assert caught.value.code == "token_expired"


def test_token_from_the_future_is_refused():
    token = issue_access_token(CONFIG, "abc", "student", utcnow() + timedelta(hours=1))
    with pytest.raises(Unauthenticated):
        verify_token(CONFIG, token)


def test_wrong_audience_and_issuer_are_refused():
    other_audience = TokenConfig(CONFIG.secret, "labhub", "someone-else", 900, 60)
    other_issuer = TokenConfig(CONFIG.secret, "evil", "labhub-api", 900, 60)
    for config in (other_audience, other_issuer):
        with pytest.raises(Unauthenticated):
            verify_token(CONFIG, issue_access_token(config, "abc", "student", utcnow()))


def test_missing_claim_is_refused():
    now = int(utcnow().timestamp())
    token = jwt.encode(
        {"sub": "abc", "iat": now, "exp": now + 60, "iss": "labhub", "aud": "labhub-api"},
        CONFIG.secret,
        algorithm="HS256",
    )  # no nbf, no jti
    with pytest.raises(Unauthenticated):
        verify_token(CONFIG, token)


def test_sse_ticket_is_not_an_access_token_and_back():
    ticket = issue_sse_ticket(CONFIG, "abc", utcnow())
    with pytest.raises(Unauthenticated):
        verify_token(CONFIG, ticket)
    assert verify_token(CONFIG, ticket, audience="sse").sub == "abc"
    access = issue_access_token(CONFIG, "abc", "student", utcnow())
    with pytest.raises(Unauthenticated):
        verify_token(CONFIG, access, audience="sse")


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x", "é.é.é"])
def test_garbage_is_refused(garbage):
    with pytest.raises(Unauthenticated):
        verify_token(CONFIG, garbage)


def test_refresh_tokens_are_random_and_stored_hashed():
    first, second = new_refresh_token(), new_refresh_token()
    assert first != second
    assert len(first) >= 40
    assert hash_secret(first) != first
    assert hash_secret(first) == hash_secret(first)


# -- the verified-token cache ------------------------------------------------------------------------


def test_a_cached_token_is_still_the_only_one_that_passes():
    verified = VerifiedTokens(CONFIG)
    token = issue_access_token(CONFIG, "u1", "student", utcnow())
    assert verified.verify(token).sub == "u1"
    assert verified.verify(token).sub == "u1"  # from the cache
    header, _body, signature = token.split(".")
    forged = f"{header}.{_b64({**jwt.decode(token, options={'verify_signature': False}), 'sub': 'u2'})}.{signature}"
    with pytest.raises(Unauthenticated):
        verified.verify(forged)
    with pytest.raises(Unauthenticated):  # cached for the API audience, not for SSE
        verified.verify(token, audience="sse")


def test_a_cached_token_is_refused_once_it_expires(monkeypatch):
    """The cache keeps a token no longer than its exp: past it (and past the leeway, here 0) the
    token is checked again and refused, though the cache's own time to live has not run out."""
    monkeypatch.setattr(tokens, "LEEWAY_S", 0)
    short = TokenConfig(
        secret=CONFIG.secret, issuer="labhub", audience="labhub-api", access_ttl_s=1, sse_ttl_s=1
    )
    verified = VerifiedTokens(short, ttl_s=3600)
    token = issue_access_token(short, "u1", "student", utcnow())
    claims = verified.verify(token)
    while time.time() <= claims.exp + 0.05:  # wait for the clock to pass exp; load only makes it later
        time.sleep(0.05)
    with pytest.raises(Unauthenticated) as caught:
        verified.verify(token)
    assert caught.value.code == "token_expired"


def test_the_cache_is_bounded():
    verified = VerifiedTokens(CONFIG, max_entries=3)
    issued = [issue_access_token(CONFIG, f"u{i}", "student", utcnow()) for i in range(10)]
    for token in issued:
        verified.verify(token)
    assert len(verified._verified._entries) == 3
