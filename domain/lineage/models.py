"""Lineage: what a stored thing was made from and what was made from it (docs/architecture.md, "Lineage")."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

import attrs

from domain.core.errors import field_error
from domain.core.ids import looks_like_id

KINDS = ("file", "ingestion", "dataset", "query", "plot", "record", "document", "export")
# PROV's relations, subject first: the newer thing, then what it came from or used
Relation = Literal["used", "wasGeneratedBy", "wasDerivedFrom", "wasRevisionOf", "wasInfluencedBy"]
MAX_DEPTH = 10
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_NODES = 500


@attrs.frozen
class LineageQuery:
    """GET /api/lineage. kind: file, ingestion, dataset, query, plot, record, document or export; id:
    its id (a dataset's id, with version= for an older version, or a version's own id; a file: the
    ingestion it came in with, or its sha256: then its newest upload the caller may read); direction: up (what it came from), down (what came from it) or
    both; depth: steps to follow, 1..10; format: json, or prov-json (W3C PROV-JSON)."""

    kind: str
    id: str
    direction: Literal["up", "down", "both"] = "both"
    depth: int = 3
    version: int | None = None
    format: Literal["json", "prov-json"] = "json"

    def checked(self) -> LineageQuery:
        if self.kind not in KINDS:
            raise field_error("query.kind", f"must be one of {', '.join(KINDS)}")
        if not looks_like_id(self.id) and not (self.kind == "file" and SHA256.match(self.id)):
            raise field_error("query.id", "must be an id (24 hexadecimal characters; a file's sha256 too)")
        if not 1 <= self.depth <= MAX_DEPTH:
            raise field_error("query.depth", f"must be between 1 and {MAX_DEPTH}")
        return self


@attrs.frozen
class Ref:
    """A thing in the graph before it is read: its kind and id (a dataset: the version's own id)."""

    kind: str
    id: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.id}"


@attrs.frozen
class LineageNode:
    """key: how edges name it ("dataset:<version id>"; "hidden:<n>" for what the caller may not read:
    then only its kind is told). id: the thing's id (a dataset's, with version and version_id)."""

    key: str
    kind: str
    id: str | None = None
    label: str = ""
    hidden: bool = False
    project_id: str | None = None
    version: int | None = None
    version_id: str | None = None
    created_at: datetime | None = None
    created_by: dict[str, str] | None = None  # {id, name}
    details: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class LineageEdge:
    """source relation target, as PROV says it: "plot wasDerivedFrom dataset", "ingestion used file"."""

    source: str
    relation: str
    target: str


@attrs.frozen
class LineageGraph:
    root: str
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    truncated: bool = False  # more than MAX_NODES: the rest is left out


@attrs.frozen
class Found:
    """A thing read for the graph: its node (not yet hidden), its project, and what it came from."""

    node: LineageNode
    project_id: str
    up: list[tuple[str, Ref]] = attrs.field(factory=list)  # (relation, what it came from)
    # set by the service from `down` hooks: (relation, what came from it)
    extra: dict[str, Any] = attrs.field(factory=dict)
