"""Notifications on their way to MongoDB: each is pushed to its user's stream and queued on a Redis
list in one MULTI, and inserted in bulk by a flusher (infra/write_behind.py; docs/architecture.md,
"Writes that wait in Redis"). Their ids are chosen before they wait, so a flush written again
inserts nothing twice."""

from __future__ import annotations

import logging
from typing import Any

import bson
from redis.exceptions import RedisError

from domain.infra.bson_codec import TZ_AWARE
from domain.infra.events import EventLog
from domain.infra.mongo import Document
from domain.infra.write_behind import WriteBehind
from domain.notifications.store import NotificationStore

log = logging.getLogger("labhub.notifications")


class PendingNotifications:
    def __init__(self, events: EventLog, store: NotificationStore) -> None:
        self._events = events
        self._store = store
        self.waiting = WriteBehind(events.redis, "notifications", self.read, store.insert_many)

    async def read(self, key: str) -> list[Document]:
        raw = await self._events.redis.client.lrange(key, 0, -1)
        return [dict(bson.decode(bytes(item), codec_options=TZ_AWARE)) for item in raw]  # type: ignore[arg-type]

    async def send(self, doc: Document, data: dict[str, Any]) -> None:
        """Push the notification (data) to its user's stream and queue its document, together."""
        stream, encoded = self._events.user_stream(str(doc["user_id"])), bson.encode(doc)
        try:
            await self._events.append(
                stream, "notification", data, also=lambda pipe: pipe.rpush(self.waiting.pending, encoded)
            )
        except RedisError:  # stored straight away; the push (Redis still down) fails as it always did
            await self._store.insert(doc)
            await self._events.append(stream, "notification", data)
            return
        self.waiting.added()

    async def flush(self) -> None:
        """Before a read: what waits goes to MongoDB first (Redis down: the read answers from
        MongoDB, and what waits is stored once Redis is back)."""
        try:
            await self.waiting.flush()
        except RedisError as exc:
            log.warning("notifications not flushed before a read", extra={"error": repr(exc)[:200]})
