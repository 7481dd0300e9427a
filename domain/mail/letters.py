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


def footer(sender: Sender, what: str) -> str:
    """The last line of a notice someone can turn off."""
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
