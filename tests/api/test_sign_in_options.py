"""Single sign-on as a stranger's HTTP client sees it (httpx through the real OpenID provider's own
pages, tests/openid.py), the heads' password sign-in policy, and device login over the API.

The browser journeys are in tests/browser/test_sso.py; here: what only an account-less, scripted
client shows (create_users off, a role the provider's groups gave and took back, next= confined to
this site) and the device login's refusals (a token cannot approve, wrong codes, slow polls, expiry).
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import httpx
import pytest

from domain.sso.service import safe_next
from server import create_app
from tests.conftest import PASSWORD, create_account, make_settings, problem, wait_until
from tests.openid import OpenIdProvider, client_for

SECRET = "api-test-client-secret-0123456789"


def sso_settings(
    services, tmp_path, issuer: str, *, device_ttl_s: int = 600, device_interval_s: int = 1, **oidc: Any
):
    return make_settings(
        services, tmp_path,
        oidc={"enabled": True, "issuer": issuer, "client_id": "labhub-api", "client_secret": SECRET,
              "scopes": ["openid", "email", "profile", "groups"], "group_roles": {"lab-heads": "GD"},
              "jwks_refresh_s": 0.2, **oidc},
        device_login={"ttl_s": device_ttl_s, "interval_s": device_interval_s, "lookups_per_user": 3},
    )  # fmt: skip


@pytest.fixture
async def sso_app(aiohttp_client, services, tmp_path, openid_provider: OpenIdProvider, request):
    options = getattr(request, "param", {})
    client = await aiohttp_client(
        create_app(sso_settings(services, tmp_path, openid_provider.issuer, **options))
    )
    base = f"http://127.0.0.1:{client.server.port}"
    return client, base


def _form(html: str) -> tuple[str, dict[str, str]]:
    action = re.search(r'<form[^>]*action="([^"]+)"', html)
    assert action, html[:2000]
    fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html))
    return action.group(1).replace("&amp;", "&"), fields


async def through_provider(base: str, issuer: str, login: str, next_path: str = "/") -> httpx.Response:
    """A browser's part, done by httpx: LabHub's redirect, the provider's sign-in and consent forms,
    and back to LabHub's callback; the answer at the end of the redirects (a cookie jar is kept)."""
    http = httpx.AsyncClient(follow_redirects=True, timeout=60)
    page = await http.get(f"{base}/api/auth/oidc/login", params={"next": next_path})
    for _ in range(3):  # the login form, then the consent form (when asked)
        if not str(page.url).startswith(issuer):
            break
        action, fields = _form(page.text)
        if fields.get("prompt") == "login":
            fields |= {"login": login, "password": "provider password"}
        page = await http.post(urllib.parse.urljoin(str(page.url), action), data=fields)
    page.extensions["client"] = http  # the same browser, for what a test does next
    return page


