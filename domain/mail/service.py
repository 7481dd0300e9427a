"""Mail: who is told what by email, queued in the durable outbox and sent in the background.

Requests and jobs only queue (one MongoDB insert next to the change that causes the mail); one
background task per instance sends from the outbox with retries and back-off, so a slow or absent
relay never slows a request, a restart loses no mail, and a mail is sent once. The one window left
is a crash between the relay's "250 OK" and the outbox update: that mail is sent again after its
lease runs out (at least once, never lost), with the same Message-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

import attrs

from domain.accounts.models import User
from domain.accounts.store import UserStore
from domain.core.background import stop_if_cancelled
from domain.core.clock import utcnow
from domain.core.settings import MailSettings
from domain.jobs.models import Job, JobStatus
from domain.mail.letters import (
    JobFacts,
    Letter,
    MeetingFacts,
    Sender,
    build_message,
    job_letter,
    meeting_letter,
    reset_letter,
)
from domain.mail.outbox import MailFailure, MailOutbox, NewMail, OutboxMail
from domain.mail.smtp import SendFailed, SmtpSession, SmtpTransport
from domain.meetings.ical import invitation_ical
from domain.meetings.models import NOTIFIED_FIELDS, Meeting, MeetingStatus
from domain.projects.store import ProjectStore

log = logging.getLogger("labhub.mail")

PURGE_EVERY_S = 3600.0
BATCH = 25  # mails claimed and sent over one SMTP connection at a time


@attrs.frozen
class MailView:
    """What heads see of mail at /api/system: counts by status and the latest troubles."""

    enabled: bool
    counts: dict[str, int]
    troubles: list[MailFailure]


class MailService:
    def __init__(
        self, settings: MailSettings, outbox: MailOutbox, users: UserStore, projects: ProjectStore,
        transport: SmtpTransport, sender: Sender,
    ) -> None:  # fmt: skip
        self._settings = settings
        self._outbox = outbox
        self._users = users
        self._projects = projects
        self._transport = transport
        self._sender = sender
        self._wake = asyncio.Event()
        self._purged_at = 0.0

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    # -- queueing ---------------------------------------------------------------------------------

    async def _queue(self, letters: list[tuple[User, str, Letter]]) -> None:
        """Queue the mails one change causes, in one insert."""
        if not letters:
            return
        now = utcnow()
        mails = [
            NewMail(
                kind=kind,
                user_id=user.id,
                sender=self._sender.address,
                recipient=user.email,
                message=bytes(build_message(self._sender, user, letter, now=now)),
            )
            for user, kind, letter in letters
        ]
        ids = await self._outbox.queue(mails, now)
        log.info("mail queued", extra={"mail_ids": ids, "kinds": sorted({m.kind for m in mails})})
        self._wake.set()

    async def reset_link(self, user: User, url: str, expires_at: datetime) -> None:
        """Always sent (nobody can turn reset links off)."""
        if self.enabled:
            await self._queue([(user, "password_reset", reset_letter(self._sender, user, url, expires_at))])

    async def meeting_changed(
        self, actor: User, before: Meeting | None, after: Meeting, changed: Iterable[str] = ()
    ) -> None:
        """Invitations (REQUEST), changes (REQUEST, higher SEQUENCE) and cancellations (CANCEL)."""
        if not self.enabled:
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
        plan = [(u, change) for u, change in plan if u != actor.id]  # nobody is mailed what they did
        if not plan:
            return
        people = await self._users.get_many(sorted({after.created_by, *new, *old}))
        wanted = await self._users.notification_settings(sorted({u for u, _ in plan}))
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
            letters.append(
                (user, f"meeting.{change}", meeting_letter(self._sender, user, facts, change, ical, method))
            )
        await self._queue(letters)

    async def job_finished(self, job: Job, title: str) -> None:
        """A job that failed, or ran longer than job_notice_after_s, mails its owner."""
        if not self.enabled or job.status not in {JobStatus.SUCCEEDED, JobStatus.FAILED}:
            return
        ran_s = (
            (job.finished_at - job.started_at).total_seconds() if job.finished_at and job.started_at else None
        )
        failed = job.status is JobStatus.FAILED
        if not failed and (ran_s is None or ran_s <= self._settings.job_notice_after_s):
            return
        user = await self._users.get(job.owner_id)
        if user is None or not user.active:
            return
        if not (await self._users.notification_settings([user.id]))[user.id].job_notices:
            return
        project = await self._projects.get(job.project_id)
        facts = JobFacts(
            title=title, succeeded=not failed, project=project.name if project else "(deleted)",
            error=job.error.message if job.error else None, ran_s=ran_s, job_id=job.id,
        )  # fmt: skip
        await self._queue([(user, "job", job_letter(self._sender, user, facts))])

    # -- sending ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """The sender: drains the outbox, then sleeps until woken, the next retry, or poll_s."""
        while True:
            stop_if_cancelled()
            self._wake.clear()
            try:
                await self._drain()
                await self._purge()
                wait = await self._until_next()
            except asyncio.CancelledError:
                raise
            except Exception:  # the sender must outlive any one failure (MongoDB down, say)
                log.exception("mail outbox check failed; trying again")
                wait = self._settings.poll_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):  # not wait_for: it can swallow a cancel on 3.11
                    await self._wake.wait()

    async def _until_next(self) -> float:
        wait = self._settings.poll_s
        due = await self._outbox.next_due()
        if due is not None:
            wait = min(wait, max(0.0, (due - utcnow()).total_seconds()) + 0.01)
        return wait

    async def _drain(self) -> None:
        """Claim due mail in batches and send each batch over one SMTP connection."""
        lease_s = (
            self._settings.timeout_s * (BATCH + 2) + 30
        )  # long enough for a batch that meets every timeout
        while batch := await self._outbox.claim(now=utcnow(), lease_s=lease_s, limit=BATCH):
            async with self._transport.session() as session:
                for done, mail in enumerate(batch):
                    try:
                        failure = await self._send(session, mail)
                    except asyncio.CancelledError:
                        # shutting down mid-conversation: the relay did not confirm, so this mail and
                        # the rest of the batch go back at once, not after their lease
                        for unsent in batch[done:]:
                            await asyncio.shield(
                                self._outbox.retry(unsent, "interrupted by a shutdown", utcnow())
                            )
                        raise
                    if failure is not None and failure.unreachable:
                        for unsent in batch[done + 1 :]:  # the relay is down: the rest wait with this one
                            await self._failed(unsent, failure)
                        break

    async def _send(self, session: SmtpSession, mail: OutboxMail) -> SendFailed | None:
        try:
            await session.send(mail.message, sender=mail.sender, recipient=mail.recipient)
        except SendFailed as exc:
            await self._failed(mail, exc)
            return exc
        await self._outbox.sent(mail, utcnow())
        log.info("mail sent", extra={"mail_id": mail.id, "kind": mail.kind, "attempts": mail.attempts})
        return None

    async def _failed(self, mail: OutboxMail, exc: SendFailed) -> None:
        s = self._settings
        if exc.permanent or mail.attempts >= s.max_attempts:
            await self._outbox.give_up(mail, str(exc), utcnow())
            log.error(
                "mail given up",
                extra={"mail_id": mail.id, "kind": mail.kind, "attempts": mail.attempts, "error": str(exc)},
            )
            return
        delay = min(s.retry_max_s, s.retry_base_s * 2 ** (mail.attempts - 1))
        await self._outbox.retry(mail, str(exc), utcnow() + timedelta(seconds=delay))
        log.warning(
            "mail not sent; will try again",
            extra={"mail_id": mail.id, "kind": mail.kind, "attempts": mail.attempts, "retry_in_s": delay,
                   "error": str(exc)},
        )  # fmt: skip

    async def _purge(self) -> None:
        loop = asyncio.get_running_loop()
        if loop.time() - self._purged_at < PURGE_EVERY_S:
            return
        self._purged_at = loop.time()
        await self._outbox.purge(utcnow() - timedelta(days=self._settings.keep_sent_days))

    async def view(self) -> MailView:
        return MailView(
            enabled=self.enabled, counts=await self._outbox.counts(), troubles=await self._outbox.troubles()
        )
