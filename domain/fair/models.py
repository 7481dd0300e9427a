"""What an export or a publication asks for and what it answers (docs/architecture.md, "Publishing and archiving")."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

import attrs

from domain.core.errors import field_error
from domain.core.ids import check_dataset_ids, looks_like_id

SPDX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,63}$")
URL = re.compile(r"^https?://[^\s<>\"']{1,500}$")
SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
MAX_DESCRIPTION = 10_000
MAX_TITLE = 300
MAX_PARTS = 100


def license_url(value: str, path: str) -> str:
    """An SPDX licence id (CC-BY-4.0) or a licence's URL, as the URL that names it."""
    value = value.strip()
    if URL.match(value):
        return value
    if SPDX_ID.match(value):
        return f"https://spdx.org/licenses/{value}"
    raise field_error(path, "must be an SPDX licence id (e.g. CC-BY-4.0) or the licence's URL")


@attrs.frozen
class ExportQuery:
    """GET /api/datasets/{id}/export. format: ro-crate (a zip), bagit (the crate in a BagIt bag, a
    zip) or datacite (DataCite JSON 4.x); version: which version (default: the latest); license:
    an SPDX id or URL (default: the version's publication's, else none given)."""

    format: Literal["ro-crate", "bagit", "datacite"] = "ro-crate"
    version: int | None = None
    license: str | None = None


@attrs.frozen
class ProjectExport:
    """POST /api/projects/{pid}/exports: chosen datasets (their latest versions), documents and
    records of the project, packed as one RO-Crate (or BagIt bag) zip."""

    dataset_ids: list[str] = attrs.field(factory=list)
    document_ids: list[str] = attrs.field(factory=list)
    record_ids: list[str] = attrs.field(factory=list)
    format: Literal["ro-crate", "bagit"] = "ro-crate"
    title: str | None = None
    description: str | None = None
    license: str | None = None

    def checked(self) -> ProjectExport:
        for name in ("dataset_ids", "document_ids", "record_ids"):
            values = getattr(self, name)
            if name == "dataset_ids":
                check_dataset_ids(values, f"$.{name}")
            elif any(not looks_like_id(v) for v in values):
                raise field_error(f"$.{name}", "must list ids (24 hexadecimal characters)")
        total = len(self.dataset_ids) + len(self.document_ids) + len(self.record_ids)
        if not total or total > MAX_PARTS:
            raise field_error("$", f"choose 1 to {MAX_PARTS} datasets, documents and records")
        if self.title is not None and not 0 < len(self.title.strip()) <= MAX_TITLE:
            raise field_error("$.title", f"must be 1-{MAX_TITLE} characters")
        if self.description is not None and len(self.description) > MAX_DESCRIPTION:
            raise field_error("$.description", f"at most {MAX_DESCRIPTION} characters")
        return self


@attrs.frozen
class PublishRequest:
    """POST /api/datasets/{id}/publication: publish a version (default: the latest) with a licence
    (SPDX id or URL) and a description; slug: the page's name (/d/{slug}; default: from the name)."""

    license: str
    description: str
    version: int | None = None
    title: str | None = None
    slug: str | None = None

    def checked(self) -> PublishRequest:
        license_url(self.license, "$.license")
        if not self.description.strip() or len(self.description) > MAX_DESCRIPTION:
            raise field_error("$.description", f"must be 1-{MAX_DESCRIPTION} characters")
        if self.title is not None and not 0 < len(self.title.strip()) <= MAX_TITLE:
            raise field_error("$.title", f"must be 1-{MAX_TITLE} characters")
        if self.slug is not None and not SLUG.match(self.slug):
            raise field_error("$.slug", "lower-case letters, digits and dashes, 1-64 characters")
        return self


@attrs.frozen
class Publication:
    """A published dataset version: its public page is url (/d/{slug}), no sign-in needed."""

    slug: str
    url: str
    dataset_id: str
    version: int
    version_id: str
    project_id: str
    title: str
    description: str
    license: str  # the licence's URL
    published_at: datetime
    published_by: str


@attrs.frozen
class UnpublishQuery:
    """version: which published version to take down (default: every published version)."""

    version: int | None = None
