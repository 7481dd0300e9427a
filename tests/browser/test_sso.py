"""Sign-in with the institution's account, in headless Chromium, against a real OpenID provider
(panva's oidc-provider on Node.js, tests/openid.py) and the real server process; and the command-line
login approved in the browser (labhub-client login --browser in a subprocess).

The attacks tried: a replayed callback (its state used twice), an ID token with another nonce, an
ID token signed by a key the provider never published (under the real key's id), an unverified
email that matches an account, an address from a domain not accepted; and a key rotation that must
be followed, not refused.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import PASSWORD, Server, serve
from tests.browser.test_console import scan, sign_in
from tests.openid import OpenIdProvider, client_for
from tests.system.conftest import ROOT

SECRET = "labhub-test-client-secret-0123456789"
ACCOUNTS = {
    "ada": {
        "email": "ada@uni.example",
        "email_verified": True,
        "name": "Ada Lovelace",
        "groups": ["students"],
    },
    "hanna": {
        "email": "hanna@uni.example",
        "email_verified": True,
        "name": "Hanna Head",
        "groups": ["lab-heads"],
    },
    "rita": {"email": "rita@uni.example", "email_verified": True, "name": "Rita R.", "groups": []},
    "uma": {"email": "rita@uni.example", "email_verified": False, "name": "Not Rita", "groups": []},
    "eve": {"email": "eve@elsewhere.example", "email_verified": True, "name": "Eve", "groups": []},
    "ben": {"email": "ben@lab.uni.example", "email_verified": True, "name": "Ben", "groups": []},
}


@pytest.fixture(scope="module")
def sso(tmp_path_factory: pytest.TempPathFactory, openid_provider: OpenIdProvider) -> Iterator[Server]:
    server = serve(
        tmp_path_factory.mktemp("sso"),
        LABHUB_OIDC_ENABLED="true",
        LABHUB_OIDC_ISSUER=openid_provider.issuer,
        LABHUB_OIDC_CLIENT_ID="labhub",
        LABHUB_OIDC_CLIENT_SECRET=SECRET,
        LABHUB_OIDC_SCOPES="openid,email,profile,groups",
        LABHUB_OIDC_DISPLAY_NAME="Uni account",
        LABHUB_OIDC_ALLOWED_EMAIL_DOMAINS="uni.example",
        LABHUB_OIDC_GROUP_ROLES='{"lab-heads": "DH"}',
        LABHUB_OIDC_JWKS_REFRESH_S="0.2",
    )
    try:
        openid_provider.configure(clients=[client_for("labhub", SECRET, server.url)], accounts=ACCOUNTS)
        server.create_user("rita@uni.example", "researcher", "Rita Researcher")
        server.create_user("dean@lab.test", "DH", "Dean Head")
        yield server
    finally:
        server.stop()


@pytest.fixture
def browse(open_context, sso, openid_provider):
    """A fresh browser context for LabHub and the provider: the provider's development pages import a
    web font from the internet, which this machine does not reach (answered empty here), and
    Chromium asks the provider for a favicon it does not have."""

    def make():
        context = open_context()
        context.route(
            lambda url: (
                not url.startswith((sso.url, openid_provider.issuer))
                or url == f"{openid_provider.issuer}/favicon.ico"
            ),
            lambda route: route.fulfill(status=200, body="", content_type="text/css"),
        )
        return context.new_page()

    return make


def at_provider(page: Page, login: str) -> None:
    """The provider's own sign-in form (any password), then its consent page when it asks."""
    page.locator('input[name="login"]').fill(login)
    page.locator('input[name="password"]').fill("provider password")
    page.locator('button[type="submit"]').click()
    consent = page.get_by_role("button", name="Continue")
    expect(consent.or_(page.locator("#main h1"))).to_be_visible(timeout=60_000)
    if consent.is_visible():
        consent.click()


def sso_sign_in(page: Page, server: Server, login: str, start: str = "/") -> None:
    page.goto(server.url + start)
    page.get_by_role("link", name="Sign in with Uni account").click()
    at_provider(page, login)


def signed_in_as(page: Page, name: str, role: str) -> None:
    expect(page.locator("header .me")).to_contain_text(name, timeout=60_000)
    expect(page.locator("header .me .role")).to_have_text(role)


def refused(page: Page, message: str) -> None:
    expect(page).to_have_url(re.compile(r"/signin\?sso_error="), timeout=60_000)
    expect(page.get_by_role("alert")).to_contain_text(message)
    expect(page.locator("header .me")).to_have_count(0)


def users_named(server: Server, email: str) -> list[dict]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        token = http.post("/api/auth/login", json={"email": "dean@lab.test", "password": PASSWORD}).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        return [
            u
            for u in http.get("/api/users", params={"q": email}, headers=headers).json()["items"]
            if u["email"] == email
        ]


def test_first_sign_in_makes_a_student_and_the_lab_heads_group_a_DH(sso, browse):
    page = browse()
    page.goto(sso.url + "/")
    expect(page.get_by_role("link", name="Sign in with Uni account")).to_be_visible()
    scan(page, "signin-with-sso")
    sso_sign_in(page, sso, "ada")
    signed_in_as(page, "Ada Lovelace", "student")
    [ada] = users_named(sso, "ada@uni.example")
    assert ada["role"] == "student"
    assert not ada["role_from_provider"]

    page = browse()
    sso_sign_in(page, sso, "hanna", start="/jobs")
    signed_in_as(page, "Hanna Head", "DH")
    expect(page).to_have_url(sso.url + "/jobs")  # back where the sign-in started
    expect(page.get_by_role("link", name="Users")).to_be_visible()  # a head's console
    [hanna] = users_named(sso, "hanna@uni.example")
    assert hanna["role"] == "DH"
    assert hanna["role_from_provider"]


