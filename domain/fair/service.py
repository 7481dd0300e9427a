"""Exports (RO-Crate, BagIt, DataCite) and publications (docs/architecture.md, "Publishing and
archiving"). A package is written to a temporary file and streamed; each one made is recorded, so
lineage shows what left LabHub. A published version has a public page; it cannot be removed until
it is unpublished."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import unicodedata
import uuid
import zipfile
from pathlib import Path
from typing import Any

import attrs

from domain.accounts.models import User
from domain.accounts.people import People
from domain.core.clock import utcnow
from domain.core.errors import Conflict, NotFound, field_error
from domain.datasets.models import PARQUET, StoredDataset
from domain.datasets.service import DatasetsService
from domain.documents.service import DocumentsService
from domain.fair.crate import (
    PackedDataset,
    PackedFile,
    bag_tags,
    crate_metadata,
    datacite,
    one,
)
from domain.fair.models import ExportQuery, ProjectExport, Publication, PublishRequest, license_url
from domain.fair.store import FairStore
from domain.infra.localfiles import LocalFiles
from domain.lineage.models import Found, LineageNode, Ref
from domain.lineage.service import LineageService
from domain.projects.models import Need
from domain.projects.service import ProjectGate
from domain.records.service import RecordsService

NO_LICENSE = "https://w3id.org/labhub/ns#no-licence-given"  # exports before a licence is chosen
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


def safe_name(name: str, fallback: str = "file") -> str:
    """A file name that is the same on every system a package is unpacked on."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    cleaned = _UNSAFE.sub("_", plain).strip(" .")[:120]
    return cleaned or fallback


