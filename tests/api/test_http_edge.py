"""Request ids, the JSON access log, CORS, health and readiness."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal

from ops.embedded import EmbeddedServices
from server import create_app
from tests.conftest import S3_KEY, S3_SECRET, make_settings, problem


async def test_request_id_is_generated_and_echoed(client):
    generated = await client.get("/health")
    assert len(generated.headers["X-Request-ID"]) >= 16
    echoed = await client.get("/health", headers={"X-Request-ID": "trace-123.abc"})
    assert echoed.headers["X-Request-ID"] == "trace-123.abc"


async def test_insane_request_id_is_replaced(client):
    response = await client.get("/health", headers={"X-Request-ID": "x" * 500})
    assert response.headers["X-Request-ID"] != "x" * 500
    response = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert " " not in response.headers["X-Request-ID"]


async def test_access_log_is_one_json_line_without_query(client, make_account, caplog):
    account = await make_account("student")
    caplog.set_level(logging.INFO, logger="labhub.access")
    await client.get("/api/auth/me?ticket=SECRET-TICKET&x=1", headers=account.headers)
    records = [r for r in caplog.records if r.name == "labhub.access" and r.path == "/api/auth/me"]
    assert len(records) == 1
    record = records[0]
    assert record.method == "GET"
    assert record.status == 200
    assert record.user_id == account.id
    assert record.duration_ms >= 0
    from handlers.observe import JsonFormatter

    line = JsonFormatter().format(record)
    parsed = json.loads(line)
    assert parsed["path"] == "/api/auth/me"
    assert "SECRET-TICKET" not in line
    assert "\n" not in line


async def test_no_secret_reaches_the_logs(client, caplog):
    caplog.set_level(logging.DEBUG)
    password = "a-very-distinct-password-123"
    await client.post(
        "/api/auth/register", json={"email": "log@lab.example", "password": password, "name": "Log"}
    )
    login = await client.post("/api/auth/login", json={"email": "log@lab.example", "password": password})
    tokens = await login.json()
    await client.post("/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    everything = "\n".join(r.getMessage() + json.dumps(vars(r), default=str) for r in caplog.records)
    assert password not in everything
    assert tokens["access_token"] not in everything
    assert tokens["refresh_token"] not in everything


async def test_cors_preflight_for_configured_origin(aiohttp_client, services, tmp_path):
    settings = make_settings(services, tmp_path, http={"cors_origins": ["https://lab.example.org"]})
    client = await aiohttp_client(create_app(settings))
    response = await client.options(
        "/api/auth/login",
        headers={
            "Origin": "https://lab.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://lab.example.org"
    actual = await client.get("/health", headers={"Origin": "https://lab.example.org"})
    assert actual.headers["Access-Control-Allow-Origin"] == "https://lab.example.org"
    assert "X-Request-ID" in actual.headers["Access-Control-Expose-Headers"]
    other = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


async def test_health_and_ready(client):
    assert (await (await client.get("/health")).json()) == {"status": "ok"}
    ready = await client.get("/ready")
    assert ready.status == 200
    assert (await ready.json())["checks"] == {"mongo": "ok", "redis": "ok", "s3": "ok", "pool": "ok"}
    assert ready.headers["X-Content-Type-Options"] == "nosniff"


async def test_ready_is_503_naming_what_is_down(aiohttp_client, services, tmp_path):
    # a Redis of this test's own, so that it can be killed without hurting the others
    own = EmbeddedServices(
        tmp_path / "own", s3_access_key=S3_KEY, s3_secret_key=S3_SECRET, only=frozenset({"redis"})
    )
    own.spawn()
    try:
        redis_url = own.wait_ready().redis_url
        settings = make_settings(services, tmp_path, redis={"url": redis_url})
        client = await aiohttp_client(create_app(settings))
        assert (await client.get("/ready")).status == 200
        os.kill(own.pids["redis"], signal.SIGKILL)
        await asyncio.sleep(0.2)
        body = await problem(await client.get("/ready"), 503)
        assert body["checks"]["redis"].startswith("down")
        assert body["checks"]["mongo"] == "ok"
        assert "redis" in body["detail"]
        assert (await client.get("/health")).status == 200
        # what needs Redis answers 503 naming it, with a time to come back; never a 500
        login = await client.post("/api/auth/login", json={"email": "a@lab.example", "password": "whatever"})
        refused = await problem(login, 503)
        assert refused["code"] == "unavailable"
        assert refused["service"] == "redis"
        assert int(login.headers["Retry-After"]) > 0
    finally:
        own.stop()
