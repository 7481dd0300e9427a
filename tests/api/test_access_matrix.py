"""Every project-scoped route × {anonymous, outsider, viewer, member, lead, head}.

Outsiders get 404 (never a hint that the thing exists), viewers read but do not write (403),
members write, leads and heads manage (and the lead's own things are the lead's). Every refusal
is a problem+json body.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import attrs
import pytest

from domain.core.errors import Conflict
from handlers.keys import ACCOUNTS, JOBS
from server import create_app
from tests.conftest import file_form, job_settings, problem, wait_until

# "narrowed": the member's own personal access token (read and write), narrowed to another project
ROLES = ("anonymous", "outsider", "narrowed", "viewer", "member", "lead", "head")
OK = "ok"
_EXPECTED = {
    "read": {"anonymous": 401, "outsider": 404, "viewer": OK, "member": OK, "lead": OK, "head": OK},
    "write": {"anonymous": 401, "outsider": 404, "viewer": 403, "member": OK, "lead": OK, "head": OK},
    "manage": {"anonymous": 401, "outsider": 404, "viewer": 403, "member": 403, "lead": OK, "head": OK},
    # answering an invitation: the invited (viewer, member and lead here), not heads who were not invited
    "attendee": {"anonymous": 401, "outsider": 404, "viewer": OK, "member": OK, "lead": OK, "head": 403},
    # what shows other people's logged time: the project's leads and heads only
    "managers": {"anonymous": 401, "outsider": 404, "viewer": 404, "member": 404, "lead": OK, "head": OK},
}
# a token narrowed to other projects sees nothing of this one, whatever its owner's role here
EXPECTED = {need: {**by_role, "narrowed": 404} for need, by_role in _EXPECTED.items()}


@attrs.frozen
class Route:
    method: str
    path: str
    need: str
    body: Callable[[dict[str, str]], dict[str, Any]] = lambda _ctx: {}
    fresh: bool = False  # changes what the next role would see: fresh state for every role

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def needs(self) -> set[str]:
        return set(re.findall(r"\{(\w+)\}", self.path))


def _file(_ctx):
    return {"data": file_form(b"bytes", "f.txt", "text/plain")}


def _csv(_ctx):
    return {"data": file_form(b"a,b\n1,2\n3,4\n", "m.csv", "text/csv", field="files")}


SOON = (datetime.now(UTC) + timedelta(days=1)).isoformat()

ROUTES = [
    Route("GET", "/api/projects/{pid}", "read"),
    Route("PATCH", "/api/projects/{pid}", "manage", lambda _c: {"json": {"description": "changed"}}),
    Route("DELETE", "/api/projects/{pid}", "manage", fresh=True),
    Route("GET", "/api/projects/{pid}/members", "read"),
    Route(
        "POST",
        "/api/projects/{pid}/members",
        "manage",
        lambda c: {"json": {"user_id": c["newcomer"]}},
        fresh=True,
    ),
    Route("GET", "/api/projects/{pid}/members/search?q=e", "read"),
    Route("GET", "/api/projects/{pid}/members/candidates?q=e", "manage"),
    Route("PATCH", "/api/projects/{pid}/members/{extra}", "manage", lambda _c: {"json": {"role": "viewer"}}),
    Route("DELETE", "/api/projects/{pid}/members/{extra}", "manage", fresh=True),
    Route("GET", "/api/projects/{pid}/audit", "manage"),
    Route("POST", "/api/projects/{pid}/documents", "write", _file),
    Route("GET", "/api/projects/{pid}/documents", "read"),
    Route("GET", "/api/documents/{doc}", "read"),
    Route("DELETE", "/api/documents/{doc}", "manage", fresh=True),  # the lead's document
    Route("GET", "/api/documents/{doc}/content", "read"),
    Route("POST", "/api/documents/{doc}/versions", "manage", _file),  # replaces the lead's document
    Route("GET", "/api/documents/{doc}/versions", "read"),
    Route("POST", "/api/projects/{pid}/records", "write", lambda _c: {"json": {"kind": "k", "title": "t"}}),
    Route("GET", "/api/projects/{pid}/records", "read"),
    Route("GET", "/api/projects/{pid}/records?format=csv", "read"),
    Route("GET", "/api/records/{record}", "read"),
    Route(
        "PATCH", "/api/records/{record}", "manage", lambda _c: {"json": {"title": "changed"}}
    ),  # the lead's
    Route("DELETE", "/api/records/{record}", "manage", fresh=True),
    Route("POST", "/api/projects/{pid}/ingestions", "write", _csv),
    Route("GET", "/api/projects/{pid}/ingestions", "read"),
    Route("GET", "/api/ingestions/{ingestion}", "read"),
    Route("DELETE", "/api/ingestions/{ingestion}", "manage", fresh=True),  # the lead's upload
    Route("GET", "/api/projects/{pid}/datasets", "read"),
    # a saved query: its job makes a new dataset
    Route(
        "POST",
        "/api/projects/{pid}/datasets",
        "write",
        lambda _c: {"json": {"from_sql": "SELECT 42 AS answer", "name": "saved"}},
    ),
    Route("GET", "/api/datasets/{dataset}", "read"),
    Route("GET", "/api/datasets/{dataset}/download?format=arrow&columns=a", "read"),
    Route("GET", "/api/datasets/{dataset}/rows", "read"),
    Route("GET", "/api/datasets/{dataset}/versions", "read"),
    Route("GET", "/api/lineage?kind=dataset&id={dataset}", "read"),
    Route("GET", "/api/datasets/{dataset}/export?format=datacite", "read"),
    Route("GET", "/api/datasets/{dataset}/export?format=ro-crate&license=CC0-1.0", "read"),
    Route("POST", "/api/projects/{pid}/exports?for={dataset}", "read",
          lambda c: {"json": {"dataset_ids": [c["dataset"]], "format": "bagit"}}),
    Route("POST", "/api/datasets/{dataset}/publication", "manage",
          lambda _c: {"json": {"license": "CC-BY-4.0", "description": "Wind speeds"}}, fresh=True),
    Route("GET", "/api/datasets/{published}/publications", "read"),
    Route("DELETE", "/api/datasets/{published}/publication", "manage", fresh=True),
    Route("GET", "/api/lineage?kind=plot&id={viz}&format=prov-json", "read"),
    Route("GET", "/api/lineage?kind=file&id={ingestion}&direction=down&depth=2", "read"),
    Route("GET", "/api/datasets/{dataset}/diff?from=1&to=1&key=a", "read"),
    Route("PATCH", "/api/datasets/{dataset}", "manage", lambda _c: {"json": {"key_columns": ["a"]}}),  # the lead's
    Route("GET", "/api/datasets/{dataset}?version=1", "read"),
    Route("GET", "/api/datasets/{dataset}/download?format=csv", "read"),
    Route("GET", "/api/datasets/{dataset}/raw", "read"),
    Route("GET", "/api/datasets/{dataset}/series?y=a&points=50", "read"),
    Route("DELETE", "/api/datasets/{dataset}", "manage", fresh=True),  # the lead's dataset
    Route(
        "POST",
        "/api/datasets/{dataset}/visualizations",
        "write",
        lambda _c: {"json": {"kind": "histogram", "y": ["b"]}},
    ),
    Route("GET", "/api/projects/{pid}/visualizations", "read"),
    Route("GET", "/api/visualizations/{viz}", "read"),
    Route("GET", "/api/visualizations/{viz}/image", "read"),
    Route("DELETE", "/api/visualizations/{viz}", "manage", fresh=True),  # the lead's plot
    Route("GET", "/api/jobs/{job}", "read"),
    Route("GET", "/api/jobs/{job}/events", "read"),
    # a plot of everyone's logged time: its job is no more visible than the plot
    Route("GET", "/api/jobs/{time_job}", "managers"),
    Route("GET", "/api/jobs/{time_job}/events", "managers"),
    Route("POST", "/api/jobs/{running_job}/cancel", "manage", fresh=True),  # the lead's job
    Route("POST", "/api/jobs/{failed_job}/retry", "manage", fresh=True),
    Route(
        "POST",
        "/api/projects/{pid}/meetings",
        "write",
        lambda _c: {"json": {"title": "t", "starts_at": SOON}},
    ),
    Route("GET", "/api/projects/{pid}/meetings", "read"),
    Route("GET", "/api/projects/{pid}/meetings.ics", "read"),
    Route("GET", "/api/meetings/{meeting}", "read"),
    Route("GET", "/api/meetings/{meeting}.ics", "read"),
    Route(
        "PATCH", "/api/meetings/{meeting}", "manage", lambda _c: {"json": {"title": "moved"}}
    ),  # the lead's
    Route("DELETE", "/api/meetings/{meeting}", "manage", fresh=True),
    Route("POST", "/api/meetings/{meeting}/rsvp", "attendee", lambda _c: {"json": {"response": "yes"}}),
    Route(
        "POST",
        "/api/meetings/{held_meeting}/attendance",
        "manage",
        lambda c: {"json": {"present_ids": [c["extra"]]}},
    ),
    Route(
        "POST",
        "/api/projects/{pid}/engagement",
        "write",
        lambda _c: {
            "json": {"date": datetime.now(UTC).date().isoformat(), "minutes": 30, "activity": "lab_work"}
        },
    ),
    Route("GET", "/api/projects/{pid}/engagement", "read"),
    Route(
        "PATCH", "/api/engagement/{entry}", "manage", lambda _c: {"json": {"minutes": 20}}
    ),  # extra's entry
    Route("DELETE", "/api/engagement/{entry}", "manage", fresh=True),
    Route("GET", "/api/engagement/summary?project_id={pid}", "read"),
    Route("GET", "/api/engagement/summary?project_id={pid}&format=csv", "read"),
    Route(
        "POST",
        "/api/projects/{pid}/engagement/visualizations",
        "write",
        lambda _c: {"json": {"group": "month"}},
    ),
]

PLACEHOLDERS = {"doc": "id", "record": "id", "ingestion": "id", "dataset": "id", "published": "id", "job": "id", "viz": "id",
                "running_job": "id", "failed_job": "id", "time_job": "id", "extra": "uid", "meeting": "id",
                "held_meeting": "id", "entry": "id"}  # fmt: skip


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    return await aiohttp_client(create_app(job_settings(services, tmp_path)))


async def fresh_project(client, team, extra, newcomer, needs: set[str]) -> dict[str, str]:
    """A new project led by team.lead, with member, viewer and extra, and what the route needs."""
    lead = team.lead.headers
    pid = (await (await client.post("/api/projects", json={"name": "Matrix"}, headers=lead)).json())["id"]
    for account, role in ((team.member, "member"), (team.viewer, "viewer"), (extra, "member")):
        response = await client.post(
            f"/api/projects/{pid}/members", json={"user_id": account.id, "role": role}, headers=lead
        )
        assert response.status == 201
    ctx = {"pid": pid, "extra": extra.id, "newcomer": newcomer.id}
    if "doc" in needs:
        document = await client.post(
            f"/api/projects/{pid}/documents", data=file_form(b"doc", "d.txt", "text/plain"), headers=lead
        )
        ctx["doc"] = (await document.json())["id"]
    if "record" in needs:
        record = await client.post(
            f"/api/projects/{pid}/records", json={"kind": "k", "title": "lead's"}, headers=lead
        )
        ctx["record"] = (await record.json())["id"]
    if needs & {"ingestion", "dataset", "job", "viz", "published"}:
        batch = await (await client.post(f"/api/projects/{pid}/ingestions", headers=lead, **_csv(ctx))).json()
        ctx["ingestion"] = ctx["job"] = batch["jobs"][0]["id"]
        job = await wait_until(lambda: _final(client, lead, ctx["job"]))
        ctx["dataset"] = job["result"]["dataset_id"]
    if "published" in needs:
        made = await client.post(f"/api/datasets/{ctx['dataset']}/publication", headers=lead,
                                 json={"license": "CC-BY-4.0", "description": "for the matrix"})  # fmt: skip
        assert made.status == 201, await made.text()
        ctx["published"] = ctx["dataset"]
    if "viz" in needs:
        plot = await client.post(
            f"/api/datasets/{ctx['dataset']}/visualizations", json={"kind": "line", "y": ["b"]}, headers=lead
        )
        ctx["viz"] = (await plot.json())["id"]
        await wait_until(lambda: _final(client, lead, ctx["viz"]))
    for name, hours in (("meeting", 24), ("held_meeting", -2)):
        if name in needs:
            starts = (datetime.now(UTC) + timedelta(hours=hours)).isoformat()
            invited = [team.viewer.id, team.member.id, team.lead.id, extra.id]
            meeting = await client.post(
                f"/api/projects/{pid}/meetings", json={"title": "m", "starts_at": starts, "attendee_ids": invited},
                headers=lead,
            )  # fmt: skip
            ctx[name] = (await meeting.json())["id"]
    if "entry" in needs:
        entry = await client.post(
            f"/api/projects/{pid}/engagement", headers=lead,
            json={"date": datetime.now(UTC).date().isoformat(), "minutes": 30, "activity": "writing",
                  "student_id": extra.id},
        )  # fmt: skip
        ctx["entry"] = (await entry.json())["id"]
    if "time_job" in needs:
        plot = await client.post(f"/api/projects/{pid}/engagement/visualizations", json={}, headers=lead)
        ctx["time_job"] = (await plot.json())["job_id"]
    if needs & {"running_job", "failed_job"}:
        lead_user = await client.app[ACCOUNTS].get_active(team.lead.id)
        # runs until it is cancelled (20 min at most): however loaded the machine, still running
        # when the route is called
        running = await client.app[JOBS].submit(lead_user, pid, "test.sleepy", {"steps": 60_000, "delay": 0.02})
        failed = await client.app[JOBS].submit(lead_user, pid, "test.sleepy", {"steps": 1, "fail": True})
        await wait_until(lambda: _final(client, lead, failed.id))
        ctx["running_job"], ctx["failed_job"] = running.id, failed.id
    return ctx


async def stop_job(client, team, job_id: str) -> None:
    """Cancel a job unless it has ended already (the route under test may have cancelled it)."""
    lead_user = await client.app[ACCOUNTS].get_active(team.lead.id)
    with contextlib.suppress(Conflict):
        await client.app[JOBS].cancel(lead_user, job_id)


async def narrowed_elsewhere(client, account) -> dict[str, str]:
    """A read and write token of account's, narrowed to a project of its own elsewhere."""
    own = await client.post("/api/projects", json={"name": "Elsewhere"}, headers=account.headers)
    made = await client.post(
        "/api/tokens", json={"name": "instrument pc", "scopes": ["read", "write"],
                             "project_ids": [(await own.json())["id"]]}, headers=account.headers,
    )  # fmt: skip
    assert made.status == 201, await made.text()
    return {"Authorization": f"Bearer {(await made.json())['token']}"}


