"""The OpenAPI document names every registered route and nothing else."""

from __future__ import annotations

import re

from handlers.openapi import NOT_API_ATTRIBUTE, documented_routes


def registered(app) -> set[tuple[str, str]]:
    """Every route but the console's static files."""
    return {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.method not in {"HEAD", "OPTIONS", "*"}
        and not getattr(route.handler, NOT_API_ATTRIBUTE, False)
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
            # 2xx; 303 for the browser-only single sign-on redirects
            success = [code for code in operation["responses"] if code.startswith("2") or code == "303"]
            assert success, (path, method)
            assert all(response["description"] for response in operation["responses"].values())
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
    # the JSON token pair, or (with X-LabHub-Session: cookie) the access token alone
    pair, browser = (
        document["components"]["schemas"][option["$ref"].rsplit("/", 1)[1]]
        for option in login["responses"]["200"]["content"]["application/json"]["schema"]["anyOf"]
    )
    assert {"access_token", "refresh_token", "token_type", "expires_in"} <= set(pair["properties"])
    assert set(browser["properties"]) == {"access_token", "token_type", "expires_in"}
    users = document["paths"]["/api/users"]["get"]
    assert {p["name"] for p in users["parameters"]} >= {"q", "limit", "cursor"}


async def test_links_lead_from_an_id_to_the_routes_that_take_it(client):
    """So that clients and fuzzers can follow a created or listed thing (schemathesis' stateful phase)."""
    document = await (await client.get("/api/openapi.json")).json()
    paths = document["paths"]
    created = paths["/api/projects/{pid}/documents"]["post"]["responses"]["201"]["links"]
    assert created["get_api_documents_id_content"] == {
        "operationId": "get_api_documents_id_content",
        "parameters": {"id": "$response.body#/id"},
    }
    listed = paths["/api/projects/{pid}/records"]["get"]["responses"]["200"]["links"]
    assert listed["patch_api_records_id"]["parameters"] == {"id": "$response.body#/items/0/id"}
    plot = paths["/api/datasets/{id}/visualizations"]["post"]["responses"]["202"]["links"]
    assert plot["get_api_jobs_id_events"]["parameters"] == {"id": "$response.body#/job_id"}
    operation_ids = {op["operationId"] for item in paths.values() for op in item.values()}
    for item in paths.values():
        for operation in item.values():
            for response in operation["responses"].values():
                assert set(response.get("links", {})) <= operation_ids


async def test_event_streams_and_downloads_say_what_they_send(client):
    document = await (await client.get("/api/openapi.json")).json()
    paths = document["paths"]
    events = paths["/api/jobs/{id}/events"]["get"]["responses"]
    event_schema = events["200"]["content"]["text/event-stream"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert document["components"]["schemas"][event_schema]["required"] == ["event", "data"]
    assert "204" in events
    download = paths["/api/datasets/{id}/download"]["get"]["responses"]["200"]["content"]
    assert set(download) == {"application/vnd.apache.parquet", "text/csv", "application/vnd.apache.arrow.stream"}
    answers = paths["/api/sql"]["post"]["responses"]
    assert set(answers["200"]["content"]) == {"application/json", "text/csv", "application/vnd.apache.parquet",
                                              "application/vnd.apache.arrow.stream"}  # fmt: skip
    assert {"400", "403", "408", "413"} <= set(answers)
    records = paths["/api/projects/{pid}/records"]["get"]["responses"]["200"]["content"]
    assert set(records) == {"application/json", "text/csv", "application/x-ndjson"}
