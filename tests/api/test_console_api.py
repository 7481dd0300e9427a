"""What the console needs from the server: its static files and headers, browser (cookie) sessions,
the caller's job list, and finding people to add to a project."""

from __future__ import annotations

import re
from http.cookies import SimpleCookie

from domain.accounts.models import Role
from handlers.console import CONSOLE_CSP
from handlers.keys import ACCOUNTS, JOBS, SETTINGS
from server import create_app
from tests.conftest import PASSWORD, make_settings, problem

COOKIE = {"X-LabHub-Session": "cookie"}


# -- the console's files -----------------------------------------------------------------------------


async def test_the_index_page_answers_every_client_side_route_with_strict_headers(client):
    for path in ("/", "/projects/0123456789abcdef01234567/records", "/reset", "/forgot", "/datasets/x"):
        response = await client.get(path)
        assert response.status == 200, path
        assert response.content_type == "text/html"
        assert response.headers["Content-Security-Policy"] == CONSOLE_CSP
        assert "unsafe-inline" not in CONSOLE_CSP
        assert "unsafe-eval" not in CONSOLE_CSP
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-cache"
    page = await (await client.get("/")).text()
    assert "<script>" not in page
    assert "style=" not in page
    again = await client.get("/", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304


async def test_assets_are_versioned_and_cached_for_a_year(client):
    page = await (await client.get("/")).text()
    script = re.search(r'src="(/assets/[0-9a-f]+/js/app\.js)"', page)
    assert script, page
    response = await client.get(script.group(1))
    assert response.status == 200
    assert response.content_type == "text/javascript"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert response.headers["Content-Security-Policy"] == CONSOLE_CSP
    css = re.search(r'href="(/assets/[0-9a-f]+/app\.css)"', page)
    assert (await client.get(css.group(1))).content_type == "text/css"
    version = script.group(1).split("/")[2]
    for path in (
        "/assets/0000000000000000/js/app.js",  # another version: never served as this one
        f"/assets/{version}/js/nothing.js",
        f"/assets/{version}/%2e%2e/server.py",
        f"/assets/{version}/..%2fserver.py",
        f"/assets/{version}/index.html",
    ):
        await problem(await client.get(path), 404)


async def test_the_api_and_probes_keep_their_own_answers(client):
    body = await problem(await client.get("/api/no-such-thing"), 404)
    assert body["code"] == "not_found"
    await problem(await client.get("/api"), 404)
    await problem(await client.get("/metrics"), 404)
    await problem(await client.post("/projects"), 404)  # only GET and HEAD serve the console
    assert (await client.get("/health")).content_type == "application/json"
    await problem(await client.delete("/api/projects"), 405)


# -- browser sessions: the refresh token in an HttpOnly cookie ----------------------------------------


def cookie_of(response) -> SimpleCookie:
    jar = SimpleCookie()
    for header in response.headers.getall("Set-Cookie", []):
        jar.load(header)
    return jar


async def sign_up(client, role: str = "student") -> str:
    email = f"cookie-{role}-{id(client)}@lab.example".lower()
    await client.app[ACCOUNTS].create(email=email, password=PASSWORD, name="Cookie", role=Role(role))
    return email


async def cookie_login(client) -> str:
    """Sign a new user in as a browser does; the session cookie's value (the client's jar is emptied,
    so each request below says which cookie it sends)."""
    email = await sign_up(client)
    login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD}, headers=COOKIE)
    client.session.cookie_jar.clear()
    return cookie_of(login)["labhub_refresh"].value


async def test_a_cookie_session_keeps_the_refresh_token_out_of_reach_of_scripts(client):
    email = await sign_up(client)
    login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD}, headers=COOKIE)
    assert login.status == 200
    body = await login.json()
    assert set(body) == {"access_token", "expires_in", "token_type"}  # no refresh_token in the body
    assert login.headers["Cache-Control"] == "no-store"
    morsel = cookie_of(login)["labhub_refresh"]
    assert morsel["httponly"]
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/api/auth"
    assert int(morsel["max-age"]) == client.app[SETTINGS].auth.refresh_ttl_s
    assert not morsel["secure"]  # plain http here; set over https
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status == 200


