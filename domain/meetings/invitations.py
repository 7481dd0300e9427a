"""Meeting mail: invitations (REQUEST), changes (REQUEST, higher SEQUENCE) and cancellations
(CANCEL), each with the meeting as an iCalendar attachment, to the attendees who want them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import attrs

from domain.accounts.models import User
from domain.accounts.people import People
from domain.mail.letters import Letter, Sender, footer
from domain.mail.service import MailService
from domain.meetings.ical import invitation_ical
from domain.meetings.models import NOTIFIED_FIELDS, Meeting, MeetingStatus


class Invitations:
    def __init__(self, mail: MailService, people: People) -> None:
        self._mail = mail
        self._people = people

    async def meeting_changed(
        self, actor: User, before: Meeting | None, after: Meeting, changed: Iterable[str] = ()
    ) -> None:
        """Mail what changed to whom it concerns (never to the person who did it)."""
        if not self._mail.enabled:
            return
        new = set(after.attendee_ids)
        old = set(before.attendee_ids) if before is not None else set()
        plan: list[tuple[str, str]] = []  # (user id, change)
        if after.status is MeetingStatus.CANCELLED:
            plan += [(u, "cancelled") for u in after.attendee_ids]
        else:
            plan += [(u, "invited") for u in after.attendee_ids if u not in old]
            plan += [(u, "uninvited") for u in (before.attendee_ids if before else []) if u not in new]
            if set(changed) & NOTIFIED_FIELDS:
                plan += [(u, "changed") for u in after.attendee_ids if u in old]
        plan = [(u, change) for u, change in plan if u != actor.id]
        if not plan:
            return
        people = await self._people.get_many(sorted({after.created_by, *new, *old}))
        wanted = await self._people.notification_settings(sorted({u for u, _ in plan}))
        organiser = people.get(after.created_by)
        facts = MeetingFacts(
            title=after.title, starts_at=after.starts_at, duration_minutes=after.duration_minutes,
            location=after.location, link=after.link, agenda=after.agenda,
            organiser=organiser.name if organiser else "LabHub", meeting_id=after.id,
        )  # fmt: skip
        request: bytes | None = None  # every invitation and change carries the same calendar: built once
        letters = []
        for user_id, change in plan:
            user = people.get(user_id)
            if user is None or not user.active or not wanted[user_id].meeting_invitations:
                continue
            if change in {"cancelled", "uninvited"}:
                method = "CANCEL"  # for this attendee alone
                gone = attrs.evolve(after, status=MeetingStatus.CANCELLED, attendee_ids=[user_id])
                ical = invitation_ical(gone, people, method=method)
            else:
                method = "REQUEST"
                request = request or invitation_ical(after, people, method=method)
                ical = request
            letter = meeting_letter(self._mail.sender, user, facts, change, ical, method)
            letters.append((user, f"meeting.{change}", letter))
        await self._mail.send(letters)


@attrs.frozen
class MeetingFacts:
    """What an invitation says about a meeting, in the recipient's words."""

    title: str
    starts_at: datetime
    duration_minutes: int
    location: str
    link: str | None
    agenda: str
    organiser: str
    meeting_id: str


INVITATION_SUBJECT = {"invited": "Invitation", "changed": "Updated", "cancelled": "Cancelled",
                      "uninvited": "No longer invited"}  # fmt: skip


def meeting_letter(
    sender: Sender, user: User, facts: MeetingFacts, change: str, ical: bytes, method: str
) -> Letter:
    when = sender.local(facts.starts_at)
    lines = [f"Hello {user.name},"]
    if change == "invited":
        lines.append(f"{facts.organiser} invites you to “{facts.title}”.")
    elif change == "changed":
        lines.append(f"“{facts.title}” has changed; this is how it stands now.")
    elif change == "cancelled":
        lines.append(f"“{facts.title}” has been cancelled.")
    else:
        lines.append(f"You are no longer invited to “{facts.title}”.")
    details = [f"When: {when}, {facts.duration_minutes} min"]
    if facts.location:
        details.append(f"Where: {facts.location}")
    if facts.link:
        details.append(f"Online: {facts.link}")
    details.append(f"Organiser: {facts.organiser}")
    lines.append("\n".join(details))
    if facts.agenda and change in {"invited", "changed"}:
        lines.append(f"Agenda:\n{facts.agenda}")
    if method == "REQUEST":
        lines.append(
            "Answer in LabHub (an answer from your calendar app goes to the organiser by mail; "
            "LabHub does not read it back):"
        )
    else:
        lines.append("The meeting in LabHub:")
    lines.append(sender.link(f"/meetings/{facts.meeting_id}"))
    lines.append(footer(sender, "meeting invitations"))
    subject = f"{INVITATION_SUBJECT[change]}: {facts.title} ({when})"
    return Letter(subject=subject, paragraphs=lines, calendar=ical, calendar_method=method)
