"""Event logs in Redis streams (the SSE ids), live job snapshots, and the one reader that feeds SSE.

`EventLog` appends and replays. `EventHub` is the single Redis reader of a process: it XREADs every
stream someone is watching and hands each new entry, encoded once, to every subscriber of that
stream. Subscribers register with the id they have already sent; the hub backfills from there, so
nothing is missed and nothing is sent twice whatever the timing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any, Protocol

from redis.exceptions import RedisError

from domain.core.background import stop_if_cancelled
from domain.infra.redis_store import RedisStore, text

log = logging.getLogger("labhub.events")

Entry = tuple[str, str, dict[str, Any]]  # (stream id, event name, data)
StreamFilter = Callable[[str, dict[str, Any]], bool]  # (event, data) -> whether a watcher gets it
Frame = Any  # an entry as the HTTP edge encoded it; the hub only hands it on
READ_BLOCK_MS = 200
READ_COUNT = 200


def stream_id(value: str) -> tuple[int, int]:
    """Redis stream ids order as (milliseconds, sequence); anything malformed sorts first."""
    millis, _, sequence = value.partition("-")
    try:
        return int(millis), int(sequence or 0)
    except ValueError:
        return (0, 0)


def valid_stream_id(value: str | None) -> str | None:
    if not value:
        return None
    millis, _, sequence = value.strip().partition("-")
    if millis.isdigit() and (sequence.isdigit() or not sequence) and len(value) < 48:
        return f"{int(millis)}-{int(sequence or 0)}"
    return None


def _decode(raw_id: bytes | str, fields: dict[bytes, bytes]) -> Entry:
    entry_id = text(raw_id)
    event = fields.get(b"event", b"message").decode()
    try:
        data = json.loads(fields.get(b"data", b"{}"))
    except ValueError:
        data = {}
    return entry_id, event, data


async def read_entries(redis: RedisStore, stream: str, after: str | None, until: str = "+") -> list[Entry]:
    """Entries after `after` (exclusive) up to `until` (inclusive), oldest first."""
    start = f"({after}" if after else "-"
    entries: Any = await redis.client.xrange(stream, min=start, max=until)  # redis-py's types are loose here
    return [_decode(raw_id, fields) for raw_id, fields in entries]


class EventLog:
    """Appends to and replays Redis streams; keeps live job snapshots in hashes."""

    def __init__(self, redis: RedisStore, *, maxlen: int, ttl_s: int) -> None:
        self.redis = redis
        self._maxlen = maxlen
        self._ttl_s = ttl_s

    def job_stream(self, job_id: str) -> str:
        return self.redis.key("job", job_id, "events")

    def job_snapshot_key(self, job_id: str) -> str:
        return self.redis.key("job", job_id)

    def final_job_key(self, job_id: str) -> str:
        return self.redis.key("job", job_id, "final")

    def user_stream(self, user_id: str) -> str:
        return self.redis.key("user", user_id, "events")

    async def append(
        self, stream: str, event: str, data: dict[str, Any], *, expire: bool = False,
        snapshot: tuple[str, dict[str, Any]] | None = None, final: bytes | None = None,
        also: Callable[[Any], None] | None = None,
    ) -> str:
        """snapshot: (job id, its snapshot), set after the event in the same round trip; final: the
        whole job when it is final (b"": it is not, and a copy kept from before a retry goes); also:
        adds commands that must land with the event, or not at all (one MULTI)."""
        pipe = self.redis.client.pipeline(transaction=also is not None)
        pipe.xadd(
            stream,
            {"event": event, "data": json.dumps(data, default=str)},
            maxlen=self._maxlen,
            approximate=True,
        )
        if expire:
            pipe.expire(stream, self._ttl_s)
        if snapshot is not None:
            self._put_snapshot(pipe, *snapshot, expire=expire)
            if final is not None:
                self._put_final(pipe, snapshot[0], final)
        if also is not None:
            also(pipe)
        results = await pipe.execute()
        entry_id = results[0]
        return text(entry_id)

    async def replay(self, stream: str, after: str | None) -> list[Entry]:
        return await read_entries(self.redis, stream, after)

    async def set_snapshot(self, job_id: str, snapshot: dict[str, Any], *, expire: bool = False) -> None:
        pipe = self.redis.client.pipeline(transaction=False)
        self._put_snapshot(pipe, job_id, snapshot, expire=expire)
        await pipe.execute()

    def _put_snapshot(self, pipe: Any, job_id: str, snapshot: dict[str, Any], *, expire: bool) -> None:
        key = self.job_snapshot_key(job_id)
        pipe.set(key, json.dumps(snapshot, default=str))
        if expire:
            pipe.expire(key, self._ttl_s)

    def _put_final(self, pipe: Any, job_id: str, final: bytes) -> None:
        if final:
            pipe.set(self.final_job_key(job_id), final, ex=self._ttl_s)
        else:
            pipe.delete(self.final_job_key(job_id))

    async def final_job(self, job_id: str) -> bytes | None:
        """The final job's copy append() kept (None: none kept, or it expired)."""
        raw = await self.redis.client.get(self.final_job_key(job_id))
        return raw.encode() if isinstance(raw, str) else raw

    async def forget_final_job(self, job_id: str) -> None:
        await self.redis.client.delete(self.final_job_key(job_id))

    async def snapshot(self, job_id: str) -> dict[str, Any] | None:
        raw = await self.redis.client.get(self.job_snapshot_key(job_id))
        return json.loads(raw) if raw else None

    async def expire_job(self, job_id: str) -> None:
        pipe = self.redis.client.pipeline(transaction=False)
        pipe.expire(self.job_stream(job_id), self._ttl_s)
        pipe.expire(self.job_snapshot_key(job_id), self._ttl_s)
        pipe.expire(self.final_job_key(job_id), self._ttl_s)
        await pipe.execute()


