"""Projects, membership rules and the audit log."""

from __future__ import annotations

from handlers.keys import DOMAIN, MONGO, OBJECTS, REDIS
from server import create_app
from tests.conftest import count_calls, file_form, problem


async def test_create_makes_the_creator_lead_and_lists_per_user(client, make_account):
    alice = await make_account("student", name="Alice")
    bob = await make_account("student", name="Bob")
    head = await make_account("GD")
    response = await client.post(
        "/api/projects", json={"name": "  Rotor   noise ", "description": "d"}, headers=alice.headers
    )
    assert response.status == 201
    project = await response.json()
    assert project["name"] == "Rotor noise"
    assert project["status"] == "active"
    assert project["members"] == [
        {"user_id": alice.id, "role": "lead", "added_at": project["members"][0]["added_at"]}
    ]
    await client.post("/api/projects", json={"name": "Bob's"}, headers=bob.headers)
    mine = await (await client.get("/api/projects", headers=alice.headers)).json()
    assert [p["name"] for p in mine["items"]] == ["Rotor noise"]
    everything = await (await client.get("/api/projects", headers=head.headers)).json()
    assert sorted(p["name"] for p in everything["items"]) == ["Bob's", "Rotor noise"]
    found = await (await client.get("/api/projects", params={"q": "NOISE"}, headers=head.headers)).json()
    assert [p["name"] for p in found["items"]] == ["Rotor noise"]
    assert (await (await client.get("/api/projects", params={"q": "(("}, headers=head.headers)).json())[
        "items"
    ] == []


async def test_project_validation(client, make_account):
    alice = await make_account()
    body = await problem(await client.post("/api/projects", json={"name": " "}, headers=alice.headers), 422)
    assert body["errors"][0]["path"] == "$.name"
    body = await problem(
        await client.post("/api/projects", json={"description": "x"}, headers=alice.headers), 422
    )
    assert body["errors"][0]["path"] == "$.name"


async def test_patch_archive_and_unarchive(client, team):
    url = f"/api/projects/{team.project_id}"
    renamed = await client.patch(url, json={"name": "Wind tunnel 2"}, headers=team.lead.headers)
    assert (await renamed.json())["name"] == "Wind tunnel 2"
    await problem(await client.patch(url, json={"name": "x"}, headers=team.member.headers), 403)
    assert (await client.delete(url, headers=team.lead.headers)).status == 204
    archived = await (await client.get(url, headers=team.viewer.headers)).json()
    assert archived["status"] == "archived"
    # an archived project is read-only
    body = await problem(
        await client.post(f"{url}/records", json={"kind": "note", "title": "t"}, headers=team.member.headers),
        409,
    )
    assert body["code"] == "project_archived"
    await problem(await client.patch(url, json={"name": "y"}, headers=team.lead.headers), 409)
    listed = await (await client.get("/api/projects", headers=team.lead.headers)).json()
    assert listed["items"] == []
    archived_list = await (
        await client.get("/api/projects", params={"status": "archived"}, headers=team.lead.headers)
    ).json()
    assert [p["id"] for p in archived_list["items"]] == [team.project_id]
    reopened = await client.patch(url, json={"status": "active"}, headers=team.lead.headers)
    assert (await reopened.json())["status"] == "active"


async def test_members_add_change_remove_and_search(client, team, make_account):
    url = f"/api/projects/{team.project_id}/members"
    members = await (await client.get(url, headers=team.viewer.headers)).json()
    assert {(m["name"], m["role"]) for m in members["items"]} == {
        ("Lena Lead", "lead"), ("Mia Member", "member"), ("Vic Viewer", "viewer"),
    }  # fmt: skip
    newcomer = await make_account("student", name="Nora New")
    await problem(await client.post(url, json={"user_id": newcomer.id}, headers=team.member.headers), 403)
    added = await client.post(url, json={"user_id": newcomer.id}, headers=team.lead.headers)
    assert (await added.json())["role"] == "member"
    await problem(await client.post(url, json={"user_id": newcomer.id}, headers=team.lead.headers), 409)
    body = await problem(await client.post(url, json={"user_id": "0" * 24}, headers=team.lead.headers), 422)
    assert body["errors"][0]["path"] == "$.user_id"
    await problem(
        await client.post(url, json={"user_id": newcomer.id, "role": "owner"}, headers=team.lead.headers), 422
    )
    changed = await client.patch(f"{url}/{newcomer.id}", json={"role": "viewer"}, headers=team.lead.headers)
    assert (await changed.json())["role"] == "viewer"
    found = await (await client.get(f"{url}/search", params={"q": "no"}, headers=team.member.headers)).json()
    assert [m["name"] for m in found["items"]] == ["Nora New"]
    by_email = await (
        await client.get(f"{url}/search", params={"q": "researcher-"}, headers=team.member.headers)
    ).json()
    assert [m["name"] for m in by_email["items"]] == ["Lena Lead"]
    not_members = await (
        await client.get(f"{url}/search", params={"q": "otto"}, headers=team.member.headers)
    ).json()
    assert not_members["items"] == []
    assert (await client.delete(f"{url}/{newcomer.id}", headers=team.lead.headers)).status == 204
    # members may leave on their own
    assert (await client.delete(f"{url}/{team.viewer.id}", headers=team.viewer.headers)).status == 204
    await problem(await client.get(f"/api/projects/{team.project_id}", headers=team.viewer.headers), 404)