async def test_behind_a_tls_proxy_the_cookie_is_secure_from_the_public_url(aiohttp_client, services, tmp_path):
    # the proxy speaks plain HTTP to LabHub: only http.public_url says people use https
    proxied = await aiohttp_client(
        create_app(make_settings(services, tmp_path, http={"public_url": "https://labhub.lab.example"}))
    )
    email = await sign_up(proxied)
    login = await proxied.post("/api/auth/login", json={"email": email, "password": PASSWORD}, headers=COOKIE)
    assert login.status == 200
    assert cookie_of(login)["labhub_refresh"]["secure"]
    out = await proxied.post("/api/auth/logout", headers=COOKIE)
    assert cookie_of(out)["labhub_refresh"]["secure"]  # the clearing cookie too


async def test_a_cookie_refresh_rotates_and_a_replayed_cookie_ends_the_family(client):
    first = await cookie_login(client)
    refreshed = await client.post("/api/auth/refresh", headers=COOKIE, cookies={"labhub_refresh": first})
    assert refreshed.status == 200, await refreshed.text()
    assert "refresh_token" not in await refreshed.json()
    second = cookie_of(refreshed)["labhub_refresh"].value
    assert second
    assert second != first
    client.session.cookie_jar.clear()
    replay = await client.post("/api/auth/refresh", headers=COOKIE, cookies={"labhub_refresh": first})
    assert (await problem(replay, 401))["code"] == "refresh_token_reused"
    assert cookie_of(replay)["labhub_refresh"]["max-age"] == "0"  # the dead session's cookie is cleared
    client.session.cookie_jar.clear()
    after = await client.post("/api/auth/refresh", headers=COOKIE, cookies={"labhub_refresh": second})
    await problem(after, 401)


async def test_a_cookie_without_the_session_header_is_refused(client):
    """A cross-site form cannot set headers, so it can never spend the cookie."""
    token = await cookie_login(client)
    refused = await client.post("/api/auth/refresh", cookies={"labhub_refresh": token})
    assert (await problem(refused, 400))["code"] == "session_header_required"
    still = await client.post("/api/auth/refresh", headers=COOKIE, cookies={"labhub_refresh": token})
    assert still.status == 200  # the refused attempt did not spend it
    client.session.cookie_jar.clear()
    missing = await client.post("/api/auth/refresh", headers=COOKIE)
    assert (await problem(missing, 401))["code"] == "invalid_refresh_token"


async def test_a_cookie_logout_ends_the_session_and_clears_the_cookie(client):
    token = await cookie_login(client)
    out = await client.post("/api/auth/logout", headers=COOKIE, cookies={"labhub_refresh": token})
    assert out.status == 204
    cleared = cookie_of(out)["labhub_refresh"]
    assert cleared.value == ""
    assert cleared["max-age"] == "0"
    assert cleared["path"] == "/api/auth"
    client.session.cookie_jar.clear()
    await problem(
        await client.post("/api/auth/refresh", headers=COOKIE, cookies={"labhub_refresh": token}), 401
    )


async def test_the_json_token_flow_is_unchanged(client):
    email = await sign_up(client)
    login = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    pair = await login.json()
    assert "refresh_token" in pair
    assert "Set-Cookie" not in login.headers
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert "refresh_token" in await refreshed.json()


# -- GET /api/jobs ------------------------------------------------------------------------------------


async def queue(client, account, project_id: str, kind: str) -> str:
    # a kind no scheduler runs, so the job stays queued where the test put it
    job = await client.app[JOBS].enqueue(account.id, project_id, kind, {})
    return job.id


async def test_the_job_list_shows_mine_newest_first_with_filters_and_a_cursor(client, team):
    mine = [await queue(client, team.member, team.project_id, f"test.idle{i % 2}") for i in range(5)]
    theirs = await queue(client, team.lead, team.project_id, "test.idle0")
    listed = await (await client.get("/api/jobs", headers=team.member.headers)).json()
    assert [j["id"] for j in listed["items"]] == mine[::-1]
    kind = await (await client.get("/api/jobs?kind=test.idle1", headers=team.member.headers)).json()
    assert [j["id"] for j in kind["items"]] == [mine[3], mine[1]]
    assert all(j["status"] == "queued" for j in kind["items"])
    done = await (await client.get("/api/jobs?status=succeeded", headers=team.member.headers)).json()
    assert done["items"] == []
    seen, cursor = [], None
    while True:
        query = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/api/jobs", params=query, headers=team.member.headers)).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == mine[::-1]
    in_project = await client.get(f"/api/jobs?project_id={team.project_id}", headers=team.lead.headers)
    assert [j["id"] for j in (await in_project.json())["items"]] == [theirs]
    everyone = await (await client.get("/api/jobs?all=true", headers=team.head.headers)).json()
    assert {theirs, *mine} <= {j["id"] for j in everyone["items"]}