class SessionEnds:
    """Sign-outs announced to every instance (Redis pub/sub), which close that person's streams."""

    CHANNEL = "sessions:ended"

    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    async def publish(self, user_id: str) -> None:
        await self._redis.client.publish(self._redis.key(self.CHANNEL), user_id.encode())

    async def listen(self, on_end: Callable[[str], None]) -> None:
        """Call on_end(user_id) for each sign-out, until cancelled. A sign-out announced while Redis
        was away is not heard: its streams' tokens are refused anyway when the streams reconnect."""
        await self._redis.listen(
            [self._redis.key(self.CHANNEL)], lambda _channel, data: on_end(data.decode()), "sign-out"
        )


class Subscriber(Protocol):
    """Something that receives encoded events (an SSE connection) for someone (user_id)."""

    last_id: str
    user_id: str | None
    accepts: StreamFilter | None  # None: every event of the stream

    def deliver(self, entry_id: str, frame: Frame, terminal: bool) -> bool:
        """Write one encoded event; False when the subscriber is gone or too slow and is dropped."""
        ...

    def ping(self, frame: Frame) -> bool: ...

    def close(self) -> None: ...


Encoder = Callable[[Entry], tuple[Frame, bool]]  # -> (frame, terminal)


def _wants(subscriber: Subscriber, entry: Entry) -> bool:
    return subscriber.accepts is None or subscriber.accepts(entry[1], entry[2])