async def _final(client, headers, job_id):
    body = await (await client.get(f"/api/jobs/{job_id}", headers=headers)).json()
    return body if body["status"] in {"succeeded", "failed", "cancelled"} else None


def test_the_matrix_covers_every_project_scoped_route():
    """A new project-scoped route must be added to ROUTES (and so to this test)."""
    from domain.core.config import structure_settings

    app = create_app(structure_settings({"auth": {"jwt_secret": "x" * 40}}))
    scoped_prefixes = (
        "{pid}",
        "/documents/{id}",
        "/records/{id}",
        "/visualizations/{id}",
        "/jobs/{id}",
        "/ingestions/{id}",
        "/datasets/{id}",
        "/meetings/{id}",
        "/engagement/{id}",
        "/engagement/summary",
        "/api/lineage",
    )
    scoped = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method not in {"HEAD", "OPTIONS"}
        and any(p in route.resource.canonical for p in scoped_prefixes)
    }
    covered = set()
    for route in ROUTES:
        path = route.path.split("?")[0]
        for placeholder, name in PLACEHOLDERS.items():
            path = path.replace("{" + placeholder + "}", "{" + name + "}")
        covered.add((route.method, path))
    assert scoped == covered


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_route_by_role(client, team, make_account, route):
    extra = await make_account("student", name="Eve Extra")
    newcomer = await make_account("student", name="Ned Newcomer")
    narrowed = await narrowed_elsewhere(client, team.member)
    ctx = None
    for role in ROLES:
        if ctx is None or route.fresh:
            ctx = await fresh_project(client, team, extra, newcomer, route.needs)
        account = team.by_role(role) if role != "narrowed" else None
        headers = narrowed if role == "narrowed" else account.headers if account else {}
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
        if route.fresh and "running_job" in ctx:  # its pool slot is the next project's
            await stop_job(client, team, ctx["running_job"])


