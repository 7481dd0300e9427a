"""Activity counts wait in Redis and reach MongoDB in bulk (domain/activity/pending.py): a read sees
every count made before it, the flusher writes them without a read, and a flush whose instance
died is written once, whether or not it had reached MongoDB."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from bson import ObjectId

from domain.activity.models import Signal
from domain.activity.pending import ABANDONED_S
from handlers.keys import DOMAIN, MONGO, REDIS
from tests.conftest import wait_until


async def stored_counts(client, team) -> dict[str, int]:
    doc = await client.app[MONGO]["activity_days"].find_one(
        {"project_id": ObjectId(team.project_id), "user_id": ObjectId(team.member.id)}
    )
    return {s.value: int(doc.get(s.value, 0)) for s in Signal} if doc else {}


async def make_records(client, team, n: int) -> None:
    for i in range(n):
        made = await client.post(
            f"/api/projects/{team.project_id}/records", json={"kind": "run", "title": f"run {i}"},
            headers=team.member.headers,
        )  # fmt: skip
        assert made.status == 201, await made.text()


async def test_counts_reach_mongodb_without_a_read_and_a_read_sees_them_all(client, team):
    await make_records(client, team, 3)

    async def flushed():  # by the background flusher: nobody has read the counts yet
        return (await stored_counts(client, team)).get("records") == 3

    await wait_until(flushed)
    await make_records(client, team, 2)  # just made: a read flushes them before it answers
    activity = client.app[DOMAIN].activity
    today = datetime.now(UTC).date()
    counts = await activity.between(team.project_id, today, today)
    assert sum(c.n for c in counts if c.user_id == team.member.id and c.signal is Signal.RECORD) == 5
    doc = await client.app[MONGO]["activity_days"].find_one(
        {"project_id": ObjectId(team.project_id), "user_id": ObjectId(team.member.id)}
    )
    assert doc["records"] == 5
    assert len(doc["flushes"]) >= 2  # each bulk write left its token


async def test_a_flush_whose_instance_died_is_written_once(client, team):
    activity = client.app[DOMAIN].activity
    pending, store, redis = activity._pending, activity._store, client.app[REDIS].client
    today = datetime.now(UTC).date()
    field = f"{team.project_id}|{team.member.id}|{today.isoformat()}|{Signal.RECORD.value}"
    # two flushes an instance began and never finished: one had written its counts to MongoDB, one
    # had not; both are older than a live flush can be
    for token, written in (("died-after-writing", True), ("died-before-writing", False)):
        await redis.hset(pending._flush_key(token), field, 2)
        if written:
            await store.apply([(team.project_id, team.member.id, today, Signal.RECORD, 2)], token)
        await redis.zadd(pending._under_way, {token: time.time() - ABANDONED_S - 1})

    async def recovered():  # the flusher looks for abandoned flushes every few seconds
        return await redis.zcard(pending._under_way) == 0

    await wait_until(recovered)
    assert (await stored_counts(client, team))["records"] == 4  # 2 + 2: nothing written twice
    assert not await redis.exists(
        pending._flush_key("died-after-writing"), pending._flush_key("died-before-writing")
    )
    # and the same token again (a second instance recovering it at the same time) changes nothing
    await store.apply([(team.project_id, team.member.id, today, Signal.RECORD, 2)], "died-before-writing")
    assert (await stored_counts(client, team))["records"] == 4
