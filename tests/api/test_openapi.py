"""The OpenAPI document names every registered route and nothing else."""

from __future__ import annotations

import re

from handlers.openapi import documented_routes


def registered(app) -> set[tuple[str, str]]:
    return {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.method not in {"HEAD", "OPTIONS", "*"}
    }


async def test_openapi_matches_the_router_exactly(client):
    response = await client.get("/api/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert documented == registered(client.app)
    assert len(documented_routes(client.app)) == len(documented)


async def test_every_operation_has_request_and_response_shapes(client):
    document = await (await client.get("/api/openapi.json")).json()
    schemas = document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["summary"], (path, method)
            success = [code for code in operation["responses"] if code.startswith("2")]
            assert len(success) == 1, (path, method)
            assert "default" in operation["responses"], (path, method)
            if method in {"post", "patch", "put"} and success != ["204"] and "requestBody" in operation:
                content = operation["requestBody"]["content"]
                assert content, (path, method)
            for name in re.findall(r"\{(\w+)\}", path):
                assert any(p["name"] == name and p["in"] == "path" for p in operation["parameters"])
    referenced = set(re.findall(r'"#/components/schemas/(\w+)"', str(document).replace("'", '"')))
    assert referenced <= set(schemas)


async def test_login_shapes_are_described(client):
    document = await (await client.get("/api/openapi.json")).json()
    login = document["paths"]["/api/auth/login"]["post"]
    body_ref = login["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = document["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert set(body["required"]) == {"email", "password"}
    ok_ref = login["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    ok = document["components"]["schemas"][ok_ref.rsplit("/", 1)[1]]
    assert {"access_token", "refresh_token", "token_type", "expires_in"} <= set(ok["properties"])
    users = document["paths"]["/api/users"]["get"]
    assert {p["name"] for p in users["parameters"]} >= {"q", "limit", "cursor"}
