"""Activity counts and notifications wait in Redis and reach MongoDB in bulk
(domain/infra/write_behind.py): a read sees everything made before it (taken by another flush or
not), the flusher writes them without a read, and a flush whose instance died is written once,
whether or not it had reached MongoDB."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import bson
from bson import ObjectId

from domain.activity.models import Signal
from handlers.keys import DOMAIN, MONGO, NOTIFICATIONS, REDIS
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
    pending, store, redis = activity._pending.waiting, activity._store, client.app[REDIS].client
    today = datetime.now(UTC).date()
    field = f"{team.project_id}|{team.member.id}|{today.isoformat()}|{Signal.RECORD.value}"
    # two flushes an instance began and never finished (or has not finished yet): one had written
    # its counts to MongoDB, one had not
    for token, written in (("died-after-writing", True), ("died-before-writing", False)):
        await redis.hset(pending.flush_key(token), field, 2)
        if written:
            await store.apply([(team.project_id, team.member.id, today, Signal.RECORD, 2)], token)
        await redis.zadd(pending.under_way, {token: time.time()})
    # a read writes them first: it sees both, each once (2 + 2)
    counts = await activity.between(team.project_id, today, today)
    assert sum(c.n for c in counts if c.user_id == team.member.id and c.signal is Signal.RECORD) == 4
    assert await redis.zcard(pending.under_way) == 0
    assert (await stored_counts(client, team))["records"] == 4
    assert not await redis.exists(
        pending.flush_key("died-after-writing"), pending.flush_key("died-before-writing")
    )
    # and the same token again (a second instance recovering it at the same time) changes nothing
    await store.apply([(team.project_id, team.member.id, today, Signal.RECORD, 2)], "died-before-writing")
    assert (await stored_counts(client, team))["records"] == 4


async def test_a_notification_is_read_at_once_and_stored_without_a_read(client, team):
    notifications, mongo = client.app[NOTIFICATIONS], client.app[MONGO]["notifications"]
    sent = await notifications.notify(team.member.id, project_id=team.project_id, category="x", title="First")
    listed = await (await client.get("/api/notifications", headers=team.member.headers)).json()
    assert [n["id"] for n in listed["items"]] == [sent.id]  # the read flushed it
    later = await notifications.notify(
        team.member.id, project_id=team.project_id, category="x", title="Later"
    )

    async def stored():  # by the background flusher: nobody reads
        return await mongo.find_one({"_id": ObjectId(later.id)})

    doc = await wait_until(stored)
    assert (doc["title"], doc["read_at"], str(doc["user_id"])) == ("Later", None, team.member.id)
    assert doc["created_at"].replace(tzinfo=UTC) == later.created_at
    marked = await client.post(f"/api/notifications/{later.id}/read", headers=team.member.headers)
    assert marked.status == 200, await marked.text()
    count = await (await client.get("/api/notifications/unread-count", headers=team.member.headers)).json()
    assert count == {"unread": 1}


async def test_notifications_of_a_flush_whose_instance_died_are_stored_once(client, team):
    notifications, redis = client.app[NOTIFICATIONS], client.app[REDIS].client
    waiting, store = notifications.waiting, notifications._store
    docs = [
        store.new(
            user_id=team.member.id,
            project_id=team.project_id,
            category="x",
            title=f"n{i}",
            body="",
            link=None,
            created_at=datetime.now(UTC),
        )
        for i in range(3)
    ]
    # a flusher took three notifications and had stored two of them when its instance died
    token = "died-while-writing"
    await redis.rpush(waiting.flush_key(token), *(bson.encode(d) for d in docs))
    await store.insert_many(docs[:2])
    await redis.zadd(waiting.under_way, {token: time.time()})
    # a read writes that flush first: all three, each once
    listed = await (await client.get("/api/notifications", headers=team.member.headers)).json()
    assert sorted(n["id"] for n in listed["items"]) == sorted(str(d["_id"]) for d in docs)
    assert await redis.zcard(waiting.under_way) == 0


async def test_a_flush_left_by_a_dead_instance_is_written_without_a_read(client, team):
    notifications, redis = client.app[NOTIFICATIONS], client.app[REDIS].client
    waiting, store, mongo = notifications.waiting, notifications._store, client.app[MONGO]["notifications"]
    doc = store.new(user_id=team.member.id, project_id=team.project_id, category="x", title="left",
                    body="", link=None, created_at=datetime.now(UTC))  # fmt: skip
    await redis.rpush(waiting.flush_key("left-behind"), bson.encode(doc))
    await redis.zadd(waiting.under_way, {"left-behind": time.time()})

    async def stored():  # the flusher looks every few seconds even when nothing is added
        return await mongo.find_one({"_id": doc["_id"]})

    await wait_until(stored)
    assert await redis.zcard(waiting.under_way) == 0
