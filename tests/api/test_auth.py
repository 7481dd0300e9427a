"""Registration, login, rotating refresh tokens, logout, SSE tickets and login throttling."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta

import jwt

from domain.accounts.jwt import TokenConfig, issue_access_token, issue_sse_ticket
from domain.core.clock import utcnow
from server import create_app
from tests.conftest import PASSWORD, TEST_SECRET, make_settings, problem


async def register(client, email="ada@lab.example", password=PASSWORD, name="Ada Lovelace"):
    return await client.post("/api/auth/register", json={"email": email, "password": password, "name": name})


async def login(client, email="ada@lab.example", password=PASSWORD):
    return await client.post("/api/auth/login", json={"email": email, "password": password})


async def test_register_creates_a_student_and_never_returns_the_password(client):
    response = await register(client, email="Ada@Lab.Example")
    assert response.status == 201
    user = await response.json()
    assert user["email"] == "ada@lab.example"
    assert user["role"] == "student"
    assert user["active"] is True
    assert "password" not in json.dumps(user)
    assert user["created_at"].endswith("+00:00")


async def test_register_taken_email_is_409_case_insensitive(client):
    assert (await register(client)).status == 201
    body = await problem(await register(client, email="ADA@lab.example"), 409)
    assert body["code"] == "email_taken"


async def test_register_validates_fields(client):
    body = await problem(await register(client, email="not-an-email"), 422)
    assert body["errors"][0]["path"] == "$.email"
    body = await problem(await register(client, name="   "), 422)
    assert body["errors"][0]["path"] == "$.name"


async def test_closed_registration(aiohttp_client, services, tmp_path):
    settings = make_settings(services, tmp_path, auth={"open_registration": False})
    client = await aiohttp_client(create_app(settings))
    body = await problem(await register(client), 403)
    assert body["code"] == "registration_closed"


async def test_login_me_and_token_shape(client):
    await register(client)
    response = await login(client, email="ADA@lab.example")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    tokens = await response.json()
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert me.status == 200
    assert (await me.json())["email"] == "ada@lab.example"


async def test_wrong_password_and_unknown_email_look_the_same(client):
    await register(client)
    wrong = await problem(await login(client, password="wrong password!"), 401)
    unknown = await problem(await login(client, email="nobody@lab.example"), 401)
    assert wrong["detail"] == unknown["detail"]
    assert wrong["code"] == unknown["code"] == "invalid_credentials"


async def test_refresh_rotates_and_reuse_revokes_the_family(client):
    await register(client)
    first = await (await login(client)).json()
    rotated = await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert rotated.status == 200
    second = await rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    # the spent token comes back (stolen copy): 401, and the whole family is revoked
    body = await problem(
        await client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]}), 401
    )
    assert body["code"] == "refresh_token_reused"
    await problem(
        await client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]}), 401
    )
    # another session of the same user is untouched
    other = await (await login(client)).json()
    assert (
        await client.post("/api/auth/refresh", json={"refresh_token": other["refresh_token"]})
    ).status == 200


async def test_unknown_refresh_token_is_401(client):
    body = await problem(await client.post("/api/auth/refresh", json={"refresh_token": "nope"}), 401)
    assert body["code"] == "invalid_refresh_token"


async def test_logout_ends_the_session(client):
    await register(client)
    tokens = await (await login(client)).json()
    response = await client.post("/api/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert response.status == 204
    await problem(
        await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401
    )


async def test_sse_ticket_is_short_lived_and_not_a_bearer_token(client):
    await register(client)
    tokens = await (await login(client)).json()
    response = await client.post(
        "/api/auth/sse-ticket", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert response.status == 200
    ticket = await response.json()
    assert ticket["expires_in"] == 60
    claims = jwt.decode(ticket["ticket"], options={"verify_signature": False})
    assert claims["aud"] == "sse"
    assert claims["exp"] - int(claims["iat"]) == 60  # iat keeps microseconds (sign-outs), exp whole seconds
    await problem(
        await client.get("/api/auth/me", headers={"Authorization": f"Bearer {ticket['ticket']}"}), 401
    )


def _config(secret=TEST_SECRET, audience="labhub-api", issuer="labhub"):
    return TokenConfig(secret=secret, issuer=issuer, audience=audience, access_ttl_s=900, sse_ttl_s=60)


async def test_every_jwt_attack_is_401(client, make_account):
    account = await make_account("student")
    payload = jwt.decode(account.token, options={"verify_signature": False})

    def b64(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    header, _body, signature = account.token.split(".")
    escalated = dict(payload, role="DH")
    attacks = {
        "alg none": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}.",
        "other key": issue_access_token(_config(secret="x" * 48), account.id, "student", utcnow()),
        "tampered payload": f"{header}.{b64(escalated)}.{signature}",
        "expired": issue_access_token(_config(), account.id, "student", utcnow() - timedelta(hours=2)),
        "wrong audience": issue_access_token(_config(audience="other"), account.id, "student", utcnow()),
        "wrong issuer": issue_access_token(_config(issuer="other"), account.id, "student", utcnow()),
        "sse ticket": issue_sse_ticket(_config(), account.id, utcnow()),
        "HS512": jwt.encode(payload, TEST_SECRET + "-long-enough-for-hs512-" * 2, algorithm="HS512"),
        "garbage": "not.a.token",
    }
    for name, token in attacks.items():
        response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status == 401, name
        assert response.content_type == "application/problem+json", name
    ok = await client.get("/api/auth/me", headers=account.headers)
    assert ok.status == 200


async def test_authorization_header_variants(client, make_account):
    account = await make_account()
    for header in ["", "Bearer", "Bearer ", f"Basic {account.token}", account.token]:
        response = await client.get("/api/auth/me", headers={"Authorization": header})
        assert response.status == 401, header
    assert (
        await client.get("/api/auth/me", headers={"Authorization": f"bearer {account.token}"})
    ).status == 200


async def test_login_throttling_backs_off_and_lets_the_owner_back_in(aiohttp_client, services, tmp_path):
    settings = make_settings(
        services,
        tmp_path,
        auth={"login_free_attempts": 3, "login_backoff_base_s": 1.0, "login_backoff_max_s": 2.0},
    )
    client = await aiohttp_client(create_app(settings))
    await register(client)
    for _ in range(3):
        await problem(await login(client, password="wrong password!"), 401)
    throttled = await login(client)  # even the right password waits: no guessing during back-off
    body = await problem(throttled, 429)
    assert body["code"] == "login_throttled"
    assert 1 <= int(throttled.headers["Retry-After"]) <= 2
    # the back-off is capped: however many failures, never more than login_backoff_max_s
    for _ in range(3):
        await asyncio.sleep(float(throttled.headers["Retry-After"]))
        throttled = await login(client, password="wrong password!")
        assert throttled.status in (401, 429)
        if throttled.status == 429:
            assert int(throttled.headers["Retry-After"]) <= 2
        else:
            throttled = await login(client, password="wrong password!")
            assert int(throttled.headers.get("Retry-After", "0")) <= 2
    await asyncio.sleep(2.1)
    assert (await login(client)).status == 200  # the owner gets in once the wait is over
    assert (await login(client, password="wrong password!")).status == 401  # and the count restarted


async def test_parallel_guesses_get_no_more_tries_than_sequential_ones(aiohttp_client, services, tmp_path):
    # each attempt is counted before its password is checked: 20 at once, and only 5 are tried
    settings = make_settings(
        services,
        tmp_path,
        auth={"login_free_attempts": 5, "login_backoff_base_s": 60.0, "argon2_time_cost": 3},
    )
    client = await aiohttp_client(create_app(settings))
    await register(client)
    answers = await asyncio.gather(*(login(client, password=f"guess number {i}") for i in range(20)))
    statuses = sorted(a.status for a in answers)
    assert statuses == [401] * 5 + [429] * 15
    for answer in answers:
        if answer.status == 429:
            assert (await problem(answer, 429))["code"] == "login_throttled"


async def test_one_client_spraying_many_accounts_is_stopped(aiohttp_client, services, tmp_path):
    settings = make_settings(
        services, tmp_path, auth={"login_failures_per_client": 4, "login_client_window_s": 60}
    )
    client = await aiohttp_client(create_app(settings))
    emails = [f"sprayed{i}@lab.example" for i in range(6)]
    for email in emails:
        await register(client, email=email)
    assert (await login(client, email=emails[0])).status == 200  # a success is not counted against it
    for email in emails[:4]:
        await problem(await login(client, email=email, password="Winter2026!!"), 401)
    refused = await problem(await login(client, email=emails[4], password="Winter2026!!"), 429)
    assert refused["code"] == "login_throttled"
    assert "from this address" in refused["detail"]
    # a right password from the same place waits too: the address is the limit, not the account
    await problem(await login(client, email=emails[5]), 429)


def test_client_addresses_are_counted_by_host_and_ipv6_by_its_64():
    from domain.infra.throttle import client_key

    assert client_key("192.0.2.7") == "192.0.2.7"
    assert client_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert (
        client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64"
    )
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("unknown") == "unknown"


async def test_password_hashing_is_bounded_and_answers_busy_beyond(aiohttp_client, services, tmp_path):
    # each argon2 hash holds 64 MiB: a burst of sign-ins waits its turn or is told to come back
    settings = make_settings(
        services, tmp_path, auth={"argon2_time_cost": 2, "argon2_memory_kib": 65536, "password_checks_at_once": 1,
                                  "password_checks_waiting": 2, "login_free_attempts": 1000},
    )  # fmt: skip
    client = await aiohttp_client(create_app(settings))
    await register(client)
    answers = await asyncio.gather(*(login(client) for _ in range(12)))
    statuses = [a.status for a in answers]
    assert set(statuses) == {200, 429}, statuses
    assert statuses.count(200) >= 3  # the one running and the two waiting at least
    busy = next(a for a in answers if a.status == 429)
    assert (await problem(busy, 429))["code"] == "busy"
    assert busy.headers["Retry-After"] == "1"
    assert (await login(client)).status == 200  # once the burst is over, everyone gets in


async def test_registrations_are_limited_per_client(aiohttp_client, services, tmp_path):
    settings = make_settings(services, tmp_path, auth={"registrations_per_client": 2})
    client = await aiohttp_client(create_app(settings))
    for i in range(2):
        assert (await register(client, email=f"new{i}@lab.example")).status == 201
    refused = await problem(await register(client, email="new2@lab.example"), 429)
    assert refused["code"] == "registration_throttled"


async def test_a_token_in_use_stops_working_when_its_account_is_deactivated(client, make_account):
    """Verified tokens and active accounts are cached per instance: neither cache outlives a
    deactivation made through this instance."""
    head, student = await make_account("GD"), await make_account("student")
    for _ in range(3):
        assert (await client.get("/api/auth/me", headers=student.headers)).status == 200
    deactivated = await client.patch(f"/api/users/{student.id}", json={"active": False}, headers=head.headers)
    assert deactivated.status == 200
    refused = await problem(await client.get("/api/auth/me", headers=student.headers), 401)
    assert refused["code"] == "inactive_account"
