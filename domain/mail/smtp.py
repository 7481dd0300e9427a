"""Sending mail to the lab's SMTP relay with aiosmtplib, over one connection per batch."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiosmtplib

from domain.core.settings import MailSettings

# failures that say the connection is gone or never came: the next message opens a new one
_CONNECTION_ERRORS = (
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPTimeoutError,
    aiosmtplib.SMTPServerDisconnected,
)


class SendFailed(Exception):
    """The relay did not take the message; `permanent` when trying again cannot help (a 5xx),
    `unreachable` when no conversation with the relay was possible at all."""

    def __init__(self, message: str, *, permanent: bool, unreachable: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.unreachable = unreachable


def _code_of(exc: aiosmtplib.SMTPException) -> int | None:
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        return exc.recipients[0].code
    return getattr(exc, "code", None)


class SmtpSession:
    """One conversation with the relay, opened on first use and again after it dropped."""

    def __init__(self, settings: MailSettings) -> None:
        self._settings = settings
        self._smtp: aiosmtplib.SMTP | None = None

    async def _connected(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        s = self._settings
        self._smtp = aiosmtplib.SMTP(
            hostname=s.host, port=s.smtp_port, username=s.username or None, password=s.password or None,
            use_tls=s.security == "tls", start_tls=s.security == "starttls", timeout=s.timeout_s,
            cert_bundle=s.ca_file or None,
        )  # fmt: skip
        await self._smtp.connect()  # with STARTTLS and the login, as configured
        return self._smtp

    async def send(self, message: bytes, *, sender: str, recipient: str) -> None:
        where = f"{self._settings.host}:{self._settings.smtp_port}"
        try:
            smtp = await self._connected()
            await smtp.sendmail(sender, [recipient], message)
        except _CONNECTION_ERRORS as exc:
            await self.close()
            raise SendFailed(f"cannot reach {where}: {exc}", permanent=False, unreachable=True) from None
        except aiosmtplib.SMTPException as exc:
            code = _code_of(exc)
            detail = f"{code} {exc}" if code else str(exc)
            if code is None:
                await self.close()
            # a 5xx answer is the relay's final word (unknown recipient, refused sender, login wrong)
            raise SendFailed(
                f"{type(exc).__name__}: {detail}", permanent=code is not None and 500 <= code < 600
            ) from None
        except (OSError, TimeoutError) as exc:
            await self.close()
            raise SendFailed(f"cannot reach {where}: {exc}", permanent=False, unreachable=True) from None

    async def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await smtp.quit()
            if smtp.is_connected:
                smtp.close()


class SmtpTransport:
    def __init__(self, settings: MailSettings) -> None:
        self._settings = settings

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator[SmtpSession]:
        session = SmtpSession(self._settings)
        try:
            yield session
        finally:
            await asyncio.shield(session.close())