def slug_of(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", plain).strip("-")[:48] or "dataset"


@attrs.frozen
class Package:
    """A made package: its download name, media type and the temporary file the caller removes."""

    name: str
    media_type: str
    path: Path


class FairService:
    def __init__(
        self, gate: ProjectGate, store: FairStore, people: People, datasets: DatasetsService,
        documents: DocumentsService, records: RecordsService, files: LocalFiles, *, publisher: str, base_url: str,
    ) -> None:  # fmt: skip
        self._gate = gate
        self._store = store
        self._people = people
        self._datasets = datasets
        self._documents = documents
        self._records = records
        self._files = files
        self.publisher = publisher or "LabHub"
        self.base_url = base_url.rstrip("/")

    # -- the hooks ---------------------------------------------------------------------------------

    async def refuse_published(self, version_ids: list[str]) -> None:
        """A published version is never removed: unpublish it first."""
        for version_id in version_ids:
            published = await self._store.of_version(version_id)
            if published is not None:
                raise Conflict(
                    f"version {published.version} is published at /d/{published.slug}: unpublish it first",
                    code="published",
                )

    async def purge_project(self, project_id: str) -> None:
        await self._store.delete_project(project_id)

    def add_to_lineage(self, lineage: LineageService) -> None:
        lineage.register("export", self._export_found, {"dataset": self._exports_of})

    async def _export_found(self, export_id: str) -> Found | None:
        doc = await self._store.export(export_id)
        if doc is None:
            return None
        node = LineageNode(
            f"export:{export_id}", "export", export_id, f"{doc['format']} package", project_id=str(doc["project_id"]),
            created_at=doc["created_at"], created_by={"id": str(doc["created_by"]), "name": ""},
            details={"format": doc["format"], "name": doc.get("name", "")},
        )  # fmt: skip
        return Found(node, str(doc["project_id"]), [("wasDerivedFrom", Ref("dataset", v)) for v in doc["version_ids"]])

    async def _exports_of(self, here: Found) -> list[tuple[str, Ref]]:
        made = await self._store.exports_of_version(here.node.version_id or "")
        return [("wasDerivedFrom", Ref("export", str(d["_id"]))) for d in made]

    # -- exports -----------------------------------------------------------------------------------

    async def export_dataset(self, actor: User, dataset_id: str, query: ExportQuery) -> Package | dict[str, Any]:
        stored = await self._datasets.readable(actor, dataset_id, query.version)
        d = stored.dataset
        published = await self._store.of_version(stored.id)
        chosen = license_url(query.license, "query.license") if query.license else None
        licence = chosen or (published.license if published else None)
        title = published.title if published else d.name
        description = published.description if published else f"{d.name}, version {d.version}, from LabHub"
        authors = await self._authors([stored])
        if query.format == "datacite":
            await self._record(actor, d.project_id, "datacite", [stored.id], f"{d.name}.datacite.json")
            url = f"{self.base_url}/d/{published.slug}" if published else f"{self.base_url}/api/datasets/{d.id}?version={d.version}"
            return datacite(stored, title=title, description=description, license_url=licence,
                            publisher=self.publisher, authors=authors, url=url,
                            published=published.published_at if published else None)  # fmt: skip
        packed = await self._pack(stored, "", authors)
        stem = safe_name(Path(d.name).stem, "dataset") + (f"-v{d.version}" if d.latest_version > 1 else "")
        metadata = crate_metadata(
            [packed], title=title, description=description, license_url=licence or NO_LICENSE,
            publisher=self.publisher, published=published.published_at if published else utcnow(),
            base_url=self.base_url,
        )  # fmt: skip
        package = await self._zip(packed.files, metadata, stem, bag=query.format == "bagit", title=title)
        await self._record(actor, d.project_id, query.format, [stored.id], package.name)
        return package

    async def export_project(self, actor: User, project_id: str, chosen: ProjectExport) -> Package:
        chosen = chosen.checked()
        project = await self._gate.require(actor, project_id, Need.READ)
        versions: list[StoredDataset] = []
        for dataset_id in chosen.dataset_ids:
            stored = await self._datasets.readable(actor, dataset_id)
            if stored.dataset.project_id != project.id:
                raise field_error("$.dataset_ids", f"{dataset_id} is not a dataset of this project")
            versions.append(stored)
        authors = await self._authors(versions)
        packed: list[PackedDataset] = []
        used: set[str] = set()
        for stored in versions:
            name = safe_name(Path(stored.dataset.name).stem, "dataset")
            while name in used:
                name += "-" + stored.id[-4:]
            used.add(name)
            packed.append(await self._pack(stored, f"datasets/{name}/", authors))
        files = [f for p in packed for f in p.files]
        extra: list[dict[str, Any]] = []
        in_package = {p.stored.dataset.id: p.prefix for p in packed}
        for document_id in chosen.document_ids:
            document = await self._documents.get(actor, document_id)
            if document.project_id != project.id:
                raise field_error("$.document_ids", f"{document_id} is not a document of this project")
            local = await self._document_copy(actor, document_id)
            path = f"documents/{safe_name(document.name, 'document')}"
            files.append(PackedFile(path, document.name, document.content_type, document.size, document.sha256, str(local)))
            extra.append({"@id": path, "@type": "File", "name": document.name, "encodingFormat": document.content_type,
                          "contentSize": str(document.size), "sha256": document.sha256, "version": str(document.version),
                          "description": f"a document of the project (version {document.version})",
                          **_mentions(document.dataset_ids, in_package)})  # fmt: skip
        for record_id in chosen.record_ids:
            record, _project = await self._records.get(actor, record_id)
            if record.project_id != project.id:
                raise field_error("$.record_ids", f"{record_id} is not a record of this project")
            body = json.dumps({"id": record.id, "kind": record.kind, "title": record.title, "data": record.data,
                               "tags": record.tags, "dataset_ids": record.dataset_ids,
                               "created_at": record.created_at.isoformat(), "updated_at": record.updated_at.isoformat()},
                              indent=2, default=str).encode()  # fmt: skip
            path = f"records/{record.id}.json"
            digest = hashlib.sha256(body).hexdigest()
            files.append(PackedFile(path, record.title, "application/json", len(body), digest, text=body))
            cited = [*record.dataset_ids, *([record.dataset_id] if record.dataset_id else [])]
            extra.append({"@id": path, "@type": "File", "name": record.title, "encodingFormat": "application/json",
                          "contentSize": str(len(body)), "sha256": digest, "description": f"a {record.kind} record",
                          **_mentions(cited, in_package)})  # fmt: skip
        title = (chosen.title or project.name).strip()
        licence = license_url(chosen.license, "$.license") if chosen.license else NO_LICENSE
        metadata = crate_metadata(
            packed, title=title, description=chosen.description or f"Chosen data of the project {project.name}",
            license_url=licence, publisher=self.publisher, published=utcnow(), base_url=self.base_url, extra_parts=extra,
        )  # fmt: skip
        package = await self._zip(files, metadata, safe_name(title, "export"), bag=chosen.format == "bagit", title=title)
        await self._record(actor, project.id, chosen.format, [s.id for s in versions], package.name)
        return package

    async def _authors(self, versions: list[StoredDataset]) -> list[tuple[str, str]]:
        """The project members who made the versions (who uploaded or saved each), by name."""
        ids = list(dict.fromkeys(s.dataset.created_by for s in versions))
        people = await self._people.get_many(ids)
        return [(i, people[i].name if i in people else "") for i in ids]

    async def _pack(self, stored: StoredDataset, prefix: str, authors: list[tuple[str, str]]) -> PackedDataset:
        d = stored.dataset
        parquet = await self._datasets.local_parquet(stored)
        raw = await self._datasets.raw_file(stored)
        csv_path = await self._datasets.local_csv(stored)
        size, sha = csv_path.stat().st_size, await asyncio.to_thread(_sha256_of, csv_path)
        stem = safe_name(Path(d.name).stem, "data")
        files = [
            PackedFile(f"{prefix}{stem}.parquet", f"{d.name} (Parquet)", PARQUET, parquet.stat().st_size,
                       stored.parquet_sha256, str(parquet)),
            PackedFile(f"{prefix}{stem}.csv", f"{d.name} (CSV)", "text/csv", size, sha, str(csv_path)),
            PackedFile(f"{prefix}raw/{safe_name(d.source.name, 'raw')}", d.source.name, d.source.content_type,
                       d.source.size, d.source.sha256, str(raw)),
        ]  # fmt: skip
        made_by = [a for a in authors if a[0] == d.created_by] or authors[:1]
        return PackedDataset(stored, prefix, files, made_by)

    async def _document_copy(self, actor: User, document_id: str) -> Path:
        content = await self._documents.content(actor, document_id, None)
        local = self._files.work / f"export-{uuid.uuid4().hex}.doc"
        async with self._documents.open(content, None) as reader:
            with local.open("wb") as handle:
                async for chunk in reader.chunks():
                    handle.write(chunk)
        return local

    async def _zip(self, files: list[PackedFile], metadata: dict[str, Any], stem: str, *, bag: bool, title: str) -> Package:
        out = self._files.work / f"export-{uuid.uuid4().hex}.zip"
        try:
            await asyncio.to_thread(_write_zip, out, files, metadata, stem, bag, self.publisher, title)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
        finally:
            for f in files:  # the document copies made for this package
                if f.local and Path(f.local).name.startswith("export-"):
                    Path(f.local).unlink(missing_ok=True)
        suffix = "-bag.zip" if bag else ".crate.zip"
        return Package(f"{stem}{suffix}", "application/zip", out)

    async def _record(self, actor: User, project_id: str, fmt: str, version_ids: list[str], name: str) -> None:
        await self._store.record_export({"project_id": project_id, "format": fmt, "version_ids": version_ids,
                                         "name": name, "created_by": actor.id})  # fmt: skip

    # -- publications ------------------------------------------------------------------------------

    async def publish(self, actor: User, dataset_id: str, request: PublishRequest) -> Publication:
        request = request.checked()
        stored = await self._datasets.readable(actor, dataset_id, request.version)
        d = stored.dataset
        await self._gate.require(actor, d.project_id, Need.MANAGE, what="dataset")
        if await self._store.of_version(stored.id) is not None:
            raise Conflict(f"version {d.version} is published already", code="published")
        base = request.slug or f"{slug_of(Path(d.name).stem)}-v{d.version}"
        fields = {
            "dataset_id": d.id, "version": d.version, "version_id": stored.id, "project_id": d.project_id,
            "title": (request.title or d.name).strip(), "description": request.description.strip(),
            "license": license_url(request.license, "$.license"), "published_at": utcnow(), "published_by": actor.id,
        }  # fmt: skip
        made = None
        for attempt in range(1 if request.slug else 5):
            slug = base if attempt == 0 else f"{base}-{uuid.uuid4().hex[:6]}"
            made = await self._store.publish({**fields, "slug": slug})
            if made is not None:
                break
        if made is None:
            raise Conflict(f"the page name {base!r} is taken: choose another slug", code="slug_taken")
        await self._datasets.set_published(stored.id, {"slug": made.slug, "license": made.license,
                                                       "published_at": made.published_at})  # fmt: skip
        return self._with_url(made)

    async def unpublish(self, actor: User, dataset_id: str, version: int | None) -> None:
        stored = await self._datasets.readable(actor, dataset_id)
        await self._gate.require(actor, stored.dataset.project_id, Need.MANAGE, what="dataset")
        published = [p for p in await self._store.of_dataset(stored.dataset.id) if version in (None, p.version)]
        if not published:
            raise NotFound("the dataset has no published version" if version is None else f"version {version} is not published")
        for p in published:
            await self._store.unpublish(p.slug)
            await self._datasets.set_published(p.version_id, None)

    async def publications(self, actor: User, dataset_id: str) -> list[Publication]:
        stored = await self._datasets.readable(actor, dataset_id)
        return [self._with_url(p) for p in await self._store.of_dataset(stored.dataset.id)]

    def _with_url(self, publication: Publication) -> Publication:
        return attrs.evolve(publication, url=f"{self.base_url}/d/{publication.slug}")

    # -- the public side: no session ---------------------------------------------------------------

    async def public(self, slug: str) -> tuple[Publication, StoredDataset, list[tuple[str, str]]]:
        """A published version (NotFound when the slug names none: unpublished, or never)."""
        published = await self._store.by_slug(slug) if re.fullmatch(r"[a-z0-9-]{1,80}", slug) else None
        stored = await self._datasets.find_version(published.version_id) if published else None
        if published is None or stored is None:
            raise NotFound("no published dataset here")
        return self._with_url(published), stored, await self._authors([stored])

    async def public_file(self, slug: str, kind: str) -> tuple[str, str, Path]:
        """(download name, media type, local cached file) of a published version."""
        _published, stored, _authors = await self.public(slug)
        d = stored.dataset
        stem = safe_name(Path(d.name).stem, "data")
        if kind == "parquet":
            return f"{stem}.parquet", PARQUET, await self._datasets.local_parquet(stored)
        if kind == "raw":
            return safe_name(d.source.name, "raw"), d.source.content_type, await self._datasets.raw_file(stored)
        return f"{stem}.csv", "text/csv", await self._datasets.local_csv(stored)


def _sha256_of(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _mentions(dataset_ids: list[str], in_package: dict[str, str]) -> dict[str, Any]:
    mentioned = [{"@id": in_package[i]} for i in dataset_ids if i in in_package]
    return {"mentions": one(mentioned)} if mentioned else {}


def _write_zip(
    out: Path, files: list[PackedFile], metadata: dict[str, Any], stem: str, bag: bool, publisher: str, title: str
) -> None:
    """The crate (its files and ro-crate-metadata.json) as a zip; as a bag, under <stem>/data/ with
    the BagIt tag files beside it."""
    meta = json.dumps(metadata, indent=2, ensure_ascii=False).encode()
    root = f"{stem}/data/" if bag else ""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        archive.writestr(f"{root}ro-crate-metadata.json", meta)
        for f in files:
            store = zipfile.ZIP_STORED if f.media_type == PARQUET else zipfile.ZIP_DEFLATED
            if f.text is not None:
                archive.writestr(f"{root}{f.path}", f.text, compress_type=store)
            else:
                archive.write(f.local, f"{root}{f.path}", compress_type=store)
        if bag:
            payload = [("ro-crate-metadata.json", hashlib.sha256(meta).hexdigest(), len(meta))]
            payload += [(f.path, f.sha256, f.size) for f in files]
            for name, body in bag_tags(payload, publisher=publisher, title=title, bagged=utcnow()).items():
                archive.writestr(f"{stem}/{name}", body)
