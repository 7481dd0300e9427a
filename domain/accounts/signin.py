"""Sign-in: login with throttling, rotating refresh tokens, logout, SSE tickets, token checks."""

from __future__ import annotations

import secrets
from datetime import timedelta

import attrs

from domain.accounts.jwt import (
    LEEWAY_S,
    SSE_AUDIENCE,
    TokenConfig,
    VerifiedTokens,
    check_session,
    hash_secret,
    issue_access_token,
    issue_sse_ticket,
    new_refresh_token,
)
from domain.accounts.models import User, normalize_email
from domain.accounts.passwords import Passwords
from domain.accounts.policy import SignInPolicies
from domain.accounts.refresh_tokens import RefreshTokenStore
from domain.accounts.service import AccountsService
from domain.accounts.store import UserStore
from domain.core.clock import utcnow
from domain.core.errors import Forbidden, InvalidInput, TooManyRequests, Unauthenticated
from domain.infra.throttle import LoginThrottle, SingleUse

_BAD_LOGIN = Unauthenticated("email or password is wrong", code="invalid_credentials")
_BAD_REFRESH = Unauthenticated("refresh token is not valid; sign in again", code="invalid_refresh_token")


@attrs.frozen
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


@attrs.frozen
class SseTicket:
    ticket: str
    expires_in: int


class AuthService:
    def __init__(
        self,
        users: UserStore,
        refresh_tokens: RefreshTokenStore,
        passwords: Passwords,
        throttle: LoginThrottle,
        accounts: AccountsService,
        tokens: TokenConfig,
        tickets: SingleUse,
        *,
        refresh_ttl_s: int,
        policies: SignInPolicies | None = None,
    ) -> None:
        self._users = users
        self._refresh_tokens = refresh_tokens
        self._passwords = passwords
        self._throttle = throttle
        self._accounts = accounts
        self._tokens = tokens
        self._tickets = tickets
        self._verified = VerifiedTokens(tokens)
        self._refresh_ttl = timedelta(seconds=refresh_ttl_s)
        self._policies = policies

    async def login(self, *, email: str, password: str, client: str) -> TokenPair:
        try:
            email = normalize_email(email)
        except InvalidInput:
            raise _BAD_LOGIN from None
        # the attempt is counted before the password is checked: parallel guesses get no extra tries
        wait, limit = await self._throttle.admit(email, client)
        if wait:
            whom = "from this address" if limit == "client" else "for this account"
            raise TooManyRequests(
                f"too many failed sign-ins {whom}; try again in {wait} s", retry_after_s=wait,
                code="login_throttled",
            )  # fmt: skip
        found = await self._users.credentials(email)
        stored_hash = found[1] if found else None
        valid = await self._passwords.verify(stored_hash, password)
        if not found or not valid or not found[0].active:
            raise _BAD_LOGIN
        user, stored_hash = found
        await self._throttle.succeeded(email, client)
        if self._policies is not None and not await self._policies.password_allowed(user):
            raise Forbidden(
                "password sign-in is for heads only here; use the button to sign in with your institution's account",
                code="password_sign_in_off",
            )
        if self._passwords.needs_rehash(stored_hash):
            await self._users.update(user.id, {"password_hash": await self._passwords.hash(password)})
        return await self.issue_session(user)

    async def issue_session(self, user: User) -> TokenPair:
        """A new session (a new refresh token family) for someone whose identity was proved: by
        password here, by the identity provider in single sign-on."""
        return await self._issue(user, family_id=secrets.token_hex(16))

    async def refresh(self, refresh_token: str) -> TokenPair:
        now = utcnow()
        token_hash = hash_secret(refresh_token)
        state = await self._refresh_tokens.spend(token_hash, now)
        if state is None:
            known = await self._refresh_tokens.find(token_hash)
            if known is not None and known.used:
                # a spent token came back: someone holds a copy; end the whole session family
                await self._refresh_tokens.revoke_family(known.family_id, now)
                raise Unauthenticated(
                    "refresh token was already used; the session has been ended, sign in again",
                    code="refresh_token_reused",
                )
            raise _BAD_REFRESH
        user = await self._accounts.get_active(state.user_id)
        return await self._issue(user, family_id=state.family_id)

    async def logout(self, refresh_token: str) -> None:
        known = await self._refresh_tokens.find(hash_secret(refresh_token))
        if known is not None:
            await self._refresh_tokens.revoke_family(known.family_id, utcnow())

    def sse_ticket(self, user: User, projects: frozenset[str] | None = None) -> SseTicket:
        """projects: the projects of the token that asks for it, which the ticket keeps to."""
        narrowed = None if projects is None else tuple(sorted(projects))
        ticket = issue_sse_ticket(self._tokens, user.id, utcnow(), narrowed)
        return SseTicket(ticket=ticket, expires_in=self._tokens.sse_ttl_s)

    async def authenticate(self, access_token: str) -> User:
        claims = self._verified.verify(access_token)
        user = await self._accounts.get_active(claims.sub)
        check_session(claims, user.sessions_valid_after)
        return user

    async def authenticate_sse(self, ticket: str) -> tuple[User, tuple[str, ...] | None]:
        """A ticket opens one stream: a copy seen in a log or a history cannot open another."""
        claims = self._verified.verify(ticket, audience=SSE_AUDIENCE)
        user = await self._accounts.get_active(claims.sub)
        check_session(claims, user.sessions_valid_after)
        if not await self._tickets.first_use(claims.jti, self._tokens.sse_ttl_s + LEEWAY_S):
            raise Unauthenticated("this ticket was used already; ask for a new one", code="ticket_used")
        return user, claims.projects

    async def sign_out_everywhere(self, user: User) -> None:
        """Every session of the user ends now: refresh tokens, access tokens, open event streams."""
        await self._accounts.sign_out_everywhere(user.id)

    async def _issue(self, user: User, *, family_id: str) -> TokenPair:
        now = utcnow()
        refresh_token = new_refresh_token()
        await self._refresh_tokens.insert(
            token_hash=hash_secret(refresh_token),
            user_id=user.id,
            family_id=family_id,
            now=now,
            expires_at=now + self._refresh_ttl,
        )
        return TokenPair(
            access_token=issue_access_token(self._tokens, user.id, user.role.value, now),
            refresh_token=refresh_token,
            expires_in=self._tokens.access_ttl_s,
        )
