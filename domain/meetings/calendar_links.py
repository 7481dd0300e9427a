"""Calendar subscription links: a secret URL a calendar app polls for a user's meetings.

Calendar apps cannot send an Authorization header, so the secret in the link is the credential, and
it reaches exactly one thing: that user's feed. One link per user; making a new one replaces the old
(which stops at once); only its SHA-256 is stored. The feed follows membership live: it is built at
each fetch from the projects the user belongs to now.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import attrs
from bson import ObjectId

from domain.accounts.jwt import hash_secret
from domain.accounts.models import User
from domain.accounts.service import AccountsService
from domain.accounts.store import UserStore
from domain.core.clock import utcnow
from domain.core.errors import NotFound, Unauthenticated
from domain.infra.mongo import Database, index
from domain.meetings.models import Meeting
from domain.meetings.store import MeetingStore
from domain.projects.store import ProjectStore

SECRET_PREFIX = "lhc_"  # noqa: S105 - the prefix of every link secret, not a secret
PAST_DAYS = 90
index("calendar_links", ("user_id", 1), unique=True, name="one_per_user")
index("calendar_links", ("secret_hash", 1), unique=True, name="secret_hash_unique")


@attrs.frozen
class CalendarLink:
    """A new link: the secret is part of the url and shown this once."""

    url: str
    created_at: datetime


@attrs.frozen
class UserFeed:
    user: User
    meetings: list[Meeting]
    people: dict[str, User]


class CalendarLinks:
    def __init__(
        self, db: Database, accounts: AccountsService, projects: ProjectStore, meetings: MeetingStore,
        users: UserStore,
    ) -> None:  # fmt: skip
        self._links = db["calendar_links"]
        self._accounts = accounts
        self._projects = projects
        self._meetings = meetings
        self._users = users

    async def create(self, actor: User, base_url: str) -> CalendarLink:
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        await self._links.update_one(
            {"user_id": ObjectId(actor.id)},
            {"$set": {"secret_hash": hash_secret(secret), "created_at": now}},
            upsert=True,
        )
        return CalendarLink(url=f"{base_url}/api/calendar/{secret}.ics", created_at=now)

    async def remove(self, actor: User) -> None:
        await self._links.delete_one({"user_id": ObjectId(actor.id)})

    async def feed(self, secret: str) -> UserFeed:
        """The meetings of every project the link's user belongs to: upcoming, and the last 90 days."""
        doc = (
            await self._links.find_one({"secret_hash": hash_secret(secret)})
            if secret.startswith(SECRET_PREFIX)
            else None
        )
        if doc is None:
            raise NotFound("no calendar has this link; make a new one in LabHub")
        try:
            user = await self._accounts.get_active(str(doc["user_id"]))
        except Unauthenticated:
            raise NotFound("no calendar has this link; make a new one in LabHub") from None
        project_ids = await self._projects.ids_of_member(user.id)
        since = utcnow() - timedelta(days=PAST_DAYS)
        meetings = await self._meetings.feed_of_projects(project_ids, since) if project_ids else []
        people_ids = sorted({u for m in meetings for u in (m.created_by, *m.attendee_ids)})
        return UserFeed(user, meetings, await self._users.get_many(people_ids))
