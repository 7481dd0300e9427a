"""The lab's sign-in policy (docs/architecture.md, "Single sign-on"): a head may keep password
sign-in for heads only, once the lab signs in with its institution's accounts. Every instance reads
it at most every `auth.identity_cache_s`."""

from __future__ import annotations

import attrs

from domain.accounts.models import PasswordSignIn, SignInPolicy, SignInPolicyChange, User
from domain.accounts.people import People
from domain.accounts.store import SignInPolicyStore
from domain.core.cache import TtlCache
from domain.core.clock import utcnow
from domain.core.errors import Conflict, Forbidden


class SignInPolicies:
    def __init__(
        self, store: SignInPolicyStore, people: People, *, cache_s: float, sso_enabled: bool
    ) -> None:
        """sso_enabled: whether people have another way in (password sign-in cannot be closed without)."""
        self._sso_enabled = sso_enabled
        self._store = store
        self._people = people
        self._cache: TtlCache[str, SignInPolicy] = TtlCache(cache_s)

    async def current(self) -> SignInPolicy:
        policy = self._cache.get("sign_in")
        if policy is None:
            policy = await self._store.get()
            self._cache.put("sign_in", policy)
        return policy

    async def password_allowed(self, user: User) -> bool:
        return user.is_head or await self.password_for_everyone()

    async def password_for_everyone(self) -> bool:
        return (await self.current()).password_sign_in is PasswordSignIn.EVERYONE

    async def read(self, actor: User) -> SignInPolicy:
        if not actor.is_head:
            raise Forbidden("only heads (GD, DH) can see how people sign in", code="not_head")
        return await self.current()

    async def change(self, actor: User, change: SignInPolicyChange) -> SignInPolicy:
        if not actor.is_head:
            raise Forbidden("only heads (GD, DH) can change how people sign in", code="not_head")
        if change.password_sign_in is PasswordSignIn.HEADS and not self._sso_enabled:
            raise Conflict(
                "single sign-on is not set up ([oidc] in config.toml): closing password sign-in would "
                "leave everyone but heads without a way in", code="sso_not_enabled",
            )  # fmt: skip
        now = utcnow()
        policy = attrs.evolve(
            await self.current(),
            password_sign_in=change.password_sign_in,
            updated_at=now,
            updated_by=actor.id,
        )
        await self._store.put(policy)
        self._cache.put("sign_in", policy)
        await self._people.record(
            user_id=actor.id, actor_id=actor.id, action="sign_in_policy.changed", target_type="lab",
            target_id="sign_in", at=now, details={"password_sign_in": change.password_sign_in.value},
        )  # fmt: skip
        return policy
