"""Personal access tokens: create, list, revoke, and authenticate a request made with one."""

from __future__ import annotations

import hmac
import time
from datetime import datetime
from typing import Any

import attrs

from domain.accounts.jwt import hash_secret
from domain.accounts.models import User
from domain.accounts.people import People
from domain.accounts.service import AccountsService
from domain.core.cache import TtlCache
from domain.core.clock import utcnow
from domain.core.errors import Conflict, Forbidden, NotFound, Unauthenticated, field_error
from domain.core.pagination import Page
from domain.projects.models import Need
from domain.projects.service import ProjectGate
from domain.tokens.models import (
    BAD_TOKEN,
    LAST_USED_EVERY_S,
    MAX_TOKENS_PER_USER,
    SHOWN_PREFIX_LENGTH,
    AccessToken,
    NewToken,
    TokenGrant,
    TokenInput,
    check_expiry,
    check_name,
    check_scopes,
    new_secret,
    well_formed,
)
from domain.tokens.store import AccessTokenStore


class AccessTokenService:
    def __init__(
        self, store: AccessTokenStore, accounts: AccountsService, people: People, gate: ProjectGate, *,
        cache_s: float,
    ) -> None:  # fmt: skip
        self._store = store
        self._people = people
        self._accounts = accounts
        self._gate = gate
        self._cache: TtlCache[str, AccessToken] = TtlCache(cache_s)  # secret hash -> token
        self._hash_of: dict[str, str] = {}  # token id -> secret hash, to forget a revoked token at once
        self._touched: dict[str, float] = {}  # token id -> when this instance last recorded a use

    async def create(self, actor: User, body: TokenInput) -> NewToken:
        now = utcnow()
        name = check_name(body.name)
        scopes = check_scopes(body.scopes, head=actor.is_head)
        expires_at = check_expiry(body.expires_at, now)
        project_ids = None
        if body.project_ids is not None:
            if not body.project_ids:
                raise field_error(
                    "$.project_ids", "name at least one project, or leave it out for all of yours"
                )
            found = []
            for i, project_id in enumerate(body.project_ids):
                try:
                    found.append(
                        (await self._gate.require(actor, project_id, Need.READ, allow_archived=True)).id
                    )
                except NotFound:
                    raise field_error(f"$.project_ids[{i}]", "no project of yours has this id") from None
            project_ids = sorted(set(found))
        if await self._store.live_count(actor.id, now) >= MAX_TOKENS_PER_USER:
            raise Conflict(
                f"you have {MAX_TOKENS_PER_USER} live tokens; revoke one first", code="too_many_tokens"
            )
        secret = new_secret()
        token = await self._store.insert(
            user_id=actor.id, name=name, prefix=secret[:SHOWN_PREFIX_LENGTH], secret_hash=hash_secret(secret),
            scopes=scopes, project_ids=project_ids, expires_at=expires_at, now=now,
        )  # fmt: skip
        await self._audit(
            user_id=actor.id, actor_id=actor.id, action="token.created", token_id=token.id, at=now,
            details={"name": name, "scopes": [s.value for s in scopes], "project_ids": project_ids},
        )  # fmt: skip
        return NewToken(**attrs.asdict(token, recurse=False), token=secret)

    async def list_mine(self, actor: User) -> Page[AccessToken]:
        return Page(await self._store.of_user(actor.id))

    async def list_of(self, actor: User, user_id: str) -> Page[AccessToken]:
        if not actor.is_head:
            raise Forbidden("only heads (GD, DH) can see other people's tokens", code="not_head")
        user = await self._accounts.get(actor, user_id)
        return Page(await self._store.of_user(user.id))

    async def revoke(self, actor: User, token_id: str) -> None:
        token = await self._store.get(token_id)
        if token is None or (token.user_id != actor.id and not actor.is_head):
            raise NotFound("token not found")
        now = utcnow()
        await self._store.revoke(token.id, now)
        self._forget(token.id)
        if token.revoked_at is None:
            await self._audit(
                user_id=token.user_id, actor_id=actor.id, action="token.revoked", token_id=token.id, at=now
            )

    async def revoke_user(self, user_id: str, actor_id: str | None) -> None:
        """Every token of a user, at once (a password change that asks for it)."""
        now = utcnow()
        for token_id in await self._store.revoke_user(user_id, now):
            self._forget(token_id)
            await self._audit(
                user_id=user_id, actor_id=actor_id, action="token.revoked", token_id=token_id, at=now,
                details={"reason": "password changed"},
            )  # fmt: skip

    def _forget(self, token_id: str) -> None:
        known = self._hash_of.pop(token_id, None)
        if known is not None:
            self._cache.forget(known)

    async def authenticate(self, secret: str, client: str) -> tuple[User, TokenGrant]:
        """The user and grant behind a token; a malformed one is refused before any lookup."""
        if not well_formed(secret):
            raise BAD_TOKEN
        digest = hash_secret(secret)
        token = self._cache.get(digest)
        if token is None:
            found = await self._store.by_hash(digest)
            if found is None or not hmac.compare_digest(found[1], digest):
                raise BAD_TOKEN
            token = found[0]
            self._cache.put(digest, token)
            self._hash_of[token.id] = digest
        now = utcnow()
        if token.revoked_at is not None:
            raise Unauthenticated("this token has been revoked", code="token_revoked")
        if token.expires_at is not None and now >= token.expires_at:
            raise Unauthenticated("this token has expired; make a new one", code="token_expired")
        user = await self._accounts.get_active(token.user_id)
        await self._touch(token.id, client)
        projects = None if token.project_ids is None else frozenset(token.project_ids)
        return user, TokenGrant(token.id, frozenset(token.scopes), projects)

    async def _touch(self, token_id: str, client: str) -> None:
        """last_used_at is written at most once a minute per token, not once a request."""
        now_s = time.monotonic()
        if now_s - self._touched.get(token_id, -LAST_USED_EVERY_S) < LAST_USED_EVERY_S:
            return
        self._touched[token_id] = now_s
        if len(self._touched) > 100_000:
            self._touched.clear()
        await self._store.touch(token_id, utcnow(), client, LAST_USED_EVERY_S)

    async def _audit(
        self, *, user_id: str, actor_id: str | None, action: str, token_id: str, at: datetime,
        details: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        await self._people.record(
            user_id=user_id, actor_id=actor_id, action=action, target_type="token", target_id=token_id, at=at,
            details=details,
        )  # fmt: skip