async def test_the_job_list_refuses_what_the_caller_may_not_see(client, team):
    body = await problem(await client.get("/api/jobs?all=true", headers=team.member.headers), 403)
    assert body["code"] == "not_head"
    await problem(
        await client.get(f"/api/jobs?project_id={team.project_id}", headers=team.outsider.headers), 404
    )
    bad = await problem(await client.get("/api/jobs?status=sleeping", headers=team.member.headers), 422)
    assert bad["errors"][0]["path"] == "$.status"
    await problem(await client.get("/api/jobs"), 401)


# -- people a lead can add -----------------------------------------------------------------------------


async def test_heads_find_anyone_outside_the_project_by_the_start_of_a_name(client, team, make_account):
    newcomer = await make_account("student", name="Nora Newcomer")
    gone = await make_account("student", name="Nora Gone")
    deactivated = await client.patch(
        f"/api/users/{gone.id}", json={"active": False}, headers=team.head.headers
    )
    assert deactivated.status == 200
    found = await client.get(
        f"/api/projects/{team.project_id}/members/candidates", params={"q": "nora"}, headers=team.head.headers
    )
    assert found.status == 200, await found.text()
    items = (await found.json())["items"]
    assert [(i["id"], i["name"]) for i in items] == [(newcomer.id, "Nora Newcomer")]
    assert set(items[0]) == {"id", "name", "email"}
    members = await client.get(
        f"/api/projects/{team.project_id}/members/candidates", params={"q": "mia"}, headers=team.head.headers
    )
    assert (await members.json())["items"] == []  # already a member


async def test_others_find_people_they_work_with_or_by_exact_email_only(client, team, make_account):
    """A student who made a project of their own must not be able to list every account."""
    stranger = await make_account("student", name="Nora Newcomer")
    colleague = await make_account("student", name="Nora Colleague")
    owner = team.outsider  # a student, lead of a project of their own
    mine = await client.post("/api/projects", json={"name": "Mine", "description": ""}, headers=owner.headers)
    mine_id = (await mine.json())["id"]
    shared = await client.post(
        "/api/projects", json={"name": "Shared", "description": ""}, headers=owner.headers
    )
    shared_id = (await shared.json())["id"]
    added = await client.post(
        f"/api/projects/{shared_id}/members", json={"user_id": colleague.id, "role": "member"},
        headers=team.head.headers,
    )  # fmt: skip
    assert added.status == 201

    async def candidates(q: str) -> list[str]:
        response = await client.get(
            f"/api/projects/{mine_id}/members/candidates", params={"q": q}, headers=owner.headers
        )
        assert response.status == 200, await response.text()
        return [item["id"] for item in (await response.json())["items"]]

    assert await candidates("nora") == [colleague.id]  # shares a project: found by name
    assert await candidates("n") == [colleague.id]
    assert await candidates("hedy") == []  # the head is in no project of theirs
    assert await candidates(stranger.email) == [stranger.id]  # anyone else: the exact address only
    assert await candidates(stranger.email.upper()) == [stranger.id]
    assert await candidates(stranger.email[:-3]) == []
    # nor can a lead who is not a head add a head
    refused = await client.post(
        f"/api/projects/{mine_id}/members",
        json={"user_id": team.head.id, "role": "member"},
        headers=owner.headers,
    )
    assert (await problem(refused, 403))["code"] == "not_head"
    by_head = await client.post(
        f"/api/projects/{mine_id}/members", json={"user_id": team.head.id, "role": "viewer"},
        headers=team.head.headers,
    )  # fmt: skip
    assert by_head.status == 201


async def test_only_leads_and_heads_search_for_people(client, team):
    path = f"/api/projects/{team.project_id}/members/candidates"
    await problem(await client.get(path, params={"q": "o"}, headers=team.member.headers), 403)
    await problem(await client.get(path, params={"q": "o"}, headers=team.outsider.headers), 404)
    empty = await problem(await client.get(path, params={"q": " "}, headers=team.lead.headers), 422)
    assert empty["errors"][0]["path"] == "$.q"
