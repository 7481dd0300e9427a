"""Backup, verify and restore (docs/architecture.md, "Embedded services and backups"): MongoDB as mongodump lays it out, the S3 objects the
documents reference, and a manifest with the sha256 of every file.

Objects are immutable once committed and a document names an object only after it is stored, so
the collections are dumped first and then every object they reference is copied: the archive holds
all it refers to. Objects that are not referenced (the outputs of a job still running) are left out,
and a job that was running is written as queued: after a restore it runs again from the start.
Redis is not in the archive: everything LabHub keeps there is rebuilt from MongoDB or expires.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import IO, Any
from uuid import UUID

import attrs
import bson
from bson.codec_options import CodecOptions
from bson.json_util import CANONICAL_JSON_OPTIONS, dumps, loads
from bson.raw_bson import RawBSONDocument
from pymongo import IndexModel

import domain.assembly  # noqa: F401 - every store is loaded, and so every backup rule
from domain.core.errors import NotFound
from domain.infra.mongo import BACKUP_RULES, Database, nested
from domain.infra.objects import ObjectStore
from ops.archive import ArchiveError, ArchiveReader, ArchiveWriter, safe_name

FORMAT = 1
MANIFEST = "manifest.json"
MONGO_DIR = "mongo"
OBJECTS_DIR = "objects"
CHUNK = 1 << 20
INSERT_BATCH = 500
RAW = CodecOptions(document_class=RawBSONDocument, tz_aware=True)


class BackupError(Exception):
    """A backup, verification or restore that cannot go on; the message says why, in one line."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _entry(size: int, digest: str) -> dict[str, Any]:
    return {"size": size, "sha256": digest}


class _HashingWriter:
    """Writes through to a file, counting and hashing."""

    def __init__(self, handle: IO[bytes]) -> None:
        self._handle, self._hash, self.size = handle, hashlib.sha256(), 0

    def write(self, data: bytes) -> None:
        self._handle.write(data)
        self._hash.update(data)
        self.size += len(data)

    def entry(self) -> dict[str, Any]:
        return _entry(self.size, self._hash.hexdigest())


async def _collections(db: Database) -> list[tuple[str, dict[str, Any], str | None]]:
    found = []
    async for info in await db.list_collections():
        name = info["name"]
        if name.startswith("system.") or info.get("type", "collection") != "collection":
            continue
        uuid = nested(info, "info", "uuid")  # mongodump writes it as 32 hex digits
        text = uuid.hex if isinstance(uuid, UUID) else uuid.hex() if isinstance(uuid, bytes) else None
        found.append((name, dict(info.get("options") or {}), text))
    # collections with a rank first, in rank order (parents before their children), then by name
    def order(collection: tuple[str, dict[str, Any], str | None]) -> tuple[int, str]:
        rule = BACKUP_RULES.get(collection[0])
        return (rule.rank if rule is not None and rule.rank is not None else len(BACKUP_RULES), collection[0])

    return sorted(found, key=order)


@attrs.define
class _Dump:
    """One backup in progress: what has gone into the archive so far."""

    writer: ArchiveWriter
    files: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    collections: dict[str, int] = attrs.field(factory=dict)
    referenced: set[str] = attrs.field(factory=set)
    rewritten: dict[str, list[str]] = attrs.field(factory=dict)  # manifest list -> ids
    object_types: dict[str, str] = attrs.field(factory=dict)
    missing: list[str] = attrs.field(factory=list)

    async def collection(self, db: Database, name: str) -> None:
        path = f"{MONGO_DIR}/{db.name}/{name}.bson"
        rule, count = BACKUP_RULES.get(name), 0
        with self.writer.open(path) as handle:
            out = _HashingWriter(handle)
            raw_collection: Any = db.get_collection(name, codec_options=RAW)
            async for raw in raw_collection.find({}, batch_size=1000):
                data = raw.raw
                if rule is not None and (rule.references is not None or rule.rewrite is not None):
                    doc = bson.decode(data)
                    if rule.references is not None:
                        self.referenced.update(k for k in rule.references(doc) if isinstance(k, str) and k)
                    if rule.rewrite is not None and (rewritten := rule.rewrite(doc)) is not None:
                        data = bson.encode(rewritten)
                        self.rewritten.setdefault(rule.rewritten_as, []).append(str(doc["_id"]))
                out.write(data)
                count += 1
        self.files[path] = out.entry()
        self.collections[name] = count

    async def metadata(self, db: Database, name: str, options: dict[str, Any], uuid: str | None) -> None:
        """<collection>.metadata.json as mongodump writes it (canonical extended JSON)."""
        indexes = [dict(index) async for index in await db[name].list_indexes()]
        metadata: dict[str, Any] = {
            "options": options,
            "indexes": indexes,
            "collectionName": name,
            "type": "collection",
        }
        if uuid:
            metadata["uuid"] = uuid
        text = dumps(metadata, json_options=CANONICAL_JSON_OPTIONS).encode()
        path = f"{MONGO_DIR}/{db.name}/{name}.metadata.json"
        with self.writer.open(path) as handle:
            handle.write(text)
        self.files[path] = _entry(len(text), hashlib.sha256(text).hexdigest())

    async def objects(self, objects: ObjectStore) -> None:
        for key in sorted(self.referenced):
            path = f"{OBJECTS_DIR}/{safe_name(key)}"
            try:
                async with objects.open_read(key) as reader:
                    with self.writer.open(path) as handle:
                        out = _HashingWriter(handle)
                        async for chunk in reader.chunks(CHUNK):
                            out.write(chunk)
            except NotFound:  # deleted after its document was dumped, or still being uploaded
                self.missing.append(key)
                continue
            self.object_types[key] = reader.content_type
            self.files[path] = out.entry()

    def manifest(self, database: str, version: str) -> dict[str, Any]:
        manifest = {
            "format": FORMAT, "labhub_version": version, "created_at": _now(), "database": database,
            "collections": self.collections, "objects": self.object_types, "files": self.files,
            "counts": {
                "collections": len(self.collections), "documents": sum(self.collections.values()),
                "objects": len(self.object_types), "bytes": sum(f["size"] for f in self.files.values()),
            },
            "requeued_jobs": [], **self.rewritten, "missing_objects": self.missing,
        }  # fmt: skip
        with self.writer.open(MANIFEST) as handle:
            handle.write(json.dumps(manifest, indent=1, sort_keys=True).encode())
        return manifest


