"""The mail LabHub writes: reset links, meeting invitations (iTIP) and job notices.

Every mail is plain text with an HTML alternative (every user-supplied string escaped), carries a
List-Unsubscribe header pointing at the person's notification settings, and holds no secret but
the one link it is about. Invitations add a `text/calendar; method=…` alternative, the form
Outlook, Thunderbird, Apple Mail and Gmail turn into "accept / decline" and an in-place update.
Messages are built whole when they are queued, so what is sent is what the change said.
"""

from __future__ import annotations

import html
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

import attrs

from domain.accounts.models import User

SETTINGS_PATH = "/account#notifications"


@attrs.frozen
class Sender:
    address: str
    name: str
    base_url: str  # http.public_url (or the listen address): every link in mail starts with it
    zone: ZoneInfo  # the lab's time zone: times in mail are the lab's local times

    def link(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def local(self, at: datetime) -> str:
        return f"{at.astimezone(self.zone):%a %d %b %Y, %H:%M} ({self.zone.key})"


@attrs.frozen
class Letter:
    """What a mail says, before it becomes a MIME message."""

    subject: str
    paragraphs: list[str]  # plain text; a paragraph that is a URL becomes a link in the HTML part
    calendar: bytes | None = None
    calendar_method: str | None = None


def one_line(text: str, limit: int = 200) -> str:
    """A user-supplied string fit for a header: one line (header injection needs a line break)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _html(letter: Letter) -> str:
    parts = []
    for paragraph in letter.paragraphs:
        escaped = html.escape(paragraph)
        if paragraph.startswith(("https://", "http://")) and " " not in paragraph:
            parts.append(f'<p><a href="{escaped}">{escaped}</a></p>')
        else:
            parts.append("<p>" + escaped.replace("\n", "<br>\n") + "</p>")
    body = "\n".join(parts)
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>'
        f"{html.escape(letter.subject)}</title></head>\n<body>\n{body}\n</body></html>\n"
    )


def build_message(sender: Sender, recipient: User, letter: Letter, *, now: datetime) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(display_name=one_line(sender.name), addr_spec=sender.address)
    message["To"] = Address(display_name=one_line(recipient.name), addr_spec=recipient.email)
    message["Subject"] = one_line(letter.subject, 250)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=sender.address.rpartition("@")[2] or "labhub")
    message["Auto-Submitted"] = "auto-generated"
    message["List-Unsubscribe"] = f"<{sender.link(SETTINGS_PATH)}>"
    message.set_content("\n\n".join(letter.paragraphs) + "\n")
    message.add_alternative(_html(letter), subtype="html")
    if letter.calendar is not None:
        message.add_alternative(
            letter.calendar.decode(),
            subtype="calendar",
            params={"method": letter.calendar_method or "PUBLISH"},
        )
    return message


def _footer(sender: Sender, what: str) -> str:
    return f"You get {what} because of your LabHub notification settings: {sender.link(SETTINGS_PATH)}"


def reset_letter(sender: Sender, user: User, url: str, expires_at: datetime) -> Letter:
    return Letter(
        subject="Reset your LabHub password",
        paragraphs=[
            f"Hello {user.name},",
            f"someone (we hope you) asked to reset the password of the LabHub account {user.email}. "
            f"This link lets you choose a new one; it works once, until {sender.local(expires_at)}:",
            url,
            "If you did not ask for this, ignore this mail: your password stays as it is.",
        ],
    )


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
    lines.append(_footer(sender, "meeting invitations"))
    subject = f"{INVITATION_SUBJECT[change]}: {facts.title} ({when})"
    return Letter(subject=subject, paragraphs=lines, calendar=ical, calendar_method=method)


@attrs.frozen
class JobFacts:
    title: str  # the kind's title, e.g. "Ingestion"
    succeeded: bool
    project: str
    error: str | None
    ran_s: float | None
    job_id: str


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def job_letter(sender: Sender, user: User, facts: JobFacts) -> Letter:
    verb = "finished" if facts.succeeded else "failed"
    lines = [f"Hello {user.name},", f"your {facts.title.lower()} in the project “{facts.project}” {verb}."]
    if facts.ran_s is not None:
        lines.append(f"It ran for {_duration(facts.ran_s)}.")
    if facts.error:
        lines.append(f"What went wrong: {facts.error}")
    lines += ["Your jobs in LabHub:", sender.link("/jobs"), _footer(sender, "job notices")]
    return Letter(subject=f"{facts.title} {verb} in {facts.project}", paragraphs=lines)
