"""A real SMTP server for tests (aiosmtpd on a random port) and a reader for what it received."""

from __future__ import annotations

import asyncio
import email
import ssl
import threading
from email.message import EmailMessage
from email.policy import default

import attrs
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from ops.children import free_port


@attrs.frozen
class Received:
    sender: str
    recipients: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                return str(part.get_content())
        raise AssertionError(f"no {content_type} part in {self.message['Subject']!r}")


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self._box = box

    async def handle_RCPT(self, _server, _session, envelope, address, _options):
        if address in self._box.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server, _session, envelope):
        with self._box.lock:
            self._box.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


class Mailbox:
    """An SMTP server that keeps every message; stop() and start() again on the same port to play an outage.

    security "starttls" or "tls" (with a server certificate in context) also asks for a login."""

    def __init__(
        self,
        security: str = "none",
        context: ssl.SSLContext | None = None,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.received: list[Received] = []
        self.refuse: set[str] = set()
        self.logins: list[str] = []
        self.lock = threading.Lock()
        self._security = security
        self._context = context
        self._login = login
        self._controller: Controller | None = None

    def _authenticate(self, _server, _session, _envelope, _mechanism, data) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == self._login
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)

    def start(self) -> None:
        options: dict[str, object] = {}
        if self._security == "starttls":
            options = {"tls_context": self._context, "require_starttls": True}
        elif self._security == "tls":
            # aiosmtpd counts only STARTTLS as TLS for AUTH; the whole connection is TLS here
            options = {"ssl_context": self._context, "auth_require_tls": False}
        if self._login is not None:
            options |= {"authenticator": self._authenticate, "auth_required": True}
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [m for m in self.received if address in m.recipients]

    async def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Received]:
        """Wait until at least count messages arrived; return them all."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(self.received)} of {count} mails arrived within {timeout_s} s")
            await asyncio.sleep(0.05)


def mail_settings(port: int, **extra: object) -> dict[str, object]:
    """[mail] settings that send to a test mailbox quickly (short retries, short polls)."""
    return {
        "enabled": True, "host": "127.0.0.1", "port": port, "security": "none",
        "from_address": "labhub@lab.example", "from_name": "Lab Hub", "retry_base_s": 0.2, "retry_max_s": 1.0,
        "poll_s": 0.5, "timeout_s": 10.0, **extra,
    }  # fmt: skip
