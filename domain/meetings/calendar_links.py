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

from domain.accounts.jwt import hash_secret
from domain.accounts.models import User
from domain.accounts.people import People
from domain.accounts.service import AccountsService
from domain.core.clock import utcnow
from domain.core.errors import NotFound, Unauthenticated
from domain.meetings.models import Meeting
from domain.meetings.store import CalendarLinkStore, MeetingStore
from domain.projects.service import ProjectGate

SECRET_PREFIX = "lhc_"  # noqa: S105 - the prefix of every link secret, not a secret
PAST_DAYS = 90


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
        self, links: CalendarLinkStore, accounts: AccountsService, gate: ProjectGate, meetings: MeetingStore,
        users: People,
    ) -> None:  # fmt: skip
        self._links = links
        self._accounts = accounts
        self._gate = gate
        self._meetings = meetings
        self._users = users

    async def create(self, actor: User, base_url: str) -> CalendarLink:
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        await self._links.replace(actor.id, hash_secret(secret), now)
        return CalendarLink(url=f"{base_url}/api/calendar/{secret}.ics", created_at=now)

    async def remove(self, actor: User) -> None:
        await self._links.remove(actor.id)

    async def feed(self, secret: str) -> UserFeed:
        """The meetings of every project the link's user belongs to: upcoming, and the last 90 days."""
        owner = await self._links.owner(hash_secret(secret)) if secret.startswith(SECRET_PREFIX) else None
        if owner is None:
            raise NotFound("no calendar has this link; make a new one in LabHub")
        try:
            user = await self._accounts.get_active(owner)
        except Unauthenticated:
            raise NotFound("no calendar has this link; make a new one in LabHub") from None
        project_ids = await self._gate.ids_of_member(user.id)
        since = utcnow() - timedelta(days=PAST_DAYS)
        meetings = await self._meetings.feed_of_projects(project_ids, since) if project_ids else []
        people_ids = sorted({u for m in meetings for u in (m.created_by, *m.attendee_ids)})
        return UserFeed(user, meetings, await self._users.get_many(people_ids))
