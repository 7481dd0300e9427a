"""MongoDB connection (PyMongo's AsyncMongoClient) and idempotent index creation at start."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import attrs
from bson import ObjectId
from bson.errors import InvalidId
from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from domain.errors import NotFound

Document = dict[str, Any]
Database = AsyncDatabase[Document]


@attrs.frozen
class IndexSpec:
    collection: str
    keys: Sequence[tuple[str, int]]
    options: Mapping[str, Any] = attrs.field(factory=dict)


# Every store appends the indexes it relies on; open_mongo creates them all, idempotently.
INDEXES: list[IndexSpec] = []


def index(collection: str, *keys: tuple[str, int], **options: Any) -> None:
    INDEXES.append(IndexSpec(collection, keys, options))


async def ensure_indexes(db: Database) -> None:
    by_collection: dict[str, list[IndexModel]] = {}
    for spec in INDEXES:
        by_collection.setdefault(spec.collection, []).append(IndexModel(list(spec.keys), **spec.options))
    for collection, models in by_collection.items():
        await db[collection].create_indexes(models)


@asynccontextmanager
async def open_mongo(
    uri: str, database: str, *, timeout_ms: int = 10_000, max_pool_size: int = 32
) -> AsyncIterator[Database]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, appname="labhub", maxPoolSize=max_pool_size
    )
    try:
        db = client[database]
        await client.admin.command("ping")
        await ensure_indexes(db)
        yield db
    finally:
        await client.close()


async def ping_mongo(db: Database) -> None:
    await db.client.admin.command("ping")


def object_id(value: str, what: str = "resource") -> ObjectId:
    """Parse a hex id from a URL; a malformed id is simply not found."""
    try:
        return ObjectId(value)
    except (InvalidId, TypeError):
        raise NotFound(f"{what} not found") from None
