"""Signing out means out: a password change or reset, a deactivation and "sign out everywhere" end
every access token issued before them at once, and close the person's open event streams on every
instance."""

from __future__ import annotations

import asyncio

import pytest

from domain.infra.events import SessionEnds
from handlers.keys import REDIS
from server import create_app
from tests.api.test_password_resets import NEW_PASSWORD, PUBLIC, confirm, reset_link, token_of
from tests.conftest import PASSWORD, create_account, make_settings, problem, wait_until
from tests.sse_client import read_events


@pytest.fixture
def settings(services, tmp_path):
    return make_settings(services, tmp_path, http={"public_url": PUBLIC})


async def me(client, account_or_token):
    token = account_or_token if isinstance(account_or_token, str) else account_or_token.token
    return await client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})


async def open_stream(client, token):
    """The person's notification stream, open and past its snapshot."""
    response = await client.get("/api/notifications/events", headers={"Authorization": f"Bearer {token}"})
    assert response.status == 200
    events, ended = await read_events(response, limit=1)
    assert (events[0].event, ended) == ("snapshot", False)
    return response


async def listening(client, instances: int) -> None:
    """Until so many instances have subscribed to sign-outs (each does as it starts, in the
    background): one announced before that is not heard, like any pub/sub message."""
    channel = client.app[REDIS].key(SessionEnds.CHANNEL)

    async def subscribed() -> bool:
        [(_, count)] = await client.app[REDIS].client.pubsub_numsub(channel)
        return count >= instances

    await wait_until(subscribed)


async def ends(response) -> bool:
    _, ended = await read_events(response, timeout_s=30)
    return ended


async def test_sign_out_everywhere_ends_every_session_on_every_instance(client, aiohttp_client, settings):
    other = await aiohttp_client(create_app(settings))  # a second instance on the same services
    account = await create_account(client, "student")
    elsewhere = await other.post("/api/auth/login", json={"email": account.email, "password": PASSWORD})
    token_elsewhere = (await elsewhere.json())["access_token"]
    stream_elsewhere = await open_stream(other, token_elsewhere)
    stream_here = await open_stream(client, account.token)
    ticket = (await (await client.post("/api/auth/sse-ticket", headers=account.headers)).json())["ticket"]
    await listening(client, 2)

    assert (await client.post("/api/auth/logout-all", headers=account.headers)).status == 204
    assert (await problem(await me(client, account), 401))["code"] == "session_ended"
    assert await ends(stream_here)
    assert await ends(stream_elsewhere)  # told through Redis

    async def refused_elsewhere():  # the other instance looks the account up again within seconds
        return (await me(other, token_elsewhere)).status == 401

    await wait_until(refused_elsewhere, timeout_s=60)  # its identity cache, on a loaded machine
    await problem(await client.get(f"/api/notifications/events?ticket={ticket}"), 401)
    await problem(await client.post("/api/auth/refresh", json={"refresh_token": account.refresh_token}), 401)
    # a new sign-in, in the very same second, works
    again = await client.post("/api/auth/login", json={"email": account.email, "password": PASSWORD})
    assert (await me(client, (await again.json())["access_token"])).status == 200


async def test_a_password_reset_or_change_ends_the_access_tokens_in_use(client, team):
    # the reset (a head's link, confirmed): the member's 15-minute token stops now, not in 15 minutes
    stream = await open_stream(client, team.member.token)
    assert (
        await confirm(client, token_of((await reset_link(client, team.head, team.member.id))["url"]))
    ).status == 204
    assert (await problem(await me(client, team.member), 401))["code"] == "session_ended"
    assert await ends(stream)

    # a change of one's own password
    viewer = team.viewer
    changed = await client.patch(
        f"/api/users/{viewer.id}", json={"password": NEW_PASSWORD, "old_password": PASSWORD},
        headers=viewer.headers,
    )  # fmt: skip
    assert changed.status == 200, await changed.text()
    assert (await problem(await me(client, viewer), 401))["code"] == "session_ended"
    fresh = await client.post("/api/auth/login", json={"email": viewer.email, "password": NEW_PASSWORD})
    assert (await me(client, (await fresh.json())["access_token"])).status == 200


async def test_deactivation_closes_the_persons_open_streams(client, team):
    stream = await open_stream(client, team.member.token)
    await listening(client, 1)
    job_stream_task = asyncio.ensure_future(ends(stream))
    deactivated = await client.patch(
        f"/api/users/{team.member.id}", json={"active": False}, headers=team.head.headers
    )
    assert deactivated.status == 200
    assert await job_stream_task
    assert (await problem(await me(client, team.member), 401))["code"] == "inactive_account"