async def session_of(page: httpx.Response, base: str) -> dict[str, Any]:
    http: httpx.AsyncClient = page.extensions["client"]
    refreshed = await http.post(f"{base}/api/auth/refresh", headers={"X-LabHub-Session": "cookie"})
    assert refreshed.status_code == 200, refreshed.text
    token = refreshed.json()["access_token"]
    me = await http.get(f"{base}/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    return me.json()


def configure(provider: OpenIdProvider, base: str, **accounts: dict[str, Any]) -> None:
    provider.configure(clients=[client_for("labhub-api", SECRET, base)], accounts=accounts)


@pytest.mark.parametrize("sso_app", [{"create_users": False}], indirect=True)
async def test_without_create_users_only_existing_accounts_sign_in(sso_app, openid_provider):
    client, base = sso_app
    configure(
        openid_provider, base,
        newbie={"email": "newbie@uni.example", "email_verified": True, "name": "New"},
        known={"email": "known@uni.example", "email_verified": True, "name": "Known", "groups": ["lab-heads"]},
    )  # fmt: skip
    page = await through_provider(base, openid_provider.issuer, "newbie")
    assert page.url.path == "/signin"
    assert page.url.params["sso_error"] == "no_account"
    assert page.headers["content-type"].startswith("text/html")  # the console's sign-in page, not JSON

    account = await create_account(client, "student", email="known@uni.example", name="Known Person")
    page = await through_provider(base, openid_provider.issuer, "known", next_path="/jobs?status=failed")
    assert page.url.path == "/signin/sso", page.url
    assert page.url.params["next"] == "/jobs?status=failed"
    me = await session_of(page, base)
    assert me["id"] == account.id
    assert me["role"] == "GD"  # the lab-heads group
    assert me["role_from_provider"] is True

    # the provider takes the group away: the role it gave goes back; a deactivation in LabHub wins
    configure(
        openid_provider, base, known={"email": "known@uni.example", "email_verified": True, "name": "Known"}
    )
    me = await session_of(await through_provider(base, openid_provider.issuer, "known"), base)
    assert me["role"] == "student"
    head = await create_account(client, "DH")
    changed = await client.patch(f"/api/users/{account.id}", json={"active": False}, headers=head.headers)
    assert changed.status == 200
    page = await through_provider(base, openid_provider.issuer, "known")
    assert page.url.params["sso_error"] == "inactive_account"


async def test_next_stays_on_this_site_and_a_callback_without_its_browser_is_refused(
    sso_app, openid_provider
):
    _client, base = sso_app
    configure(openid_provider, base, ann={"email": "ann@uni.example", "email_verified": True, "name": "Ann"})
    for bad in (
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "/api/auth/me",
    ):
        assert safe_next(bad) == "/"
    assert safe_next("/datasets/abc?version=2") == "/datasets/abc?version=2"
    page = await through_provider(base, openid_provider.issuer, "ann", next_path="https://evil.example/")
    assert page.url.params["next"] == "/"

    # login CSRF: a callback URL made in one browser and opened in another (without its state cookie)
    http = httpx.AsyncClient(follow_redirects=False, timeout=60)
    started = await http.get(f"{base}/api/auth/oidc/login")
    assert started.status_code == 303
    state = urllib.parse.parse_qs(urllib.parse.urlparse(started.headers["location"]).query)["state"][0]
    other = httpx.AsyncClient(follow_redirects=False, timeout=60)
    answer = await other.get(f"{base}/api/auth/oidc/callback", params={"state": state, "code": "stolen"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin?sso_error=state_invalid"
    made_up = await other.get(
        f"{base}/api/auth/oidc/callback", params={"state": "x", "error": "access_denied"}
    )
    assert made_up.headers["location"] == "/signin?sso_error=state_invalid"


async def test_providers_and_the_password_policy(client, make_account):
    info = await (await client.get("/api/auth/providers")).json()
    assert info["oidc"] is False
    assert info["password"] is True
    assert info["reasons"]["email_domain"]
    head, student = await make_account("DH"), await make_account("student")
    await problem(await client.get("/api/auth/sign-in-policy", headers=student.headers), 403)
    # without single sign-on, closing password sign-in would lock everyone else out
    closing = await client.patch(
        "/api/auth/sign-in-policy", json={"password_sign_in": "heads"}, headers=head.headers
    )
    assert (await problem(closing, 409))["code"] == "sso_not_enabled"
    redirect = await client.get("/api/auth/oidc/login", allow_redirects=False)
    assert redirect.status == 303
    assert redirect.headers["Location"] == "/signin?sso_error=sso_disabled"


async def test_password_sign_in_for_heads_only(sso_app):
    client, _base = sso_app
    head = await create_account(client, "GD")
    student = await create_account(client, "student")
    token = await (await client.post("/api/tokens", json={"name": "script", "scopes": ["admin", "write", "read"]},
                                      headers=head.headers)).json()  # fmt: skip
    by_token = await client.patch("/api/auth/sign-in-policy", json={"password_sign_in": "heads"},
                                  headers={"Authorization": f"Bearer {token['token']}"})  # fmt: skip
    assert (await problem(by_token, 403))["code"] == "session_required"
    closed = await client.patch(
        "/api/auth/sign-in-policy", json={"password_sign_in": "heads"}, headers=head.headers
    )
    assert closed.status == 200
    assert (await closed.json())["password_sign_in"] == "heads"
    refused = await client.post("/api/auth/login", json={"email": student.email, "password": PASSWORD})
    assert (await problem(refused, 403))["code"] == "password_sign_in_off"
    assert (
        await client.post("/api/auth/login", json={"email": head.email, "password": PASSWORD})
    ).status == 200
    registered = await client.post(
        "/api/auth/register", json={"email": "x@uni.example", "password": PASSWORD, "name": "X"}
    )
    assert (await problem(registered, 403))["code"] == "registration_closed"
    info = await (await client.get("/api/auth/providers")).json()
    assert (info["oidc"], info["password"], info["registration"]) == (True, False, False)
    assert [(w["id"], w["heads_only"]) for w in info["providers"]] == [("oidc", False), ("password", True)]
    assert info["providers"][0]["login_url"] == "/api/auth/oidc/login"
    opened = await client.patch(
        "/api/auth/sign-in-policy", json={"password_sign_in": "everyone"}, headers=head.headers
    )
    assert opened.status == 200
    assert (
        await client.post("/api/auth/login", json={"email": student.email, "password": PASSWORD})
    ).status == 200


async def _poll(client, device_code: str):
    return await client.post("/api/auth/device/token", json={"device_code": device_code})


@pytest.mark.parametrize("sso_app", [{"device_interval_s": 120}], indirect=True)  # a second poll is too soon
async def test_device_login_refusals(sso_app):
    client, _base = sso_app
    student, head = await create_account(client, "student"), await create_account(client, "DH")
    started = await (
        await client.post("/api/auth/device", json={"machine": "rig", "scopes": ["read"]})
    ).json()
    assert re.fullmatch(r"[B-Z]{4}-[B-Z]{4}", started["user_code"])
    assert started["verification_uri"].endswith("/device")
    assert (await problem(await _poll(client, started["device_code"]), 400))[
        "code"
    ] == "authorization_pending"
    assert (await problem(await _poll(client, started["device_code"]), 400))["code"] == "slow_down"

    # a personal access token cannot approve (tokens never mint tokens)
    token = await (await client.post("/api/tokens", json={"name": "t", "scopes": ["read", "write"]},
                                      headers=student.headers)).json()  # fmt: skip
    by_token = await client.post(f"/api/auth/device/{started['user_code']}/approve",
                                 headers={"Authorization": f"Bearer {token['token']}"})  # fmt: skip
    assert (await problem(by_token, 403))["code"] == "session_required"
    # admin only from a head
    wants_admin = await (
        await client.post("/api/auth/device", json={"machine": "m", "scopes": ["admin"]})
    ).json()
    await problem(
        await client.post(f"/api/auth/device/{wants_admin['user_code']}/approve", headers=student.headers),
        422,
    )
    assert (
        await client.post(f"/api/auth/device/{wants_admin['user_code']}/approve", headers=head.headers)
    ).status == 200

    # wrong codes are counted per person
    for _ in range(3):
        await problem(await client.get("/api/auth/device/BBBB-BBBB", headers=student.headers), 404)
    assert (await problem(await client.get("/api/auth/device/BBBB-BBBB", headers=student.headers), 429))[
        "code"
    ] == "device_code_throttled"


@pytest.mark.parametrize("sso_app", [{"device_ttl_s": 2}], indirect=True)
async def test_a_device_code_expires(sso_app):
    client, _base = sso_app
    head = await create_account(client, "DH")
    started = await (await client.post("/api/auth/device", json={"machine": "rig"})).json()

    # the code expires (ttl 2 s here): the poll then says so, and approving finds nothing
    async def expired():
        answer = await _poll(client, started["device_code"])
        body = await answer.json()
        return body if body.get("code") == "expired_token" else None

    await wait_until(expired, timeout_s=60, every_s=1.1)
    await problem(
        await client.post(f"/api/auth/device/{started['user_code']}/approve", headers=head.headers), 404
    )


async def test_device_login_gives_one_token_once(sso_app):
    client, _base = sso_app
    student = await create_account(client, "student", name="Stu Dent")
    started = await (await client.post("/api/auth/device", json={"machine": "lab-pc"})).json()
    described = await (
        await client.get(f"/api/auth/device/{started['user_code'].lower()}", headers=student.headers)
    ).json()
    assert described["token_name"] == "labhub-client on lab-pc"
    assert described["scopes"] == ["read", "write"]
    assert "until you revoke it" in described["grants"]
    approved = await client.post(f"/api/auth/device/{started['user_code']}/approve", headers=student.headers)
    assert (await approved.json())["status"] == "approved"
    again = await client.post(f"/api/auth/device/{started['user_code']}/deny", headers=student.headers)
    assert (await problem(again, 409))["code"] == "device_code_used"

    async def granted():
        answer = await _poll(client, started["device_code"])
        return await answer.json() if answer.status == 200 else None

    token = await wait_until(granted, timeout_s=60, every_s=1.1)
    assert token["name"] == "labhub-client on lab-pc"
    me = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token['token']}"})
    assert (await me.json())["id"] == student.id

    async def spent():
        body = await (await _poll(client, started["device_code"])).json()
        return body if body.get("code") == "expired_token" else None

    await wait_until(spent, timeout_s=60, every_s=1.1)  # a second poll never gets a second token
    tokens = await (await client.get("/api/tokens", headers=student.headers)).json()
    assert [t["name"] for t in tokens["items"]] == ["labhub-client on lab-pc"]