class EventHub:
    """One Redis reader per process for every SSE client; one loop writes pre-encoded bytes."""

    def __init__(self, redis: RedisStore, encode: Encoder, *, ping_s: float, ping_frame: Frame) -> None:
        self._redis = redis
        self._encode = encode
        self._ping_s = ping_s
        self._ping_frame = ping_frame
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._cursors: dict[str, str] = {}
        self._pending: list[tuple[str, Subscriber]] = []
        self._ahead: dict[str, set[Subscriber]] = {}  # admitted, but their replay went past the cursor
        self._wake = asyncio.Event()

    @property
    def subscriber_count(self) -> int:
        admitted = sum(len(s) for s in self._subscribers.values()) + sum(len(s) for s in self._ahead.values())
        return admitted + len(self._pending)

    def subscribe(self, stream: str, subscriber: Subscriber) -> None:
        self._pending.append((stream, subscriber))
        self._wake.set()

    def close_all(self) -> None:
        """End every stream (server shutdown); clients reconnect elsewhere and replay."""
        for group in (self._subscribers, self._ahead):
            for watchers in group.values():
                for subscriber in watchers:
                    subscriber.close()
            group.clear()
        for _, subscriber in self._pending:
            subscriber.close()
        self._pending.clear()

    def close_user(self, user_id: str) -> None:
        """End every stream of one person (signed out everywhere, deactivated): they reconnect only
        with a new sign-in."""
        for group in (self._subscribers, self._ahead):
            for watchers in group.values():
                for subscriber in [s for s in watchers if s.user_id == user_id]:
                    subscriber.close()
                    watchers.discard(subscriber)
        for _, subscriber in self._pending:
            if subscriber.user_id == user_id:
                subscriber.close()
        self._pending = [(s, sub) for s, sub in self._pending if sub.user_id != user_id]

    def unsubscribe(self, stream: str, subscriber: Subscriber) -> None:
        self._pending = [(s, sub) for s, sub in self._pending if sub is not subscriber]
        for group in (self._subscribers, self._ahead):
            watchers = group.get(stream)
            if watchers is not None:
                watchers.discard(subscriber)

    async def run(self) -> None:
        next_ping = asyncio.get_running_loop().time() + self._ping_s
        while True:
            stop_if_cancelled()
            try:
                await self._admit_pending()
                self._forget_idle_streams()
                if not self._cursors:
                    self._wake.clear()
                    async with asyncio.timeout(self._ping_s):  # not wait_for: it can swallow a cancel on 3.11
                        await self._wake.wait()
                else:
                    streams: Any = dict(self._cursors)
                    response: Any = await self._redis.client.xread(
                        streams, count=READ_COUNT, block=READ_BLOCK_MS
                    )
                    for raw_stream, entries in response or []:
                        stream = text(raw_stream)
                        self._broadcast(stream, [_decode(raw_id, fields) for raw_id, fields in entries])
            except TimeoutError:
                pass
            except RedisError as exc:
                log.warning("event hub cannot read Redis; retrying", extra={"error": repr(exc)[:200]})
                await asyncio.sleep(1)
            now = asyncio.get_running_loop().time()
            if now >= next_ping:
                self._ping_all()
                next_ping = now + self._ping_s

    async def _admit_pending(self) -> None:
        while self._pending:
            # taken off the list only once admitted: if Redis fails half-way, the rest wait for the next round
            stream, subscriber = self._pending[0]
            await self._admit(stream, subscriber)
            if self._pending and self._pending[0][1] is subscriber:
                self._pending.pop(0)

    async def _admit(self, stream: str, subscriber: Subscriber) -> None:
        cursor = self._cursors.get(stream)
        if cursor is None:
            self._cursors[stream] = subscriber.last_id or "0-0"
        elif stream_id(cursor) > stream_id(subscriber.last_id or "0-0"):
            # others are further along: send this one what it has not seen, up to the cursor
            backlog = await read_entries(self._redis, stream, subscriber.last_id or None, until=cursor)
            if not self._deliver_all(subscriber, backlog):
                return
        elif stream_id(cursor) < stream_id(subscriber.last_id or "0-0"):
            # it replayed further than the hub has read: hold it back until the hub catches up
            self._ahead.setdefault(stream, set()).add(subscriber)
            return
        self._subscribers.setdefault(stream, set()).add(subscriber)

    def _forget_idle_streams(self) -> None:
        for stream in [s for s in self._cursors if not self._subscribers.get(s) and not self._ahead.get(s)]:
            if not any(s == stream for s, _ in self._pending):
                self._cursors.pop(stream, None)
                self._subscribers.pop(stream, None)
                self._ahead.pop(stream, None)

    def _deliver_all(self, subscriber: Subscriber, entries: list[Entry]) -> bool:
        for entry in entries:
            if stream_id(entry[0]) <= stream_id(subscriber.last_id or "0-0") or not _wants(subscriber, entry):
                continue
            frame, terminal = self._encode(entry)
            if not subscriber.deliver(entry[0], frame, terminal) or terminal:
                return False
        return True

    def _broadcast(self, stream: str, entries: list[Entry]) -> None:
        watchers = self._subscribers.get(stream, set())
        ahead = self._ahead.get(stream)
        for entry in entries:
            frame, terminal = self._encode(entry)
            dropped = [s for s in watchers if _wants(s, entry) and not s.deliver(entry[0], frame, terminal)]
            if terminal:
                watchers.clear()
            for subscriber in dropped:
                watchers.discard(subscriber)
            if ahead:
                position = stream_id(entry[0])
                for subscriber in list(ahead):  # these replayed past the hub: skip what they have
                    if position <= stream_id(subscriber.last_id):
                        continue
                    ahead.discard(subscriber)
                    if not _wants(subscriber, entry) or (subscriber.deliver(entry[0], frame, terminal) and not terminal):
                        watchers.add(subscriber)
            self._cursors[stream] = entry[0]

    def _ping_all(self) -> None:
        for group in (self._subscribers, self._ahead):
            for watchers in group.values():
                for subscriber in list(watchers):
                    if not subscriber.ping(self._ping_frame):
                        watchers.discard(subscriber)
