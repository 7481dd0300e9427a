"""Notifications: per-user messages (a job finished, an invitation...)."""

from __future__ import annotations

from datetime import datetime

import attrs

MAX_TITLE = 200
MAX_BODY = 2000


@attrs.frozen
class Notification:
    id: str
    user_id: str
    category: str
    title: str
    body: str
    link: str | None
    created_at: datetime
    read_at: datetime | None = None
    project_id: str | None = None  # the project it is about: a project-narrowed token sees only its own


@attrs.frozen
class UnreadCount:
    unread: int
