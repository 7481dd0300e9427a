"""Who signed in through which provider (MongoDB), and sign-ins on their way to the provider and
back (Redis, single use, gone after `oidc.state_ttl_s`)."""

from __future__ import annotations

from datetime import datetime

import orjson
from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from domain.infra.mongo import Database, index, insert_once
from domain.infra.redis_store import RedisStore

index("sso_identities", ("issuer", 1), ("subject", 1), unique=True, name="issuer_subject_unique")
index("sso_identities", ("user_id", 1), name="user")


class IdentityStore:
    """The link between a provider's subject (issuer + sub, which never change) and a LabHub account."""

    def __init__(self, db: Database) -> None:
        self._identities = db["sso_identities"]

    async def user_of(self, issuer: str, subject: str) -> str | None:
        doc = await self._identities.find_one({"issuer": issuer, "subject": subject}, {"user_id": 1})
        return str(doc["user_id"]) if doc else None

    async def link(self, *, issuer: str, subject: str, user_id: str, email: str, now: datetime) -> str:
        """Link the subject to the account; when another sign-in linked it first, its account wins."""
        try:
            await insert_once(self._identities,
                {"issuer": issuer, "subject": subject, "user_id": ObjectId(user_id), "email": email,
                 "linked_at": now, "last_sign_in_at": now}
            )  # fmt: skip
        except DuplicateKeyError:
            linked = await self.user_of(issuer, subject)
            return linked or user_id
        return user_id

    async def signed_in(self, issuer: str, subject: str, email: str, now: datetime) -> None:
        await self._identities.update_one(
            {"issuer": issuer, "subject": subject}, {"$set": {"last_sign_in_at": now, "email": email}}
        )

    async def of_user(self, user_id: str) -> list[dict[str, object]]:
        cursor = self._identities.find(
            {"user_id": ObjectId(user_id)},
            {"_id": 0, "issuer": 1, "email": 1, "linked_at": 1, "last_sign_in_at": 1},
        )
        return [doc async for doc in cursor]


class PendingSignIns:
    """A sign-in between the redirect to the provider and its callback: state → nonce, PKCE
    verifier and where to go afterwards. Taken once: a replayed callback finds nothing."""

    def __init__(self, redis: RedisStore, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def put(self, state: str, pending: dict[str, str]) -> None:
        await self._redis.client.set(
            self._redis.key("oidc-state", state), orjson.dumps(pending), ex=self._ttl_s
        )

    async def take(self, state: str) -> dict[str, str] | None:
        raw = await self._redis.client.getdel(self._redis.key("oidc-state", state))
        if raw is None:
            return None
        value = orjson.loads(raw)
        return value if isinstance(value, dict) else None
