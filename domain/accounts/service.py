"""Account service: registration, head-managed users, profile and password changes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from domain.accounts.models import (
    NotificationSettings,
    NotificationSettingsChanges,
    Role,
    User,
    UserChanges,
    can_view,
    check_changes,
    check_name,
    check_password,
    normalize_email,
)
from domain.accounts.passwords import Passwords
from domain.accounts.policy import SignInPolicies
from domain.accounts.refresh_tokens import RefreshTokenStore
from domain.accounts.store import UserStore
from domain.core.cache import TtlCache
from domain.core.clock import utcnow
from domain.core.errors import (
    Forbidden,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthenticated,
    field_error,
)
from domain.core.pagination import Page, clamp_limit
from domain.infra.events import SessionEnds
from domain.infra.throttle import WindowLimit, client_key


class AccountsService:
    def __init__(
        self,
        users: UserStore,
        refresh_tokens: RefreshTokenStore,
        passwords: Passwords,
        *,
        open_registration: bool,
        cache_s: float = 0.0,
        registrations: WindowLimit | None = None,
        session_ends: SessionEnds | None = None,
        policies: SignInPolicies | None = None,
    ) -> None:
        """registrations: how many accounts one client may register per window (None: the command
        line, which registers nobody); session_ends: where a sign-out is announced, so that every
        instance closes the person's open event streams."""
        self._users = users
        self._refresh_tokens = refresh_tokens
        self._passwords = passwords
        self._open_registration = open_registration
        self._registrations = registrations
        self._session_ends = session_ends
        self._policies = policies
        self._active: TtlCache[str, User] = TtlCache(cache_s)
        self._token_revoker: Callable[[str, str | None], Awaitable[None]] | None = None

    def revoke_tokens_with(self, revoker: Callable[[str, str | None], Awaitable[None]]) -> None:
        """How a password change revokes personal access tokens (user id, actor id; None = the command line)."""
        self._token_revoker = revoker

    async def register(self, *, email: str, password: str, name: str, client: str) -> User:
        if not self._open_registration:
            raise Forbidden(
                "registration is closed; ask a head of the lab for an account", code="registration_closed"
            )
        if self._policies is not None and not await self._policies.password_for_everyone():
            raise Forbidden(
                "accounts with a password are for heads only here; sign in with your institution's account",
                code="registration_closed",
            )
        if self._registrations is not None and (wait := await self._registrations.hit(client_key(client))):
            raise TooManyRequests(
                f"too many accounts registered from this address; try again in {wait} s", retry_after_s=wait,
                code="registration_throttled",
            )  # fmt: skip
        return await self.create(email=email, password=password, name=name, role=Role.STUDENT)

    async def create(self, *, email: str, password: str, name: str, role: Role) -> User:
        email = normalize_email(email)
        name = check_name(name)
        check_password(password)
        return await self._users.insert(
            email=email, name=name, role=role, password_hash=await self._passwords.hash(password)
        )

    async def create_external(self, *, email: str, name: str, role: Role, role_from_provider: bool) -> User:
        """An account signed in to through the identity provider: no password (a reset link can set one)."""
        return await self._users.insert(
            email=normalize_email(email), name=check_name(name), role=role, password_hash=None,
            role_from_provider=role_from_provider,
        )  # fmt: skip

    async def account(self, user_id: str) -> User | None:
        """The account, active or not (single sign-on says what a deactivated one means)."""
        try:
            return await self._users.get(user_id)
        except NotFound:
            return None

    async def set_provider_role(self, user: User, role: Role | None) -> User:
        """The role the provider's groups give (None: no mapped group, so a role the provider gave
        before goes back to student; a role LabHub gave stays)."""
        if role is None:
            if not user.role_from_provider:
                return user
            fields: dict[str, Any] = {"role": Role.STUDENT, "role_from_provider": False}
        elif role is user.role and user.role_from_provider:
            return user
        else:
            fields = {"role": role, "role_from_provider": True}
        updated = await self._users.update(user.id, fields)
        self._active.forget(user.id)
        if updated is None:
            raise NotFound("user not found")
        return updated

    async def ensure_head(self, *, email: str, password: str, name: str) -> User | None:
        """Create a DH account unless the email is taken; used to bootstrap a new installation."""
        if await self._users.exists_email(normalize_email(email)):
            return None
        return await self.create(email=email, password=password, name=name, role=Role.DH)

    async def get_active(self, user_id: str) -> User:
        """The user behind a token; a deactivated or deleted account is no longer signed in."""
        user = self._active.get(user_id)
        if user is not None:
            return user
        try:
            user = await self._users.get(user_id)
        except NotFound:
            user = None
        if user is None or not user.active:
            raise Unauthenticated("account is not active", code="inactive_account")
        self._active.put(user_id, user)
        return user

    async def list_users(
        self, actor: User, *, q: str | None, limit: int | None, cursor: str | None
    ) -> Page[User]:
        if not actor.is_head:
            raise Forbidden("only heads (GD, DH) can list users", code="not_head")
        users, next_cursor = await self._users.page(q=q, limit=clamp_limit(limit), cursor=cursor)
        return Page(users, next_cursor)

    async def get(self, actor: User, user_id: str) -> User:
        user = await self._users.get(user_id) if can_view(actor, user_id) else None
        if user is None:
            raise NotFound("user not found")
        return user

    async def update(self, actor: User, user_id: str, changes: UserChanges) -> User:
        target = await self.get(actor, user_id)
        check_changes(actor, target, changes)
        fields: dict[str, Any] = {}
        if changes.name is not None:
            fields["name"] = check_name(changes.name)
        if changes.password is not None:
            check_password(changes.password)
            assert changes.old_password is not None
            stored = await self._users.password_hash(target.id)
            if not await self._passwords.verify(stored, changes.old_password):
                raise field_error("$.old_password", "does not match the current password")
            fields["password_hash"] = await self._passwords.hash(changes.password)
        if changes.role is not None:
            fields["role"] = changes.role
            fields["role_from_provider"] = False  # LabHub's own from now on
        if changes.active is not None:
            fields["active"] = changes.active
        signs_out = changes.password is not None or changes.active is False
        if signs_out:  # a new password or a deactivation signs the account out everywhere
            fields["sessions_valid_after"] = utcnow()
        updated = await self._users.update(target.id, fields)
        self._active.forget(target.id)
        if updated is None:
            raise NotFound("user not found")
        if signs_out:
            await self._sign_out(
                target.id, actor.id, revoke_tokens=changes.password is not None and changes.revoke_tokens
            )
        return updated

    async def notification_settings(self, user: User) -> NotificationSettings:
        return (await self._users.notification_settings([user.id]))[user.id]

    async def change_notification_settings(
        self, user: User, changes: NotificationSettingsChanges
    ) -> NotificationSettings:
        fields = {k: v for k, v in attrs.asdict(changes).items() if v is not None}
        if not fields:
            raise InvalidInput("nothing to change", code="empty_patch")
        return await self._users.set_notification_settings(user.id, fields)

    async def set_password(
        self, user_id: str, password: str, *, actor_id: str | None, revoke_tokens: bool
    ) -> User:
        """A new password without the old one (a reset link, or the command line): signs out everywhere."""
        check_password(password)
        updated = await self._users.update(
            user_id, {"password_hash": await self._passwords.hash(password), "sessions_valid_after": utcnow()}
        )
        self._active.forget(user_id)
        if updated is None:
            raise NotFound("user not found")
        await self._sign_out(user_id, actor_id, revoke_tokens=revoke_tokens)
        return updated

    async def sign_out_everywhere(self, user_id: str) -> None:
        """Every session ends: access tokens issued until now are refused, refresh tokens revoked,
        open event streams closed (personal access tokens stay: they are revoked one by one)."""
        if await self._users.update(user_id, {"sessions_valid_after": utcnow()}) is None:
            raise NotFound("user not found")
        self._active.forget(user_id)
        await self._sign_out(user_id, user_id, revoke_tokens=False)

    async def _sign_out(self, user_id: str, actor_id: str | None, *, revoke_tokens: bool) -> None:
        """After sessions_valid_after was moved: the rest of signing a person out everywhere."""
        await self._refresh_tokens.revoke_user(user_id, utcnow())
        if revoke_tokens and self._token_revoker is not None:
            await self._token_revoker(user_id, actor_id)
        if self._session_ends is not None:
            await self._session_ends.publish(user_id)
