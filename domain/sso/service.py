"""Sign-in with the institution's account (docs/architecture.md, "Single sign-on").

start(): a state (the browser keeps it in a cookie too), a nonce and a PKCE verifier are kept for
`oidc.state_ttl_s`, and the browser goes to the provider. finish(): the state is taken (once: a
replayed callback finds nothing) and must be the browser's; the code is traded, the ID token checked
(oidc.py); then the account: the one linked to this subject, else the one with this (verified) email,
which is linked now, else a new student when `create_users` is on. A deactivated account stays out,
whatever the provider says. With `group_roles`, the provider's groups set the role at every sign-in.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import attrs

from domain.accounts.models import Role, User
from domain.accounts.people import People
from domain.accounts.service import AccountsService
from domain.accounts.signin import AuthService, TokenPair
from domain.core.clock import utcnow
from domain.core.errors import Conflict
from domain.core.settings import OidcSettings
from domain.sso.models import REASONS, Identity, ProviderError, email_allowed, identity_from, role_for
from domain.sso.oidc import OidcClient
from domain.sso.store import IdentityStore, PendingSignIns

_NEXT = re.compile(r"^/(?![/\\])[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*$")
MAX_NEXT_LENGTH = 512
LOGIN_URL = "/api/auth/oidc/login"


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this site only (never //host, a scheme or the API)."""
    if not value or len(value) > MAX_NEXT_LENGTH or not _NEXT.match(value) or value.startswith("/api/"):
        return "/"
    return value


@attrs.frozen
class SignInWay:
    id: str  # "password" or "oidc"
    display_name: str
    login_url: str | None = None  # for oidc: where the button goes (add ?next=/a/path)
    heads_only: bool = False  # for password: only heads may use it here


@attrs.frozen
class ProviderInfo:
    """What the sign-in page needs to know (GET /api/auth/providers)."""

    password: bool  # password sign-in is open to everyone (else: heads only)
    registration: bool  # the page may offer "create a student account"
    oidc: bool
    display_name: str | None
    login_url: str | None
    reasons: dict[str, str]
    providers: list[SignInWay]  # the same, as a list


@attrs.frozen
class SignedIn:
    session: TokenPair
    next: str
    user: User


