"""/api/users: heads manage accounts; everyone manages their own; deactivation signs out."""

from __future__ import annotations

from server import create_app
from tests.conftest import PASSWORD, make_settings, problem


async def test_only_heads_list_users_and_search_by_prefix(client, make_account):
    head = await make_account("DH", name="Grace Hopper")
    student = await make_account("student", name="Ada Lovelace")
    await make_account("researcher", name="Alan Turing")
    await problem(await client.get("/api/users", headers=student.headers), 403)
    await problem(await client.get("/api/users"), 401)
    everyone = await (await client.get("/api/users", headers=head.headers)).json()
    assert {u["name"] for u in everyone["items"]} == {"Grace Hopper", "Ada Lovelace", "Alan Turing"}
    found = await (await client.get("/api/users", params={"q": "a"}, headers=head.headers)).json()
    assert [u["name"] for u in found["items"]] == ["Ada Lovelace", "Alan Turing"]
    by_email = await (await client.get("/api/users", params={"q": "dh-"}, headers=head.headers)).json()
    assert [u["name"] for u in by_email["items"]] == ["Grace Hopper"]
    # regex characters are literal, not a pattern
    assert (await (await client.get("/api/users", params={"q": ".*"}, headers=head.headers)).json())[
        "items"
    ] == []


async def test_user_list_paginates_with_a_cursor(client, make_account):
    head = await make_account("GD", name="Head")
    for i in range(5):
        await make_account("student", name=f"Student {i}")
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/api/users", params=params, headers=head.headers)).json()
        assert len(page["items"]) <= 2
        seen += [u["id"] for u in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 6
    await problem(await client.get("/api/users", params={"cursor": "garbage"}, headers=head.headers), 400)
    await problem(await client.get("/api/users", params={"limit": "0"}, headers=head.headers), 422)
    await problem(await client.get("/api/users", params={"limit": "many"}, headers=head.headers), 422)


async def test_get_user_self_or_head_else_404(client, make_account):
    head = await make_account("DH")
    student = await make_account("student")
    other = await make_account("student")
    assert (await client.get(f"/api/users/{student.id}", headers=student.headers)).status == 200
    assert (await client.get(f"/api/users/{student.id}", headers=head.headers)).status == 200
    await problem(await client.get(f"/api/users/{student.id}", headers=other.headers), 404)
    await problem(await client.get("/api/users/not-an-id", headers=head.headers), 404)
    await problem(await client.get("/api/users/0123456789abcdef01234567", headers=head.headers), 404)


async def test_self_renames_and_changes_password_with_the_old_one(client, make_account):
    student = await make_account("student")
    url = f"/api/users/{student.id}"
    renamed = await client.patch(url, json={"name": "  New   Name "}, headers=student.headers)
    assert (await renamed.json())["name"] == "New Name"
    body = await problem(
        await client.patch(url, json={"password": "new password 123"}, headers=student.headers), 422
    )
    assert body["errors"][0]["path"] == "$.old_password"
    body = await problem(
        await client.patch(
            url, json={"password": "new password 123", "old_password": "wrong one!!"}, headers=student.headers
        ),
        422,
    )
    assert body["errors"][0]["path"] == "$.old_password"
    changed = await client.patch(
        url, json={"password": "new password 123", "old_password": PASSWORD}, headers=student.headers
    )
    assert changed.status == 200
    # the old refresh token is revoked; the new password works, the old one does not
    await problem(await client.post("/api/auth/refresh", json={"refresh_token": student.refresh_token}), 401)
    assert (
        await client.post("/api/auth/login", json={"email": student.email, "password": PASSWORD})
    ).status == 401
    login = await client.post(
        "/api/auth/login", json={"email": student.email, "password": "new password 123"}
    )
    assert login.status == 200


async def test_role_changes_are_for_heads(client, make_account):
    head = await make_account("DH")
    student = await make_account("student")
    await problem(
        await client.patch(f"/api/users/{student.id}", json={"role": "DH"}, headers=student.headers), 403
    )
    promoted = await client.patch(
        f"/api/users/{student.id}", json={"role": "researcher"}, headers=head.headers
    )
    assert (await promoted.json())["role"] == "researcher"
    body = await problem(
        await client.patch(f"/api/users/{student.id}", json={"role": "king"}, headers=head.headers), 422
    )
    assert body["errors"][0]["path"] == "$.role"
    body = await problem(
        await client.patch(f"/api/users/{head.id}", json={"active": False}, headers=head.headers), 409
    )
    assert body["code"] == "self_demotion"
    await problem(
        await client.patch(f"/api/users/{head.id}", json={"name": "x"}, headers=student.headers), 404
    )


async def test_deactivation_revokes_refresh_tokens_and_access_tokens(client, make_account):
    head = await make_account("GD")
    student = await make_account("student")
    assert (await client.get("/api/auth/me", headers=student.headers)).status == 200
    response = await client.patch(f"/api/users/{student.id}", json={"active": False}, headers=head.headers)
    assert (await response.json())["active"] is False
    body = await problem(await client.get("/api/auth/me", headers=student.headers), 401)
    assert body["code"] == "inactive_account"
    await problem(await client.post("/api/auth/refresh", json={"refresh_token": student.refresh_token}), 401)
    await problem(
        await client.post("/api/auth/login", json={"email": student.email, "password": PASSWORD}), 401
    )
    await client.patch(f"/api/users/{student.id}", json={"active": True}, headers=head.headers)
    assert (
        await client.post("/api/auth/login", json={"email": student.email, "password": PASSWORD})
    ).status == 200


async def test_role_change_takes_effect_on_the_next_request(client, make_account):
    head = await make_account("DH")
    student = await make_account("student")
    await problem(await client.get("/api/users", headers=student.headers), 403)
    await client.patch(f"/api/users/{student.id}", json={"role": "GD"}, headers=head.headers)
    assert (await client.get("/api/users", headers=student.headers)).status == 200


async def test_bootstrap_head_from_environment_settings(aiohttp_client, services, tmp_path):
    settings = make_settings(
        services,
        tmp_path,
        auth={"bootstrap_email": "Boss@Lab.Example", "bootstrap_password": "bootstrap password 1"},
    )
    client = await aiohttp_client(create_app(settings))
    login = await client.post(
        "/api/auth/login", json={"email": "boss@lab.example", "password": "bootstrap password 1"}
    )
    assert login.status == 200
    token = (await login.json())["access_token"]
    me = await (await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})).json()
    assert me["role"] == "DH"
