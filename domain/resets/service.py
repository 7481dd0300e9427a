"""Password resets: one-time links a head hands over, or a person asks for by mail.

A link is `{base}/reset#token=<secret>`: the secret sits in the fragment, which browsers never send
to a server, so it reaches no access log; the console's reset page posts it. Only its SHA-256 is
stored, one live link per user (a new one voids the old), using it deletes it (single use), and it
expires after auth.reset_ttl_s. Self-service requests answer the same whatever the address (no
account enumeration) and are limited per address (extra mails are silently not sent) and per
client (429).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

import attrs

from domain.accounts.jwt import hash_secret
from domain.accounts.models import User, check_password, normalize_email
from domain.accounts.people import People
from domain.accounts.service import AccountsService
from domain.core.clock import utcnow
from domain.core.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests
from domain.infra.throttle import LoginThrottle, WindowLimit, client_key
from domain.mail.service import MailService
from domain.resets.store import PasswordResetStore

log = logging.getLogger("labhub.resets")

SECRET_PREFIX = "lhr_"  # noqa: S105 - the prefix of every reset secret, not a secret
RESET_PATH = "/reset#token="
_INVALID = BadRequest(
    "this reset link was already used, has expired or was replaced by a newer one; ask for a new one",
    code="invalid_reset",
)


@attrs.frozen
class ResetLink:
    """A new reset link; the secret is part of the url and shown this once."""

    url: str
    expires_at: datetime


@attrs.frozen
class ResetLimits:
    per_address: WindowLimit
    per_client: WindowLimit


class PasswordResets:
    def __init__(
        self, store: PasswordResetStore, people: People, accounts: AccountsService,
        mail: MailService | None, limits: ResetLimits | None, login_throttle: LoginThrottle | None, *, ttl_s: int,
        mail_base_url: str,
    ) -> None:  # fmt: skip
        self._login_throttle = login_throttle
        self._store = store
        self._people = people
        self._accounts = accounts
        self._mail = mail
        self._limits = limits
        self._ttl = timedelta(seconds=ttl_s)
        self._mail_base_url = mail_base_url

    async def issue(self, user: User, *, actor_id: str | None, base_url: str, via: str) -> ResetLink:
        """A new link for user (voiding any older one); actor_id None: the command line."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        now = utcnow()
        expires_at = now + self._ttl
        await self._store.replace(
            user_id=user.id,
            secret_hash=hash_secret(secret),
            created_by=actor_id,
            now=now,
            expires_at=expires_at,
        )
        await self._people.record(
            user_id=user.id, actor_id=actor_id, action="password_reset.created", target_type="password_reset",
            target_id=user.id, at=now, details={"via": via, "expires_at": expires_at.isoformat()},
        )  # fmt: skip
        return ResetLink(url=f"{base_url}{RESET_PATH}{secret}", expires_at=expires_at)

    async def _locked_out(self, email: str) -> User:
        user = await self._people.by_email(normalize_email(email))
        if user is None:
            raise NotFound(f"no account has the email {email}")
        if not user.active:
            raise Conflict(f"{user.email} is deactivated; another head can activate it", code="inactive_account")
        return user

    async def link_for_command(self, email: str) -> tuple[User, ResetLink]:
        """The command line, for a head locked out: a one-time link for the account with this email."""
        user = await self._locked_out(email)
        return user, await self.issue(user, actor_id=None, base_url=self._mail_base_url, via="command")

    async def set_by_command(self, email: str, password: str, *, revoke_tokens: bool) -> User:
        """The command line: a new password, and every session of the account signed out."""
        user = await self._locked_out(email)
        await self._accounts.set_password(user.id, password, actor_id=None, revoke_tokens=revoke_tokens)
        await self._people.record(
            user_id=user.id, actor_id=None, action="password.set", target_type="user", target_id=user.id,
            at=utcnow(), details={"via": "command", "revoke_tokens": revoke_tokens},
        )  # fmt: skip
        return user

    async def create_for(self, actor: User, user_id: str, base_url: str) -> ResetLink:
        """A head makes a link for someone (themself included) to hand over."""
        if not actor.is_head:
            if actor.id == user_id:
                raise Forbidden("only heads (GD, DH) make reset links; change your password instead",
                                code="not_head")  # fmt: skip
            raise NotFound("user not found")
        user = await self._people.get(user_id)
        if user is None:
            raise NotFound("user not found")
        if not user.active:
            raise Conflict("the account is deactivated; activate it before resetting its password",
                           code="inactive_account")  # fmt: skip
        return await self.issue(user, actor_id=actor.id, base_url=base_url, via="head")

    async def request_by_mail(self, email: str, client: str) -> None:
        """Mail a link to this address if an active account has it; the answer never tells which."""
        if self._mail is None or not self._mail.enabled or self._limits is None:
            # not a passing outage (503): this LabHub is set up without mail
            raise Forbidden(
                "this LabHub does not send mail; ask a head of the lab for a reset link", code="mail_disabled"
            )
        wait = await self._limits.per_client.hit(client_key(client))
        if wait:
            raise TooManyRequests(
                f"too many reset requests from here; try again in {wait} s", retry_after_s=wait,
                code="reset_throttled",
            )  # fmt: skip
        address = normalize_email(email)
        if await self._limits.per_address.hit(address):
            log.warning("reset mail not sent: too many requests for one address")
            return
        user = await self._people.by_email(address)
        if user is None or not user.active:
            return
        link = await self.issue(user, actor_id=user.id, base_url=self._mail_base_url, via="mail")
        await self._mail.reset_link(user, link.url, link.expires_at)

    async def confirm(self, token: str, password: str, *, revoke_tokens: bool, client: str) -> None:
        """Set a new password with a link: signs out every session (and every token when asked), and
        lifts the sign-in back-off of the person who used it."""
        check_password(password)  # before the link is spent, so a too-short password does not waste it
        if not token.startswith(SECRET_PREFIX):
            raise _INVALID
        now = utcnow()
        spent = await self._store.spend(hash_secret(token), now)
        if spent is None:
            raise _INVALID
        user = await self._people.get(spent.user_id)
        if user is None or not user.active:
            raise _INVALID
        await self._accounts.set_password(user.id, password, actor_id=user.id, revoke_tokens=revoke_tokens)
        await self._people.record(
            user_id=user.id, actor_id=user.id, action="password_reset.used", target_type="password_reset",
            target_id=user.id, at=now, details={"revoke_tokens": revoke_tokens},
        )  # fmt: skip
        if self._login_throttle is not None:
            await self._login_throttle.forgive(user.email, client)