# -- account routes: who may reach them, by caller -----------------------------------------------------

CALLERS = ("anonymous", "student", "head", "read_token", "head_admin_token")
ACCOUNT_ROUTES = [
    # method, path, body, expected status by caller
    ("POST", "/api/users/{other}/password-reset", None,
     {"anonymous": 401, "student": 404, "head": 201, "read_token": 403, "head_admin_token": 403}),
    ("POST", "/api/users/{self}/password-reset", None,
     {"anonymous": 401, "student": 403, "head": 201, "read_token": 403, "head_admin_token": 403}),
    ("GET", "/api/users/me/notification-settings", None,
     {"anonymous": 401, "student": 200, "head": 200, "read_token": 403, "head_admin_token": 200}),
    ("PATCH", "/api/users/me/notification-settings", {"job_notices": False},
     {"anonymous": 401, "student": 200, "head": 200, "read_token": 403, "head_admin_token": 200}),
    ("GET", "/api/users/me/usage", None,
     {"anonymous": 401, "student": 200, "head": 200, "read_token": 403, "head_admin_token": 200}),
    # signs the caller's sessions out (a session's own act: a leaked token cannot do it); the
    # callers after the session ones here use tokens, which it leaves alone
    ("POST", "/api/auth/logout-all", None,
     {"anonymous": 401, "student": 204, "head": 204, "read_token": 403, "head_admin_token": 403}),
    # no credential is needed or looked at: the same answer for everyone
    ("POST", "/api/auth/password-reset", {"email": "someone@lab.example"},
     dict.fromkeys(CALLERS, 403)),  # mail is off here: code mail_disabled
    ("POST", "/api/auth/password-reset/confirm", {"token": "lhr_" + "x" * 43, "password": "long enough pass"},
     dict.fromkeys(CALLERS, 400)),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body", "expected"), ACCOUNT_ROUTES, ids=lambda v: str(v)[:60])
async def test_account_route_by_caller(client, make_account, method, path, body, expected):
    student = await make_account("student")
    head = await make_account("DH")
    made = {}
    for owner, scopes in ((student, ["read"]), (head, ["read", "write", "admin"])):
        response = await client.post(
            "/api/tokens", json={"name": "t", "scopes": scopes}, headers=owner.headers
        )
        made[owner.id] = {"Authorization": f"Bearer {(await response.json())['token']}"}
    headers = {"anonymous": {}, "student": student.headers, "head": head.headers,
               "read_token": made[student.id], "head_admin_token": made[head.id]}  # fmt: skip
    actor = {"student": student, "read_token": student}
    for caller in CALLERS:
        me = actor.get(caller, head)
        target = path.format(self=me.id, other=(head if me is student else student).id)
        response = await client.request(method, target, headers=headers[caller], json=body)
        if expected[caller] < 300:
            assert response.status == expected[caller], (
                f"{method} {path} as {caller}: {await response.text()}"
            )
        else:
            await problem(response, expected[caller])


# -- without a session: only published versions ------------------------------------------------------


async def test_only_published_versions_are_reachable_without_a_session(client, team):
    lead = team.lead.headers
    batch = await (await client.post(f"/api/projects/{team.project_id}/ingestions", headers=lead, **_csv({}))).json()
    first = (await wait_until(lambda: _final(client, lead, batch["jobs"][0]["id"])))["result"]["dataset_id"]
    form = aiohttp.FormData()
    form.add_field("version_of", first)
    form.add_field("files", b"a,b\n5,6\n7,8\n9,10\n", filename="m2.csv", content_type="text/csv")
    again = await client.post(f"/api/projects/{team.project_id}/ingestions", headers=lead, data=form)
    made = await again.json()
    assert (await wait_until(lambda: _final(client, lead, made["jobs"][0]["id"])))["status"] == "succeeded"
    published = await client.post(f"/api/datasets/{first}/publication", headers=lead,
                                  json={"version": 1, "license": "CC0-1.0", "description": "Version one"})  # fmt: skip
    assert published.status == 201, await published.text()
    slug = (await published.json())["slug"]
    for path in (f"/d/{slug}", f"/d/{slug}/download?format=csv", f"/d/{slug}/download?format=parquet", f"/d/{slug}/raw"):
        response = await client.get(path)
        assert response.status == 200, path
    assert (await (await client.get(f"/d/{slug}/download?format=csv")).text()).splitlines() == ["a,b", "1,2", "3,4"]
    # version 2 is not published: no page names it, and no API route answers without a session
    assert (await client.get(f"/d/{slug.removesuffix('-v1')}-v2")).status == 404
    for path in (f"/api/datasets/{first}", f"/api/datasets/{first}?version=2", f"/api/datasets/{first}/rows",
                 f"/api/datasets/{first}/download", f"/api/datasets/{first}/raw", f"/api/datasets/{first}/versions",
                 f"/api/datasets/{first}/export", f"/api/datasets/{first}/publications",
                 f"/api/lineage?kind=dataset&id={first}"):  # fmt: skip
        await problem(await client.get(path), 401)
    gone = await client.delete(f"/api/datasets/{first}/publication", headers=lead)
    assert gone.status == 204
    for path in (f"/d/{slug}", f"/d/{slug}/download", f"/d/{slug}/raw"):
        assert (await client.get(path)).status == 404, path