class SsoService:
    def __init__(
        self, settings: OidcSettings, client: OidcClient | None, identities: IdentityStore,
        pending: PendingSignIns, accounts: AccountsService, auth: AuthService, people: People,
    ) -> None:  # fmt: skip
        self._settings = settings
        self._client = client if settings.enabled else None
        self._identities = identities
        self._pending = pending
        self._accounts = accounts
        self._auth = auth
        self._people = people

    @property
    def enabled(self) -> bool:
        return self._client is not None

    def info(self, *, password_for_everyone: bool, open_registration: bool) -> ProviderInfo:
        ways = [SignInWay(id="password", display_name="LabHub password", heads_only=not password_for_everyone)]
        if self.enabled:
            ways.insert(0, SignInWay(id="oidc", display_name=self._settings.display_name, login_url=LOGIN_URL))
        return ProviderInfo(
            password=password_for_everyone,
            registration=open_registration and password_for_everyone,
            oidc=self.enabled,
            display_name=self._settings.display_name if self.enabled else None,
            login_url=LOGIN_URL if self.enabled else None,
            reasons=dict(REASONS),
            providers=ways,
        )

    async def start(self, *, next_path: str | None, redirect_uri: str) -> tuple[str, str]:
        """The provider's URL to send the browser to, and the state the browser keeps."""
        if self._client is None:
            raise ProviderError("sso_disabled", "single sign-on is off")
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)  # 86 characters: RFC 7636 asks for 43 to 128
        url = await self._client.authorization_url(
            redirect_uri=redirect_uri, state=state, nonce=nonce, code_verifier=verifier
        )
        await self._pending.put(
            state,
            {
                "nonce": nonce,
                "verifier": verifier,
                "next": safe_next(next_path),
                "redirect_uri": redirect_uri,
            },
        )
        return url, state

    async def finish(self, query: dict[str, str], browser_state: str | None) -> SignedIn:
        """The callback: every check, then the account and a session. Raises ProviderError."""
        if self._client is None:
            raise ProviderError("sso_disabled", "single sign-on is off")
        state = query.get("state") or ""
        pending = await self._pending.take(state) if state else None
        if pending is None:
            raise ProviderError(
                "state_invalid", "no sign-in is waiting for this state (used, expired or made up)"
            )
        if not browser_state or not secrets.compare_digest(browser_state, state):
            raise ProviderError("state_invalid", "this sign-in was started in another browser")
        if error := query.get("error"):
            raise ProviderError(
                "access_denied" if error == "access_denied" else "provider_error",
                f"the provider answered {error}",
            )
        issuer_param = query.get("iss")
        if issuer_param and issuer_param.rstrip("/") != self._settings.issuer.rstrip("/"):
            raise ProviderError("provider_error", "the answer names another issuer (RFC 9207)")
        code = query.get("code")
        if not code:
            raise ProviderError("provider_error", "the provider's answer has no code")
        token = await self._client.exchange(
            code=code, redirect_uri=pending["redirect_uri"], code_verifier=pending["verifier"]
        )
        claims = await self._client.id_token_claims(token, nonce=pending["nonce"])
        claims = await self._with_userinfo(claims, token)
        identity = identity_from(
            str(claims["iss"]), claims, email_claim=self._settings.email_claim,
            name_claim=self._settings.name_claim, groups_claim=self._settings.groups_claim,
        )  # fmt: skip
        user = await self._account_for(identity)
        session = await self._auth.issue_session(user)
        return SignedIn(session=session, next=pending["next"], user=user)

    async def _with_userinfo(self, claims: dict[str, Any], token: dict[str, Any]) -> dict[str, Any]:
        """Claims the ID token lacks (email, name, groups), from userinfo, for the same subject."""
        wanted = (self._settings.email_claim, self._settings.name_claim, self._settings.groups_claim)
        if all(k in claims for k in wanted) or not isinstance(token.get("access_token"), str):
            return claims
        assert self._client is not None
        extra = await self._client.userinfo(token["access_token"])
        if extra.get("sub") != claims.get("sub"):
            return claims  # another subject's answer is not this person's
        return {**{k: v for k, v in extra.items() if k in (*wanted, "email_verified")}, **claims}

    async def _account_for(self, identity: Identity) -> User:
        if not email_allowed(identity.email, self._settings.allowed_email_domains):
            raise ProviderError(
                "email_domain", f"{identity.email.rsplit('@', 1)[-1]} is not an accepted domain"
            )
        now = utcnow()
        linked_id = await self._identities.user_of(identity.issuer, identity.subject)
        user = await self._accounts.account(linked_id) if linked_id else None
        if user is None:
            if not identity.email_verified:
                raise ProviderError("email_unverified", "the provider has not verified this email address")
            user = await self._people.by_email(identity.email)
            if user is None:
                user = await self._create(identity)
            user_id = await self._identities.link(
                issuer=identity.issuer,
                subject=identity.subject,
                user_id=user.id,
                email=identity.email,
                now=now,
            )
            if user_id != user.id:  # another sign-in of this subject linked it first: that account
                user = await self._accounts.account(user_id) or user
            else:
                await self._people.record(
                    user_id=user.id, actor_id=user.id, action="sso.linked", target_type="identity",
                    target_id=identity.subject, at=now, details={"issuer": identity.issuer, "email": identity.email},
                )  # fmt: skip
        else:
            await self._identities.signed_in(identity.issuer, identity.subject, identity.email, now)
        if not user.active:
            raise ProviderError("inactive_account", "the LabHub account is deactivated")
        if self._settings.group_roles:
            user = await self._accounts.set_provider_role(
                user, role_for(identity.groups, self._settings.group_roles)
            )
        return user

    async def _create(self, identity: Identity) -> User:
        if not self._settings.create_users:
            raise ProviderError("no_account", "no account has this email and create_users is off")
        mapped = role_for(identity.groups, self._settings.group_roles)
        try:
            return await self._accounts.create_external(
                email=identity.email,
                name=identity.name,
                role=mapped or Role.STUDENT,
                role_from_provider=mapped is not None,
            )
        except Conflict:  # a parallel first sign-in made it a moment ago
            user = await self._people.by_email(identity.email)
            if user is None:
                raise
            return user
