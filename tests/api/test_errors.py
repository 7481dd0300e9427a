"""Every error is an RFC 9457 application/problem+json body with the same shape."""

from __future__ import annotations

from aiohttp import web

from domain.core.settings import Settings
from server import create_app
from tests.conftest import make_settings, problem


async def test_unknown_route(client):
    body = await problem(await client.get("/api/no-such-thing"), 404)
    assert "/api/no-such-thing" in body["detail"]
    assert body["instance"] == "/api/no-such-thing"


async def test_wrong_method_names_the_allowed_ones(client):
    response = await client.delete("/api/auth/login")
    body = await problem(response, 405)
    assert "POST" in response.headers["Allow"]
    assert "POST" in body["detail"]


async def test_malformed_json(client):
    body = await problem(
        await client.post(
            "/api/auth/login", data=b'{"email": ', headers={"Content-Type": "application/json"}
        ),
        400,
    )
    assert "JSON" in body["detail"]


async def test_json_that_is_not_an_object(client):
    body = await problem(await client.post("/api/auth/login", json=[1, 2]), 422)
    assert body["errors"][0]["path"] == "$"


async def test_validation_failure_lists_field_paths(client):
    body = await problem(
        await client.post("/api/auth/register", json={"email": 5, "password": "x", "extra": 1}), 422
    )
    paths = {e["path"] for e in body["errors"]}
    assert "$.email" in paths
    assert "$.name" in paths
    assert any("extra" in e["message"] for e in body["errors"])


async def test_domain_validation_names_the_field(client):
    body = await problem(
        await client.post(
            "/api/auth/register", json={"email": "a@lab.example", "password": "short", "name": "A"}
        ),
        422,
    )
    assert body["errors"] == [{"path": "$.password", "message": "must be at least 10 characters"}]


async def test_oversized_body_is_413(aiohttp_client, services, tmp_path):
    settings: Settings = make_settings(services, tmp_path, http={"max_body_bytes": 1024})
    client = await aiohttp_client(create_app(settings))
    body = await problem(
        await client.post("/api/auth/login", json={"email": "a@b.c", "password": "x" * 5000}), 413
    )
    assert "1024" in body["detail"]


async def test_unhandled_exception_is_500_without_internals(aiohttp_client, settings, caplog):
    app = create_app(settings)

    async def explode(_request: web.Request) -> web.Response:
        raise RuntimeError("secret internal detail /etc/passwd")

    app.router.add_get("/api/explode", explode)
    client = await aiohttp_client(app)
    response = await client.get("/api/explode")
    body = await problem(response, 500)
    text = await response.text()
    assert "secret internal detail" not in text
    assert "Traceback" not in text
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert any("secret internal detail" in (r.exc_text or "") or r.exc_info for r in caplog.records)


async def test_unauthenticated_carries_www_authenticate(client):
    response = await client.get("/api/auth/me")
    body = await problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert body["code"] == "missing_token"
