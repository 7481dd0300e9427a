"""Notifications service: one call to tell a user something; stored, counted and streamed live.

A notification is pushed to its user's stream and queued in Redis in one round trip (MULTI); it
reaches MongoDB in bulk about a second later (infra/write_behind.py), and every read of a user's
notifications flushes first, so it sees every notification sent before it.
"""

from __future__ import annotations

from typing import Any

import attrs

from domain.accounts.models import User
from domain.core.clock import utcnow
from domain.core.errors import NotFound
from domain.core.pagination import Page, clamp_limit
from domain.infra.bson_codec import from_document
from domain.infra.events import EventLog, StreamFilter
from domain.infra.write_behind import WriteBehind
from domain.notifications.models import MAX_BODY, MAX_TITLE, Notification, UnreadCount
from domain.notifications.pending import PendingNotifications
from domain.notifications.store import NotificationStore
from domain.projects.grant import project_filter


class NotificationsService:
    def __init__(self, store: NotificationStore, events: EventLog) -> None:
        self._store = store
        self._events = events
        self._pending = PendingNotifications(events, store)

    @property
    def waiting(self) -> WriteBehind[Any]:
        """The notifications waiting in Redis (the server runs its flusher)."""
        return self._pending.waiting

    async def notify(
        self, user_id: str, *, project_id: str, category: str, title: str, body: str = "", link: str | None = None
    ) -> Notification:
        """The one call that tells a user something about a project: pushed to their live stream
        and stored (notifications/pending.py)."""
        doc = self._store.new(
            user_id=user_id, project_id=project_id, category=category, title=title[:MAX_TITLE],
            body=body[:MAX_BODY], link=link, created_at=utcnow(),
        )  # fmt: skip
        notification = from_document(Notification, doc)
        await self._pending.send(doc, attrs.asdict(notification))
        return notification

    async def list_for(
        self, user: User, *, unread_only: bool, limit: int | None, cursor: str | None
    ) -> Page[Notification]:
        await self._pending.flush()
        items, next_cursor = await self._store.page(
            user.id, unread_only=unread_only, limit=clamp_limit(limit), cursor=cursor, only_projects=project_filter()
        )
        return Page(items, next_cursor)

    async def unread_count(self, user: User) -> UnreadCount:
        await self._pending.flush()
        return UnreadCount(await self._store.unread_count(user.id, project_filter()))

    async def mark_read(self, user: User, notification_id: str) -> Notification:
        await self._pending.flush()
        notification = await self._store.mark_read(user.id, notification_id, utcnow(), project_filter())
        if notification is None:
            raise NotFound("notification not found")
        await self._push_count(user.id)
        return notification

    async def mark_all_read(self, user: User) -> UnreadCount:
        await self._pending.flush()
        await self._store.mark_all_read(user.id, utcnow(), project_filter())
        await self._push_count(user.id)
        return UnreadCount(0)

    async def _push_count(self, user_id: str) -> None:
        count = await self._store.unread_count(user_id)
        await self._events.append(self._events.user_stream(user_id), "unread", {"unread": count})

    def stream(self, user: User) -> str:
        return self._events.user_stream(user.id)

    @staticmethod
    def stream_filter() -> StreamFilter | None:
        """What a narrowed token's stream may carry: notifications about its projects, and no
        all-project unread counts (it asks GET /api/notifications/unread-count for its own)."""
        projects = project_filter()
        if projects is None:
            return None

        def accepts(event: str, data: dict[str, Any]) -> bool:
            return event == "notification" and data.get("project_id") in projects

        return accepts
