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
from datetime import datetime, timedelta

import attrs

from domain.accounts.models import User
from domain.core.background import stop_if_cancelled
from domain.core.clock import utcnow
from domain.core.settings import MailSettings
from domain.mail.letters import Letter, Sender, build_message, reset_letter
from domain.mail.outbox import MailFailure, MailOutbox, NewMail, OutboxMail
from domain.mail.smtp import SendFailed, SmtpSession, SmtpTransport

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
        self, settings: MailSettings, outbox: MailOutbox, transport: SmtpTransport, sender: Sender
    ) -> None:
        self._settings = settings
        self._outbox = outbox
        self._transport = transport
        self._sender = sender
        self._wake = asyncio.Event()
        self._purged_at = 0.0

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    # -- queueing ---------------------------------------------------------------------------------

    @property
    def sender(self) -> Sender:
        """Who mail comes from, and the links and times a letter shows (letters are built with it)."""
        return self._sender

    async def send(self, letters: list[tuple[User, str, Letter]]) -> None:
        """Queue the mails one change causes, in one insert: (recipient, kind, letter) each. Areas
        build their own letters (meetings/invitations.py, jobs/notices.py) and hand them here."""
        if not self.enabled:
            return
        await self._queue(letters)

    async def _queue(self, letters: list[tuple[User, str, Letter]]) -> None:
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