async def test_last_lead_cannot_be_removed_or_demoted(client, team):
    url = f"/api/projects/{team.project_id}/members"
    body = await problem(
        await client.patch(f"{url}/{team.lead.id}", json={"role": "member"}, headers=team.lead.headers), 409
    )
    assert body["code"] == "last_lead"
    await problem(await client.delete(f"{url}/{team.lead.id}", headers=team.head.headers), 409)
    await client.patch(f"{url}/{team.member.id}", json={"role": "lead"}, headers=team.lead.headers)
    assert (await client.delete(f"{url}/{team.lead.id}", headers=team.lead.headers)).status == 204
    await problem(
        await client.patch(f"{url}/{team.member.id}", json={"role": "viewer"}, headers=team.member.headers),
        409,
    )


async def test_audit_log_records_who_changed_what(client, team):
    pid = team.project_id
    await client.patch(f"/api/projects/{pid}", json={"name": "Renamed"}, headers=team.lead.headers)
    record = await (await client.post(f"/api/projects/{pid}/records", json={"kind": "run", "title": "Run 1"},
                                      headers=team.member.headers)).json()  # fmt: skip
    await client.patch(
        f"/api/records/{record['id']}",
        json={"title": "Run 1b", "data": {"x": 1}},
        headers=team.member.headers,
    )
    await problem(await client.get(f"/api/projects/{pid}/audit", headers=team.member.headers), 403)
    await problem(await client.get(f"/api/projects/{pid}/audit", headers=team.outsider.headers), 404)
    events = (await (await client.get(f"/api/projects/{pid}/audit", headers=team.lead.headers)).json())[
        "items"
    ]
    actions = [e["action"] for e in events]
    assert actions[:3] == ["record.updated", "record.created", "project.updated"]
    assert "member.added" in actions
    assert actions[-1] == "project.created"
    update = events[0]
    assert update["actor_id"] == team.member.id
    assert update["target_id"] == record["id"]
    assert update["changes"]["title"] == {"old": "Run 1", "new": "Run 1b", "values_omitted": False}
    assert update["changes"]["data"]["values_omitted"] is True
    rename = events[2]["changes"]["name"]
    assert (rename["old"], rename["new"]) == ("Wind tunnel", "Renamed")
    heads_view = await (
        await client.get(f"/api/projects/{pid}/audit", params={"limit": 2}, headers=team.head.headers)
    ).json()
    assert len(heads_view["items"]) == 2
    assert heads_view["next_cursor"]


async def test_purge_removes_everything_and_is_for_heads(client, team):
    pid = team.project_id
    upload = await client.post(
        f"/api/projects/{pid}/documents", data=file_form(b"hello", "hello.txt"), headers=team.member.headers
    )
    assert upload.status == 201
    await client.post(
        f"/api/projects/{pid}/records", json={"kind": "k", "title": "t"}, headers=team.member.headers
    )
    await problem(
        await client.delete(f"/api/projects/{pid}", params={"purge": "true"}, headers=team.lead.headers), 403
    )
    await problem(
        await client.delete(f"/api/projects/{pid}", params={"purge": "true"}, headers=team.outsider.headers),
        404,
    )
    assert (
        await client.delete(f"/api/projects/{pid}", params={"purge": "true"}, headers=team.head.headers)
    ).status == 204
    await problem(await client.get(f"/api/projects/{pid}", headers=team.head.headers), 404)
    assert await client.app[OBJECTS].keys("documents/") == []
    db = client.app[MONGO]
    for collection in ("documents", "document_versions", "records", "audit"):
        assert await db[collection].count_documents({}) == 0, collection


async def test_a_change_checks_the_project_as_it_is_now_on_every_instance(
    client, team, aiohttp_client, settings, monkeypatch
):
    """A change's check may use a copy of the project read earlier on this instance only while no
    instance has changed the project since (its change stamp in Redis, domain/projects/stamps.py)."""
    other = await aiohttp_client(create_app(settings))  # a second instance on the same services
    reads = count_calls(monkeypatch, other.app[DOMAIN].projects._gate._projects, "get")
    records = f"/api/projects/{team.project_id}/records"

    async def record(instance, title):
        return await instance.post(records, json={"kind": "run", "title": title}, headers=team.member.headers)

    assert (await record(other, "first")).status == 201
    assert (await record(other, "second")).status == 201
    assert len(reads) == 1  # the second change's check used the copy: nothing changed since
    # the lead removes the member on the first instance: the other refuses her next change at once
    assert (await client.delete(f"/api/projects/{team.project_id}/members/{team.member.id}",
                                headers=team.lead.headers)).status == 204  # fmt: skip
    await problem(await record(other, "third"), 404)
    assert len(reads) == 2
    # archived on the first instance: the other refuses a change to it at once too
    archived = await client.patch(
        f"/api/projects/{team.project_id}", json={"status": "archived"}, headers=team.lead.headers
    )
    assert archived.status == 200, await archived.text()
    created = await other.post(records, json={"kind": "run", "title": "late"}, headers=team.lead.headers)
    assert (await problem(created, 409))["code"] == "project_archived"
    # a stamp that is gone (expired, or Redis lost it) is never taken for the one a copy was read with
    await other.app[REDIS].client.delete(other.app[REDIS].key("project-stamp", team.project_id))
    created = await other.post(records, json={"kind": "run", "title": "later"}, headers=team.lead.headers)
    await problem(created, 409)
    assert len(reads) == 4
