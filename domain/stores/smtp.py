"""Sending one message to the lab's SMTP relay with aiosmtplib."""

from __future__ import annotations

import aiosmtplib

from domain.settings import MailSettings


class SendFailed(Exception):
    """The relay did not take the message; `permanent` when trying again cannot help (a 5xx)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def _code_of(exc: aiosmtplib.SMTPException) -> int | None:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        return exc.recipients[0].code
    return getattr(exc, "code", None)


class SmtpTransport:
    def __init__(self, settings: MailSettings) -> None:
        self._settings = settings

    async def send(self, message: bytes, *, sender: str, recipient: str) -> None:
        s = self._settings
        try:
            await aiosmtplib.send(
                message, sender=sender, recipients=[recipient], hostname=s.host, port=s.smtp_port,
                username=s.username or None, password=s.password or None, use_tls=s.security == "tls",
                start_tls=s.security == "starttls", timeout=s.timeout_s,
                cert_bundle=s.ca_file or None,
            )  # fmt: skip
        except (
            aiosmtplib.SMTPConnectError,
            aiosmtplib.SMTPTimeoutError,
            aiosmtplib.SMTPServerDisconnected,
        ) as exc:
            raise SendFailed(f"cannot reach {s.host}:{s.smtp_port}: {exc}", permanent=False) from None
        except aiosmtplib.SMTPException as exc:
            code = _code_of(exc)
            detail = f"{code} {exc}" if code else str(exc)
            # a 5xx answer is the relay's final word (unknown recipient, refused sender, login wrong)
            raise SendFailed(
                f"{type(exc).__name__}: {detail}", permanent=code is not None and 500 <= code < 600
            ) from None
        except (OSError, TimeoutError) as exc:
            raise SendFailed(f"cannot reach {s.host}:{s.smtp_port}: {exc}", permanent=False) from None
