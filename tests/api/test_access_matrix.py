"""Every project-scoped route × {anonymous, outsider, viewer, member, lead, head}.

Outsiders get 404 (never a hint that the thing exists), viewers read but do not write (403),
members write, leads and heads manage. Every refusal is a problem+json body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

from tests.conftest import file_form, problem

ROLES = ("anonymous", "outsider", "viewer", "member", "lead", "head")
OK = "ok"
EXPECTED = {
    "read": {"anonymous": 401, "outsider": 404, "viewer": OK, "member": OK, "lead": OK, "head": OK},
    "write": {"anonymous": 401, "outsider": 404, "viewer": 403, "member": OK, "lead": OK, "head": OK},
    "manage": {"anonymous": 401, "outsider": 404, "viewer": 403, "member": 403, "lead": OK, "head": OK},
}


@attrs.frozen
class Route:
    method: str
    path: str
    need: str
    body: Callable[[dict[str, str]], dict[str, Any]] = lambda _ctx: {}

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _file(_ctx):
    return {"data": file_form(b"bytes", "f.txt", "text/plain")}


ROUTES = [
    Route("GET", "/api/projects/{pid}", "read"),
    Route("PATCH", "/api/projects/{pid}", "manage", lambda _c: {"json": {"description": "changed"}}),
    Route("DELETE", "/api/projects/{pid}", "manage"),
    Route("GET", "/api/projects/{pid}/members", "read"),
    Route("POST", "/api/projects/{pid}/members", "manage", lambda c: {"json": {"user_id": c["newcomer"]}}),
    Route("GET", "/api/projects/{pid}/members/search?q=e", "read"),
    Route("PATCH", "/api/projects/{pid}/members/{extra}", "manage", lambda _c: {"json": {"role": "viewer"}}),
    Route("DELETE", "/api/projects/{pid}/members/{extra}", "manage"),
    Route("GET", "/api/projects/{pid}/audit", "manage"),
    Route("POST", "/api/projects/{pid}/documents", "write", _file),
    Route("GET", "/api/projects/{pid}/documents", "read"),
    Route("GET", "/api/documents/{doc}", "read"),
    Route("DELETE", "/api/documents/{doc}", "manage"),  # the lead's document: members may not delete it
    Route("GET", "/api/documents/{doc}/content", "read"),
    Route("POST", "/api/documents/{doc}/versions", "write", _file),
    Route("GET", "/api/documents/{doc}/versions", "read"),
    Route("POST", "/api/projects/{pid}/records", "write", lambda _c: {"json": {"kind": "k", "title": "t"}}),
    Route("GET", "/api/projects/{pid}/records", "read"),
    Route("GET", "/api/projects/{pid}/records?format=csv", "read"),
    Route("GET", "/api/records/{record}", "read"),
    Route(
        "PATCH", "/api/records/{record}", "manage", lambda _c: {"json": {"title": "changed"}}
    ),  # the lead's record
    Route("DELETE", "/api/records/{record}", "manage"),
]


async def fresh_project(client, team, extra, newcomer) -> dict[str, str]:
    """A new project led by team.lead, with member, viewer and extra, one document and one record."""
    lead = team.lead.headers
    pid = (await (await client.post("/api/projects", json={"name": "Matrix"}, headers=lead)).json())["id"]
    for account, role in ((team.member, "member"), (team.viewer, "viewer"), (extra, "member")):
        response = await client.post(
            f"/api/projects/{pid}/members", json={"user_id": account.id, "role": role}, headers=lead
        )
        assert response.status == 201
    document = await client.post(
        f"/api/projects/{pid}/documents", data=file_form(b"doc", "d.txt", "text/plain"), headers=lead
    )
    record = await client.post(
        f"/api/projects/{pid}/records", json={"kind": "k", "title": "lead's"}, headers=lead
    )
    return {
        "pid": pid,
        "doc": (await document.json())["id"],
        "record": (await record.json())["id"],
        "extra": extra.id,
        "newcomer": newcomer.id,
    }


def test_the_matrix_covers_every_project_scoped_route():
    """A new project-scoped route must be added to ROUTES (and so to this test)."""
    from domain.settings import structure_settings
    from server import create_app

    app = create_app(structure_settings({"auth": {"jwt_secret": "x" * 40}}))
    scoped = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method not in {"HEAD", "OPTIONS"}
        and any(part in route.resource.canonical for part in ("{pid}", "/documents/{id}", "/records/{id}"))
    }
    covered = {
        (
            r.method,
            r.path.split("?")[0]
            .replace("{doc}", "{id}")
            .replace("{record}", "{id}")
            .replace("{extra}", "{uid}"),
        )
        for r in ROUTES
    }
    assert scoped == covered


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_route_by_role(client, team, make_account, route):
    extra = await make_account("student", name="Eve Extra")
    newcomer = await make_account("student", name="Ned Newcomer")
    for role in ROLES:
        ctx = await fresh_project(client, team, extra, newcomer)
        account = team.by_role(role)
        headers = account.headers if account else {}
        response = await client.request(
            route.method, route.path.format(**ctx), headers=headers, **route.body(ctx)
        )
        expected = EXPECTED[route.need][role]
        if expected == OK:
            assert 200 <= response.status < 300, (
                f"{route} as {role}: {response.status} {await response.text()}"
            )
        else:
            body = await problem(response, expected)
            assert body["instance"] == route.path.format(**ctx).split("?")[0], f"{route} as {role}"
