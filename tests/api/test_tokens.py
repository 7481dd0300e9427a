"""Personal access tokens: the secret, scopes, projects, expiry, revocation (also seen by a second
instance), deactivation, password changes, last use, audit, and what only a session may do."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from bson import ObjectId

from domain.core.clock import utcnow
from domain.tokens.models import PREFIX, SECRET_LENGTH, new_secret, well_formed
from handlers.keys import MONGO, NOTIFICATIONS
from server import create_app
from tests.conftest import PASSWORD, count_calls, problem, wait_until
from tests.sse_client import read_events


async def make_token(client, account, **body) -> dict:
    response = await client.post(
        "/api/tokens", json={"name": "lab pc", "scopes": ["read"], **body}, headers=account.headers
    )
    assert response.status == 201, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    return await response.json()


def bearer(token: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {token['token']}"}


def test_secrets_are_recognisable_and_carry_a_checksum():
    secret = new_secret()
    assert secret.startswith(PREFIX)
    assert len(secret) == SECRET_LENGTH
    assert well_formed(secret)
    flipped = secret[:10] + ("A" if secret[10] != "A" else "B") + secret[11:]
    assert not well_formed(flipped)  # one mistyped character
    assert not well_formed(secret[:-1])
    assert not well_formed(secret.replace(secret[5], "-", 1))
    assert new_secret() != secret


async def test_a_token_is_shown_once_and_listed_without_its_secret(client, team):
    token = await make_token(client, team.member, scopes=["read", "write"])
    assert token["token"].startswith("lhp_")
    assert token["prefix"] == token["token"][:12]
    assert token["scopes"] == ["read", "write"]
    assert token["project_ids"] is None
    listed = await (await client.get("/api/tokens", headers=team.member.headers)).json()
    assert [t["id"] for t in listed["items"]] == [token["id"]]
    assert "token" not in listed["items"][0]
    assert token["token"] not in str(listed)
    stored = await client.app[MONGO]["access_tokens"].find_one({"_id": ObjectId(token["id"])})
    assert token["token"] not in str(stored)  # only its hash
    me = await client.get("/api/auth/me", headers=bearer(token))
    assert (await me.json())["id"] == team.member.id


async def test_scopes_decide_methods_and_routes(client, team):
    read = await make_token(client, team.member, scopes=["read"])
    write = await make_token(client, team.member, scopes=["write"])
    assert (await client.get(f"/api/projects/{team.project_id}", headers=bearer(read))).status == 200
    assert (await client.post("/api/auth/sse-ticket", headers=bearer(read))).status == 200
    refused = await client.post(
        f"/api/projects/{team.project_id}/records", json={"kind": "k", "title": "t"}, headers=bearer(read)
    )
    assert (await problem(refused, 403))["code"] == "insufficient_scope"
    made = await client.post(
        f"/api/projects/{team.project_id}/records", json={"kind": "k", "title": "t"}, headers=bearer(write)
    )
    assert made.status == 201
    for path in ("/api/users", "/api/system", f"/api/users/{team.member.id}"):
        assert (await problem(await client.get(path, headers=bearer(write)), 403))[
            "code"
        ] == "insufficient_scope"
    body = await problem(
        await client.post(
            "/api/tokens", json={"name": "x", "scopes": ["admin"]}, headers=team.member.headers
        ),
        422,
    )
    assert body["errors"][0]["path"] == "$.scopes"
    admin = await make_token(client, team.head, scopes=["admin"])
    assert (await client.get("/api/users", headers=bearer(admin))).status == 200
    assert (await client.get("/api/system", headers=bearer(admin))).status == 200


async def test_only_a_session_makes_or_revokes_tokens_or_changes_a_password(client, team):
    token = await make_token(client, team.member, scopes=["write"])
    for method, path, body in (
        ("POST", "/api/tokens", {"name": "y", "scopes": ["read"]}),
        ("DELETE", f"/api/tokens/{token['id']}", None),
    ):
        answer = await client.request(method, path, json=body, headers=bearer(token))
        assert (await problem(answer, 403))["code"] == "session_required"
    admin = await make_token(client, team.head, scopes=["admin"])
    change = await client.patch(
        f"/api/users/{team.head.id}", json={"password": "another password 1", "old_password": PASSWORD},
        headers=bearer(admin),
    )  # fmt: skip
    assert (await problem(change, 403))["code"] == "session_required"


async def test_a_token_narrowed_to_projects_sees_nothing_else(client, team):
    other = await client.post("/api/projects", json={"name": "Other"}, headers=team.lead.headers)
    other_id = (await other.json())["id"]
    token = await make_token(client, team.lead, scopes=["write"], project_ids=[team.project_id])
    assert token["project_ids"] == [team.project_id]
    listed = await (await client.get("/api/projects", headers=bearer(token))).json()
    assert [p["id"] for p in listed["items"]] == [team.project_id]
    created = await client.post("/api/projects", json={"name": "Sneaky"}, headers=bearer(token))
    assert (await problem(created, 403))["code"] == "insufficient_scope"
    await problem(await client.get(f"/api/projects/{other_id}", headers=bearer(token)), 404)
    await problem(await client.get(f"/api/projects/{other_id}/records", headers=bearer(token)), 404)
    created = await client.post(
        f"/api/projects/{other_id}/records", json={"kind": "k", "title": "t"}, headers=team.lead.headers
    )
    record_id = (await created.json())["id"]
    await problem(await client.get(f"/api/records/{record_id}", headers=bearer(token)), 404)
    assert (await client.get(f"/api/records/{record_id}", headers=team.lead.headers)).status == 200
    unknown = await client.post(
        "/api/tokens", json={"name": "z", "scopes": ["read"], "project_ids": [str(ObjectId())]},
        headers=team.lead.headers,
    )  # fmt: skip
    assert (await problem(unknown, 422))["errors"][0]["path"] == "$.project_ids[0]"
    outsider = await client.post(
        "/api/tokens", json={"name": "z", "scopes": ["read"], "project_ids": [team.project_id]},
        headers=team.outsider.headers,
    )  # fmt: skip
    await problem(outsider, 422)


async def test_a_narrowed_token_sees_only_its_projects_notifications(client, team):
    other = await client.post("/api/projects", json={"name": "Other"}, headers=team.lead.headers)
    other_id = (await other.json())["id"]
    added = await client.post(
        f"/api/projects/{other_id}/members", json={"user_id": team.member.id, "role": "member"},
        headers=team.lead.headers,
    )  # fmt: skip
    assert added.status == 201
    notify = client.app[NOTIFICATIONS].notify
    mine = await notify(
        team.member.id, project_id=team.project_id, category="meeting", title="About this one"
    )
    elsewhere = await notify(team.member.id, project_id=other_id, category="meeting", title="About the other")
    token = await make_token(client, team.member, scopes=["write"], project_ids=[team.project_id])
    listed = await (await client.get("/api/notifications", headers=bearer(token))).json()
    assert [n["id"] for n in listed["items"]] == [mine.id]
    assert listed["items"][0]["project_id"] == team.project_id
    count = await (await client.get("/api/notifications/unread-count", headers=bearer(token))).json()
    assert count == {"unread": 1}
    await problem(await client.post(f"/api/notifications/{elsewhere.id}/read", headers=bearer(token)), 404)
    assert (await client.post("/api/notifications/read-all", headers=bearer(token))).status == 200
    still = await (await client.get("/api/notifications/unread-count", headers=team.member.headers)).json()
    assert still == {"unread": 1}  # the other project's notification was not touched

    # its event stream (a ticket it asked for keeps to its projects too) carries only its projects'
    ticket = (await (await client.post("/api/auth/sse-ticket", headers=bearer(token))).json())["ticket"]
    streams = [
        await client.get("/api/notifications/events", headers=bearer(token)),
        await client.get("/api/notifications/events", params={"ticket": ticket}),
    ]
    for stream in streams:
        events, _ = await read_events(stream, limit=2)
        assert events[0].data == {"unread": 0}
        assert [(e.event, e.data["id"]) for e in events[1:]] == [("notification", mine.id)]  # replayed
    live = [asyncio.create_task(read_events(stream, limit=1)) for stream in streams]
    await asyncio.sleep(0.2)
    await notify(team.member.id, project_id=other_id, category="meeting", title="Other again")
    await client.post("/api/notifications/read-all", headers=team.member.headers)  # an "unread" event
    newest = await notify(team.member.id, project_id=team.project_id, category="meeting", title="This again")
    for reader in live:
        [event], _ = await reader
        assert (event.event, event.data["id"]) == ("notification", newest.id)


async def test_a_token_never_outlives_its_users_membership(client, team):
    token = await make_token(client, team.member, scopes=["read"])
    assert (await client.get(f"/api/projects/{team.project_id}", headers=bearer(token))).status == 200
    removed = await client.delete(
        f"/api/projects/{team.project_id}/members/{team.member.id}", headers=team.lead.headers
    )
    assert removed.status == 204
    await problem(await client.get(f"/api/projects/{team.project_id}", headers=bearer(token)), 404)


async def test_expired_revoked_deactivated_and_malformed_tokens_are_401(client, team):
    expiring = await make_token(client, team.member, expires_at=(utcnow() + timedelta(hours=1)).isoformat())
    await client.app[MONGO]["access_tokens"].update_one(
        {"_id": ObjectId(expiring["id"])}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}}
    )
    # the expiry is read from the token as cached: a fresh app instance sees the stored one
    revoked = await make_token(client, team.member)
    assert (await client.get("/api/auth/me", headers=bearer(revoked))).status == 200
    assert (await client.delete(f"/api/tokens/{revoked['id']}", headers=team.member.headers)).status == 204
    body = await problem(await client.get("/api/auth/me", headers=bearer(revoked)), 401)
    assert body["code"] == "token_revoked"  # at once on the instance that revoked it
    past = await problem(
        await client.post("/api/tokens", json={"name": "p", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"},
                          headers=team.member.headers), 422)  # fmt: skip
    assert past["errors"][0]["path"] == "$.expires_at"
    mistyped = revoked["token"][:-1] + ("a" if revoked["token"][-1] != "a" else "b")
    assert (
        await problem(await client.get("/api/auth/me", headers={"Authorization": f"Bearer {mistyped}"}), 401)
    )["code"] == "invalid_token"
    live = await make_token(client, team.viewer)
    deactivate = await client.patch(
        f"/api/users/{team.viewer.id}", json={"active": False}, headers=team.head.headers
    )
    assert deactivate.status == 200
    assert (await problem(await client.get("/api/auth/me", headers=bearer(live)), 401))[
        "code"
    ] == "inactive_account"
    in_url = await client.get("/api/auth/me", params={"access_token": live["token"]})
    assert (await problem(in_url, 401))["code"] == "token_in_url"
    as_ticket = await client.get("/api/notifications/events", params={"ticket": live["token"]})
    assert (await problem(as_ticket, 401))["code"] == "token_in_url"


async def test_expiry_and_revocation_reach_a_second_instance(aiohttp_client, client, team, settings):
    second = await aiohttp_client(create_app(settings))
    token = await make_token(client, team.member, expires_at=(utcnow() + timedelta(hours=1)).isoformat())
    assert (await second.get("/api/auth/me", headers=bearer(token))).status == 200
    assert (await client.delete(f"/api/tokens/{token['id']}", headers=team.member.headers)).status == 204

    async def refused():
        return (await second.get("/api/auth/me", headers=bearer(token))).status == 401

    await wait_until(refused, timeout_s=settings.auth.identity_cache_s + 30)
    expiring = await make_token(client, team.member, expires_at=(utcnow() + timedelta(hours=1)).isoformat())
    await client.app[MONGO]["access_tokens"].update_one(
        {"_id": ObjectId(expiring["id"])}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}}
    )
    third = await aiohttp_client(create_app(settings))
    body = await problem(await third.get("/api/auth/me", headers=bearer(expiring)), 401)
    assert body["code"] == "token_expired"


@pytest.mark.parametrize("revoke_tokens", [True, False])
async def test_a_password_change_revokes_tokens_when_asked(client, team, revoke_tokens):
    token = await make_token(client, team.member)
    change = await client.patch(
        f"/api/users/{team.member.id}",
        json={"password": "a brand new password", "old_password": PASSWORD, "revoke_tokens": revoke_tokens},
        headers=team.member.headers,
    )
    assert change.status == 200, await change.text()
    status = (await client.get("/api/auth/me", headers=bearer(token))).status
    assert status == (401 if revoke_tokens else 200)


async def test_last_use_is_written_at_most_once_a_minute_and_audit_records_the_lifecycle(client, team):
    token = await make_token(client, team.member)
    for _ in range(3):
        assert (await client.get("/api/auth/me", headers=bearer(token))).status == 200
    first = (await (await client.get("/api/tokens", headers=team.member.headers)).json())["items"][0]
    assert first["last_used_at"] is not None
    assert first["last_used_from"] == "127.0.0.1"
    assert (await client.get("/api/auth/me", headers=bearer(token))).status == 200
    again = (await (await client.get("/api/tokens", headers=team.member.headers)).json())["items"][0]
    assert again["last_used_at"] == first["last_used_at"]  # not once a request
    assert (
        await client.delete(f"/api/tokens/{token['id']}", headers=team.head.headers)
    ).status == 204  # a head
    entries = client.app[MONGO]["account_audit"].find({"target_id": token["id"]}).sort("at", 1)
    actions = [(e["action"], str(e["actor_id"])) async for e in entries]
    assert actions == [("token.created", team.member.id), ("token.revoked", team.head.id)]
    audit_text = str([e async for e in client.app[MONGO]["account_audit"].find({})])
    assert token["token"] not in audit_text


async def test_heads_list_anyones_tokens_others_do_not(client, team):
    token = await make_token(client, team.member)
    listed = await client.get(f"/api/users/{team.member.id}/tokens", headers=team.head.headers)
    assert [t["id"] for t in (await listed.json())["items"]] == [token["id"]]
    await problem(await client.get(f"/api/users/{team.member.id}/tokens", headers=team.lead.headers), 403)
    await problem(await client.delete(f"/api/tokens/{token['id']}", headers=team.lead.headers), 404)


async def test_a_read_token_changes_nothing_anywhere(client, team):
    """Scope × method, over every operation of the OpenAPI document that takes a bearer token."""
    token = await make_token(client, team.member, scopes=["read"])
    document = await (await client.get("/api/openapi.json")).json()
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in {"get", "head"} or not operation.get("security") or path in {"/api/auth/sse-ticket", "/api/sql"}:
                continue
            concrete = path.replace("{", "").replace("}", "")  # any id: the scope is checked first
            for name in ("pid", "id", "uid"):
                concrete = (
                    concrete.replace(f"/{name}", f"/{ObjectId()}") if f"{{{name}}}" in path else concrete
                )
            answer = await client.request(method.upper(), concrete, json={}, headers=bearer(token))
            body = await problem(answer, 403)
            assert body["code"] in {"insufficient_scope", "session_required"}, (method, path, body)
            checked += 1
    assert checked > 30


async def test_an_sse_ticket_keeps_to_the_projects_of_the_token_that_made_it(client, team):
    from handlers.keys import JOBS

    other = await client.post("/api/projects", json={"name": "Elsewhere"}, headers=team.lead.headers)
    elsewhere = await client.app[JOBS].enqueue(team.lead.id, (await other.json())["id"], "test.idle", {})
    here = await client.app[JOBS].enqueue(team.lead.id, team.project_id, "test.idle", {})
    token = await make_token(client, team.lead, project_ids=[team.project_id])
    async def ticket() -> str:  # each opens one stream
        return (await (await client.post("/api/auth/sse-ticket", headers=bearer(token))).json())["ticket"]

    await problem(await client.get(f"/api/jobs/{elsewhere.id}/events", params={"ticket": await ticket()}), 404)
    async with client.get(f"/api/jobs/{here.id}/events", params={"ticket": await ticket()}) as stream:
        assert stream.status == 200
        assert stream.content_type == "text/event-stream"
    whole = (await (await client.post("/api/auth/sse-ticket", headers=team.lead.headers)).json())["ticket"]
    async with client.get(f"/api/jobs/{elsewhere.id}/events", params={"ticket": whole}) as stream:
        assert stream.status == 200  # a session's ticket reaches every project of the user


async def test_a_mistyped_token_is_refused_before_any_lookup_and_no_secret_is_logged(
    client, team, caplog, monkeypatch
):
    from handlers.keys import ACCESS_TOKENS

    token = await make_token(client, team.member)
    lookups = count_calls(monkeypatch, client.app[ACCESS_TOKENS]._store, "by_hash")
    mistyped = token["token"][:20] + ("x" if token["token"][20] != "x" else "y") + token["token"][21:]
    with caplog.at_level("DEBUG"):
        assert (
            await client.get("/api/auth/me", headers={"Authorization": f"Bearer {mistyped}"})
        ).status == 401
        assert lookups == []  # the checksum failed: no database round trip
        made_up = "lhp_" + "A" * 49
        assert (
            await client.get("/api/auth/me", headers={"Authorization": f"Bearer {made_up}"})
        ).status == 401
        assert lookups == []
        await client.get("/api/projects", params={"token": token["token"]})
        assert (await client.get("/api/auth/me", headers=bearer(token))).status == 200
    logged = "\n".join(r.getMessage() + str(vars(r)) for r in caplog.records)
    for secret in (token["token"], mistyped):
        assert (
            secret not in logged
        )  # the shown prefix may be logged (by the driver, at DEBUG), never a secret