@pytest.mark.provokes_failed_loads("status of 401")  # signing out: the page's open requests end so
def test_a_verified_email_links_the_existing_account_and_denials_and_other_addresses_are_refused(sso, browse):
    page = browse()
    page.goto(sso.url + "/")
    page.get_by_role("link", name="Sign in with Uni account").click()
    page.get_by_role("link", name="[ Cancel ]").click()  # denied at the provider
    refused(page, "cancelled at your institution's sign-in page")

    page = browse()
    sso_sign_in(page, sso, "uma")  # rita's address, not verified by the provider
    refused(page, "has not verified your email address")
    page = browse()  # a new browser: the provider remembers who signed in at it
    sso_sign_in(page, sso, "eve")  # verified, but from a domain this LabHub does not accept
    refused(page, "not from a domain this LabHub accepts")

    page = browse()
    sso_sign_in(page, sso, "rita")
    signed_in_as(page, "Rita Researcher", "researcher")  # the account made with a password, linked
    assert len(users_named(sso, "rita@uni.example")) == 1
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, sso.url, "rita@uni.example")  # the password still works for the same account
    signed_in_as(page, "Rita Researcher", "researcher")


@pytest.mark.provokes_failed_loads("status of 401")  # signing out: the page's open requests end so
def test_a_replayed_callback_a_wrong_nonce_and_a_forged_signature_are_refused(sso, openid_provider, browse):
    page = browse()
    callbacks: list[str] = []
    page.on(
        "request", lambda r: r.url.startswith(f"{sso.url}/api/auth/oidc/callback") and callbacks.append(r.url)
    )
    sso_sign_in(page, sso, "ben")
    signed_in_as(page, "Ben", "student")
    page.get_by_role("button", name="Sign out").click()
    [callback] = set(callbacks)  # one callback (the browser may report its request more than once)
    page.goto(callback)  # the same code and state again
    refused(page, "already used or has expired")

    openid_provider.tamper("wrong_nonce")
    page = browse()
    sso_sign_in(page, sso, "ben")
    refused(page, "could not be verified")

    openid_provider.tamper("foreign_key")
    page = browse()
    sso_sign_in(page, sso, "ben")
    refused(page, "could not be verified")
    log = sso.log()
    assert "the ID token's nonce" in log or "nonce" in log
    assert SECRET not in log  # the client secret never reaches a log line


def test_the_providers_key_rotation_is_followed(sso, openid_provider, browse):
    page = browse()
    sso_sign_in(page, sso, "ben")
    signed_in_as(page, "Ben", "student")  # LabHub holds the provider's current key now
    new_key = openid_provider.rotate()
    assert openid_provider.key_ids() == [new_key]  # the old key is gone from the provider's set
    page = browse()
    sso_sign_in(page, sso, "ben")
    signed_in_as(page, "Ben", "student")  # signed with the new key, which LabHub fetched


class ClientLogin:
    """labhub-client login --browser in a subprocess; its output read as it comes."""

    def __init__(self, server: Server, config: Path, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LABHUB_")}
        env |= {"PYTHONPATH": str(ROOT / "client"), "LABHUB_CLIENT_CONFIG_DIR": str(config), "COLUMNS": "200"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "labhub_client", "login", "--browser", "--url", server.url, "--machine", "rig-pc-7", *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        self.code = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if re.search(r"\b[B-Z]{4}-[B-Z]{4}\b", line):
                self.code.set()

    def user_code(self) -> str:
        assert self.code.wait(120), self.lines
        return next(m.group(0) for line in self.lines if (m := re.search(r"\b[B-Z]{4}-[B-Z]{4}\b", line)))

    def finish(self) -> tuple[int, str]:
        code = self.process.wait(timeout=180)
        self.reader.join(30)
        return code, "".join(self.lines)


def test_the_command_line_gets_a_token_once_approved_in_the_browser_and_none_when_denied(
    sso, browse, tmp_path
):
    client = ClientLogin(sso, tmp_path / "approved")
    code = client.user_code()
    page = browse()
    page.goto(f"{sso.url}/device?code={code}")  # signed out: sign in first (here with the provider)
    page.get_by_role("link", name="Sign in with Uni account").click()
    at_provider(page, "ada")
    expect(page).to_have_url(re.compile(r"/device\?code="))
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="labhub-client on rig-pc-7")).to_be_visible()
    expect(page.locator(".device-request")).to_contain_text("read, write")
    expect(page.locator(".device-request")).to_contain_text("until you revoke it")
    scan(page, "device-approval")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_contain_text("Approved")
    status, output = client.finish()
    assert status == 0, output
    assert "Signed in to" in output
    assert "Ada Lovelace" in output
    saved = json.loads((tmp_path / "approved" / "client.json").read_text())
    assert saved["url"] == sso.url
    assert saved["token"].startswith("lhp_")
    me = httpx.get(
        f"{sso.url}/api/auth/me", headers={"Authorization": f"Bearer {saved['token']}"}, timeout=30
    )
    assert me.json()["email"] == "ada@uni.example"
    page.reload()  # the code is spent: nothing to approve any more
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("status")).to_contain_text("used already")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)

    client = ClientLogin(sso, tmp_path / "denied")
    code = client.user_code()
    page.goto(f"{sso.url}/device")
    page.get_by_label("Code").fill(code.lower().replace("-", " "))  # typed loosely
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("status")).to_contain_text("Denied")
    status, output = client.finish()
    assert status == 1, output
    assert "denied" in output
    assert not (tmp_path / "denied" / "client.json").exists()
