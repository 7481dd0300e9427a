"""Password resets: links heads hand over, links people ask for by mail (a real SMTP server), single
use, expiry, voiding, what a reset signs out, enumeration-safe answers and throttling."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

import pytest
from bson import ObjectId

from domain.accounts.jwt import hash_secret
from handlers.keys import MONGO
from server import create_app
from tests.api.test_tokens import bearer, make_token
from tests.conftest import PASSWORD, create_account, make_settings, problem, wait_until
from tests.mailbox import mail_settings

PUBLIC = "https://labhub.lab.example"
NEW_PASSWORD = "a brand new passphrase"
LINK = re.compile(r"^https://labhub\.lab\.example/reset#token=(lhr_[A-Za-z0-9_-]{43})$")


async def reset_link(client, head, user_id) -> dict:
    response = await client.post(f"/api/users/{user_id}/password-reset", headers=head.headers)
    assert response.status == 201, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    return await response.json()


def token_of(url: str) -> str:
    match = LINK.match(url)
    assert match, url
    return match.group(1)


async def confirm(client, token: str, password: str = NEW_PASSWORD, **extra):
    return await client.post(
        "/api/auth/password-reset/confirm", json={"token": token, "password": password, **extra}
    )


async def login(client, email: str, password: str):
    return await client.post("/api/auth/login", json={"email": email, "password": password})


@pytest.fixture
def settings(services, tmp_path):
    return make_settings(services, tmp_path, http={"public_url": PUBLIC})


async def test_a_head_hands_over_a_one_time_link(client, team):
    link = await reset_link(client, team.head, team.member.id)
    token = token_of(link["url"])  # the secret rides in the fragment, which no server log sees
    assert datetime.fromisoformat(link["expires_at"]) > datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    stored = await client.app[MONGO]["password_resets"].find_one({"user_id": ObjectId(team.member.id)})
    assert token not in str(stored)  # only its hash is kept

    response = await confirm(client, token)
    assert response.status == 204, await response.text()
    assert (await login(client, team.member.email, NEW_PASSWORD)).status == 200
    await problem(await login(client, team.member.email, PASSWORD), 401)
    # every session ended: the member's refresh token no longer works
    refreshed = await client.post("/api/auth/refresh", json={"refresh_token": team.member.refresh_token})
    await problem(refreshed, 401)
    # single use
    body = await problem(await confirm(client, token, "yet another passphrase"), 400)
    assert body["code"] == "invalid_reset"
    audit = [e["action"] async for e in client.app[MONGO]["account_audit"].find(
        {"user_id": ObjectId(team.member.id)}).sort("at", 1)]  # fmt: skip
    assert audit == ["password_reset.created", "password_reset.used"]


async def test_a_newer_link_voids_the_older_and_a_bad_password_keeps_the_link(client, team):
    first = token_of((await reset_link(client, team.head, team.member.id))["url"])
    second = token_of((await reset_link(client, team.head, team.member.id))["url"])
    assert (await problem(await confirm(client, first), 400))["code"] == "invalid_reset"
    short = await problem(await confirm(client, second, "short"), 422)
    assert "$.password" in str(short["errors"])
    assert (await confirm(client, second)).status == 204  # the too-short try did not spend it
    for made_up in ("lhr_" + "A" * 43, "nonsense", ""):
        assert (await problem(await confirm(client, made_up), 400))["code"] == "invalid_reset"


async def test_a_link_expires(aiohttp_client, services, tmp_path):
    client = await aiohttp_client(create_app(make_settings(
        services, tmp_path, http={"public_url": PUBLIC}, auth={"reset_ttl_s": 1})))  # fmt: skip
    head, member = await create_account(client, "DH"), await create_account(client, "student")
    link = await reset_link(client, head, member.id)
    expires_at = datetime.fromisoformat(link["expires_at"])
    # the passing of time is the event tested here: sleep until just past the expiry
    await asyncio.sleep(max(0.0, (expires_at - datetime.now(expires_at.tzinfo)).total_seconds()) + 0.05)
    assert (await problem(await confirm(client, token_of(link["url"])), 400))["code"] == "invalid_reset"
    assert (await login(client, member.email, PASSWORD)).status == 200


async def test_revoke_tokens_is_asked_for_not_assumed(client, team):
    kept = await make_token(client, team.member, scopes=["read"])
    link = await reset_link(client, team.head, team.member.id)
    assert (await confirm(client, token_of(link["url"]))).status == 204
    assert (await client.get("/api/auth/me", headers=bearer(kept))).status == 200
    link = await reset_link(client, team.head, team.member.id)
    assert (
        await confirm(client, token_of(link["url"]), "third passphrase!", revoke_tokens=True)
    ).status == 204
    await problem(await client.get("/api/auth/me", headers=bearer(kept)), 401)


async def test_who_may_make_a_link(client, team):
    await problem(await client.post(f"/api/users/{team.member.id}/password-reset"), 401)
    # not a head: someone else's account does not exist for them, their own is changed another way
    await problem(
        await client.post(f"/api/users/{team.viewer.id}/password-reset", headers=team.member.headers), 404
    )
    own = await problem(
        await client.post(f"/api/users/{team.member.id}/password-reset", headers=team.member.headers), 403
    )
    assert own["code"] == "not_head"
    await problem(await client.post(f"/api/users/{'0' * 24}/password-reset", headers=team.head.headers), 404)
    # a leaked token, even a head's admin token, cannot mint a link that takes an account over
    admin = await make_token(client, team.head, scopes=["read", "write", "admin"])
    refused = await problem(
        await client.post(f"/api/users/{team.member.id}/password-reset", headers=bearer(admin)), 403
    )
    assert refused["code"] == "session_required"
    # a deactivated account gets no link
    assert (
        await client.patch(
            f"/api/users/{team.outsider.id}", json={"active": False}, headers=team.head.headers
        )
    ).status == 200
    gone = await problem(
        await client.post(f"/api/users/{team.outsider.id}/password-reset", headers=team.head.headers), 409
    )
    assert gone["code"] == "inactive_account"


async def test_a_link_of_an_account_deactivated_since_does_not_work(client, team):
    link = await reset_link(client, team.head, team.member.id)
    assert (
        await client.patch(f"/api/users/{team.member.id}", json={"active": False}, headers=team.head.headers)
    ).status == 200
    assert (await problem(await confirm(client, token_of(link["url"])), 400))["code"] == "invalid_reset"


async def test_self_service_needs_mail(client, team):
    body = await problem(
        await client.post("/api/auth/password-reset", json={"email": team.member.email}), 403
    )
    assert body["code"] == "mail_disabled"


# -- self-service, with a real SMTP server -----------------------------------------------------------


@pytest.fixture
async def mail_client(aiohttp_client, services, tmp_path, mailbox):
    settings = make_settings(
        services, tmp_path, http={"public_url": PUBLIC}, mail=mail_settings(mailbox.port),
        auth={"reset_requests_per_address": 2, "reset_requests_per_client": 6},
    )  # fmt: skip
    return await aiohttp_client(create_app(settings))


async def outbox_total(client) -> int:
    return await client.app[MONGO]["mail_outbox"].count_documents({})


async def ask(client, email: str):
    return await client.post("/api/auth/password-reset", json={"email": email})


async def test_anyone_can_ask_for_a_link_by_mail_and_the_answer_never_tells(mail_client, mailbox):
    client = mail_client
    member = await create_account(client, "student", name="Mia <b>Member</b>")
    unknown = await ask(client, "nobody@lab.example")
    known = await ask(client, member.email.upper())  # addresses are compared as normalised
    assert unknown.status == known.status == 202
    assert await unknown.json() == await known.json()
    assert await outbox_total(client) == 1  # only the real account's mail was queued

    [mail] = await mailbox.wait_for(1)
    message = mail.message
    assert mail.recipients == [member.email]
    assert message["Subject"] == "Reset your LabHub password"
    assert message["From"].addresses[0].addr_spec == "labhub@lab.example"
    assert message["List-Unsubscribe"] == f"<{PUBLIC}/account#notifications>"
    text, page = mail.part("text/plain"), mail.part("text/html")
    token = token_of(next(line for line in text.splitlines() if line.startswith(PUBLIC)))
    assert token in page
    assert "Mia &lt;b&gt;Member&lt;/b&gt;" in page
    assert "<b>Member" not in page
    assert (await confirm(client, token)).status == 204
    assert (await login(client, member.email, NEW_PASSWORD)).status == 200


async def test_the_outbox_keeps_no_reset_link_once_the_mail_is_sent(mail_client, mailbox):
    client = mail_client
    member = await create_account(client, "student")
    await ask(client, member.email)
    [mail] = await mailbox.wait_for(1)
    token = token_of(next(line for line in mail.part("text/plain").splitlines() if line.startswith(PUBLIC)))
    outbox = client.app[MONGO]["mail_outbox"]

    async def settled():
        return await outbox.find_one({"status": "sent"})

    record = await wait_until(settled)
    assert "message" not in record
    assert (record["kind"], record["recipient"]) == ("password_reset", member.email)  # what it was stays
    async for stored in outbox.find({}):
        assert token not in str(stored)
        assert hash_secret(token) not in str(stored)


async def test_requests_are_limited_per_address_and_per_client(mail_client, mailbox):
    client = mail_client
    member = await create_account(client, "student")
    for _ in range(3):  # the limit per address is 2: the third is answered alike but sends nothing
        assert (await ask(client, member.email)).status == 202
    assert await outbox_total(client) == 2
    for _ in range(3):
        assert (await ask(client, "someone.else@lab.example")).status == 202
    limited = await problem(await ask(client, "third@lab.example"), 429)  # 7th from this client
    assert limited["code"] == "reset_throttled"
    await mailbox.wait_for(2)
    assert len(mailbox.to(member.email)) == 2


async def test_a_malformed_address_is_a_clear_error(mail_client):
    await problem(await ask(mail_client, "not an address"), 422)
    await problem(await mail_client.post("/api/auth/password-reset", json={}), 422)


async def test_a_reset_lifts_the_sign_in_back_off(client, team):
    for _ in range(6):  # five free tries, then a wait that doubles
        await login(client, team.member.email, "a wrong guess, again")
    throttled = await problem(await login(client, team.member.email, PASSWORD), 429)
    assert throttled["code"] == "login_throttled"
    link = await reset_link(client, team.head, team.member.id)
    assert (await confirm(client, token_of(link["url"]))).status == 204
    assert (await login(client, team.member.email, NEW_PASSWORD)).status == 200