async def backup(
    db: Database, objects: ObjectStore, writer: ArchiveWriter, *, version: str
) -> dict[str, Any]:
    """Write the archive; returns its manifest (written last, as manifest.json)."""
    dump = _Dump(writer)
    for name, options, uuid in await _collections(db):
        await dump.collection(db, name)
        await dump.metadata(db, name, options, uuid)
    await dump.objects(objects)
    return dump.manifest(db.name, version)


def read_manifest(reader: ArchiveReader) -> dict[str, Any]:
    try:
        with reader.open(MANIFEST) as handle:
            manifest: dict[str, Any] = json.loads(handle.read())
    except (ArchiveError, ValueError) as exc:
        raise BackupError(
            f"{reader.src} has no readable {MANIFEST}: is it a LabHub backup? ({exc})"
        ) from None
    try:
        for name in [
            *manifest.get("files", {}),
            *(f"{OBJECTS_DIR}/{k}" for k in manifest.get("objects", {})),
        ]:
            safe_name(name)
    except ArchiveError as exc:
        raise BackupError(f"{reader.src}: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(
            f"{reader.src} is a backup of format {manifest.get('format')!r}; this LabHub reads {FORMAT}"
        )
    return manifest


def _hash_member(reader: ArchiveReader, name: str) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with reader.open(name) as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def verify(reader: ArchiveReader) -> tuple[dict[str, Any], list[str]]:
    """Re-hash every file the manifest lists: (manifest, problems); no problems means intact."""
    manifest = read_manifest(reader)
    problems: list[str] = []
    present = reader.names()
    for name, expected in sorted(manifest["files"].items()):
        if name not in present:
            problems.append(f"{name}: missing from the archive")
            continue
        size, digest = _hash_member(reader, name)
        if size != expected["size"]:
            problems.append(f"{name}: {size} bytes, the manifest says {expected['size']}")
        elif digest != expected["sha256"]:
            problems.append(f"{name}: sha256 {digest} does not match the manifest's {expected['sha256']}")
    for name in sorted(present - set(manifest["files"]) - {MANIFEST}):
        problems.append(f"{name}: in the archive but not in the manifest")
    return manifest, problems


async def contents(db: Database, objects: ObjectStore) -> tuple[dict[str, int], int]:
    """What a restore target holds: documents per non-empty collection, and objects in the bucket."""
    counts = {}
    for name, _, _ in await _collections(db):
        if n := await db[name].estimated_document_count():
            counts[name] = n
    return counts, len(await objects.keys())


async def _file_chunks(handle: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


def _index_model(index: dict[str, Any]) -> IndexModel:
    options = {k: v for k, v in index.items() if k not in {"v", "key", "ns"}}
    return IndexModel(list(index["key"].items()), **options)


async def restore(
    reader: ArchiveReader, db: Database, objects: ObjectStore, *, force: bool, part_size: int
) -> dict[str, Any]:
    """Load the archive into db and the bucket: they must be empty, or are emptied first with force."""
    manifest, problems = verify(reader)
    if problems:
        raise BackupError(
            f"the archive is damaged ({len(problems)} problems), nothing restored: {problems[0]}"
        )
    counts, stored = await contents(db, objects)
    if (counts or stored) and not force:
        held = ", ".join(f"{n} in {name}" for name, n in sorted(counts.items())) or "no documents"
        raise BackupError(
            f"the target is not empty ({held}; {stored} objects): restore into empty services, "
            "or pass --force to replace what they hold"
        )
    if force:
        for name, _, _ in await _collections(db):
            await db.drop_collection(name)
        await objects.delete(await objects.keys())
    source_db, existing = manifest["database"], set(await db.list_collection_names())
    for name in manifest["collections"]:
        collection = db.get_collection(name, codec_options=RAW)
        if name not in existing:  # an empty collection is restored too
            await db.create_collection(name)
        with reader.open(f"{MONGO_DIR}/{source_db}/{name}.bson") as handle:
            batch: list[RawBSONDocument] = []
            for doc in bson.decode_file_iter(handle, codec_options=RAW):
                batch.append(doc)
                if len(batch) >= INSERT_BATCH:
                    await collection.insert_many(batch, ordered=True)
                    batch = []
            if batch:
                await collection.insert_many(batch, ordered=True)
        with reader.open(f"{MONGO_DIR}/{source_db}/{name}.metadata.json") as handle:
            metadata = loads(handle.read())
        models = [_index_model(ix) for ix in metadata.get("indexes", []) if ix.get("name") != "_id_"]
        if models:
            await db[name].create_indexes(models)
    for key, content_type in sorted(manifest["objects"].items()):
        path = f"{OBJECTS_DIR}/{safe_name(key)}"
        expected = manifest["files"][path]
        with reader.open(path) as handle:
            stored_object = await objects.put_stream(
                key, _file_chunks(handle), max_bytes=expected["size"], part_size=part_size,
                content_type=content_type,
            )  # fmt: skip
        if stored_object.sha256 != expected["sha256"]:
            raise BackupError(f"{path} changed while it was restored (sha256 {stored_object.sha256})")
    return manifest
