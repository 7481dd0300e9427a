"""MongoDB connection (PyMongo's AsyncMongoClient) and idempotent index creation at start."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime, timedelta
from typing import Any

import attrs
import bson
from bson import ObjectId
from bson.errors import InvalidId
from pymongo import AsyncMongoClient, IndexModel, monitoring
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from domain.core.errors import NotFound
from domain.core.metrics import CountCall
from domain.infra.bson_codec import TZ_AWARE

Document = dict[str, Any]
Database = AsyncDatabase[Document]
DUPLICATE_KEY = 11000


class _CommandCounter(monitoring.CommandListener):
    """Counts every command the driver sends (PyMongo's command monitoring)."""

    def __init__(self, count: CountCall) -> None:
        self._count = count

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self._count("mongodb", event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@attrs.frozen
class IndexSpec:
    collection: str
    keys: Sequence[tuple[str, int]]
    options: Mapping[str, Any] = attrs.field(factory=dict)


# Every store appends the indexes it relies on; open_mongo creates them all, idempotently.
INDEXES: list[IndexSpec] = []


def index(collection: str, *keys: tuple[str, int], **options: Any) -> None:
    INDEXES.append(IndexSpec(collection, keys, options))


@attrs.frozen
class BackupRule:
    """What a backup must know of a collection, said by the store that owns it.

    references: the S3 object keys a document names (the backup copies those objects);
    rewrite: the document as a restore should find it, or None to keep it as it is (a running
    job goes back to the queue), with the manifest list its id is noted in (`rewritten_as`);
    rank: collections with a rank are dumped first, in rank order (a parent before its children:
    a restore from a backup taken while people worked then has at worst a child without its parent).
    """

    references: Callable[[Document], Iterable[object]] | None = None
    rewrite: Callable[[Document], Document | None] | None = None
    rewritten_as: str = ""
    rank: int | None = None


# Every store that needs one adds the rule for its collection; ops/backup.py reads them all.
BACKUP_RULES: dict[str, BackupRule] = {}


def backup_rule(collection: str, **rule: Any) -> None:
    BACKUP_RULES[collection] = BackupRule(**rule)


def nested(doc: Any, *path: str) -> Any:
    """doc[path[0]][path[1]]..., or None where a step is missing or not a mapping."""
    for step in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(step)
    return doc


# -- inserts that a retry cannot turn into an error ----------------------------------------------------
# PyMongo retries a write once when the connection drops after sending it. A MongoDB replica set
# recognises the retry and answers as the first try did; the embedded SecantusDB applies the first
# try and then answers the retry with a DuplicateKeyError. Every insert therefore carries an _id
# chosen here and treats "this very document is there already" as the success it was.



def _as_stored(doc: Mapping[str, Any]) -> dict[str, Any]:
    """doc as the database gives it back (datetimes to the millisecond, tuples as lists)."""
    return dict(bson.decode(bson.encode(doc), codec_options=TZ_AWARE))


async def _is_there(collection: AsyncCollection[Document], doc: Mapping[str, Any]) -> bool:
    found = await collection.find_one({"_id": doc["_id"]})
    return found is not None and _as_stored(found) == _as_stored(doc)


async def insert_once(collection: AsyncCollection[Document], doc: Document) -> Document:
    """Insert doc (an _id is chosen when it has none); a retry whose first try landed is the success
    it was. Any other duplicate (another document under a unique key) raises DuplicateKeyError."""
    doc.setdefault("_id", ObjectId())
    try:
        await collection.insert_one(doc)
    except DuplicateKeyError:
        if not await _is_there(collection, doc):
            raise
    return doc


async def insert_many_once(collection: AsyncCollection[Document], docs: list[Document]) -> list[Document]:
    """insert_once for several documents in one round trip."""
    for doc in docs:
        doc.setdefault("_id", ObjectId())
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        by_index = {error["index"]: error for error in exc.details.get("writeErrors", [])}
        for index, error in by_index.items():
            if error.get("code") != DUPLICATE_KEY or not await _is_there(collection, docs[index]):
                raise
    return docs


async def ensure_indexes(db: Database) -> None:
    by_collection: dict[str, list[IndexModel]] = {}
    for spec in INDEXES:
        by_collection.setdefault(spec.collection, []).append(IndexModel(list(spec.keys), **spec.options))
    for collection, models in by_collection.items():
        await db[collection].create_indexes(models)


@asynccontextmanager
async def open_mongo(
    uri: str, database: str, *, timeout_ms: int = 10_000, max_pool_size: int = 32, count: CountCall | None = None
) -> AsyncIterator[Database]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms, appname="labhub", maxPoolSize=max_pool_size,
        event_listeners=[_CommandCounter(count)] if count else [],
    )  # fmt: skip
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


# -- inclusive ranges --------------------------------------------------------------------------------
# SecantusDB 0.7 drops documents equal to an inclusive bound on an inner field of a compound index
# (`$lte` on an ascending one, `$gte` on a descending one). Datetimes (BSON keeps milliseconds) and
# ISO days ("YYYY-MM-DD") have a next and a previous value, so an inclusive bound is written as the
# exclusive bound one step beyond it: the same documents on MongoDB, the right ones on SecantusDB.

_MILLISECOND = timedelta(milliseconds=1)


def _step(value: Any, direction: int) -> Any:
    if isinstance(value, datetime):
        return value + direction * _MILLISECOND
    if isinstance(value, str):
        return (date.fromisoformat(value) + timedelta(days=direction)).isoformat()
    raise TypeError(f"no neighbouring value for {type(value).__name__}")


def at_least(value: Any) -> dict[str, Any]:
    """{"$gte": value} for a datetime or an ISO day, as an exclusive bound."""
    return {"$gt": _step(value, -1)}


def at_most(value: Any) -> dict[str, Any]:
    """{"$lte": value} for a datetime or an ISO day, as an exclusive bound."""
    return {"$lt": _step(value, 1)}


async def write_attempt_output(
    collection: AsyncCollection[Document], output_id: str, fields: Document, *, job_id: str, attempt: int
) -> bool:
    """Upsert a job's output keyed by its id unless a newer attempt already wrote it (False: this
    attempt is stale). Each area's store writes its own outputs with it (datasets, plots)."""
    try:
        await collection.update_one(
            {"_id": ObjectId(output_id), "$or": [{"attempt": {"$lte": attempt}}, {"attempt": {"$exists": False}}]},
            {"$set": {**fields, "attempt": attempt, "job_id": ObjectId(job_id)}},
            upsert=True,
        )
    except DuplicateKeyError:
        return False  # the output exists with a newer attempt: this one is stale
    return True


def new_id() -> str:
    """A new id for a document a service names before it is stored (24 hex digits)."""
    return str(ObjectId())


def with_object_ids(doc: Document, *fields: str) -> Document:
    """doc with these top-level fields, given as 24-hex ids by a service, stored as ObjectIds."""
    return {k: ObjectId(v) if k in fields and isinstance(v, str) else v for k, v in doc.items()}
