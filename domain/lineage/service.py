"""Lineage (docs/architecture.md, "Lineage"): the graph of raw files, ingestions, dataset versions,
saved queries, plots, citing records and documents, and exports, read from what each area keeps.

Each kind has a resolver (its thing, its project, what it came from: the "up" edges) and "down"
hooks (what came from it). The walk goes up from the start, down from the start, or both, never
turning back, and shows only what the caller may read: anything else is a "hidden" node, with its
kind and nothing more, and the walk does not go through it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import attrs

from domain.accounts.models import User
from domain.accounts.people import People
from domain.core.errors import NotFound
from domain.datasets.ingestion import IngestionService
from domain.datasets.models import StoredDataset
from domain.datasets.service import DatasetsService
from domain.documents.service import DocumentsService
from domain.lineage.models import MAX_NODES, Found, LineageEdge, LineageGraph, LineageNode, LineageQuery, Ref
from domain.projects.service import ProjectGate
from domain.records.service import RecordsService
from domain.visualizations.service import VisualizationsService

Resolver = Callable[[str], Awaitable[Found | None]]
SHA256_LENGTH = 64
Down = Callable[[Found], Awaitable[list[tuple[str, Ref]]]]


def _by(user_id: str | None) -> dict[str, str] | None:
    return {"id": user_id, "name": ""} if user_id else None


class LineageService:
    def __init__(
        self, gate: ProjectGate, people: People, datasets: DatasetsService, ingestions: IngestionService,
        visualizations: VisualizationsService, records: RecordsService, documents: DocumentsService,
    ) -> None:  # fmt: skip
        self._gate = gate
        self._people = people
        self._datasets = datasets
        self._ingestions = ingestions
        self._visualizations = visualizations
        self._records = records
        self._documents = documents
        self._resolvers: dict[str, Resolver] = {
            "file": self._file, "ingestion": self._ingestion, "dataset": self._dataset, "query": self._query,
            "plot": self._plot, "record": self._record, "document": self._document,
        }  # fmt: skip
        self._downs: dict[str, list[Down]] = {
            "file": [self._file_down], "ingestion": [self._ingestion_down], "dataset": [self._dataset_down],
            "query": [self._query_down],
        }  # fmt: skip

    def register(self, kind: str, resolver: Resolver, downs: dict[str, Down] | None = None) -> None:
        """Another area's kind (exports), and what of its kind comes from the kinds here."""
        self._resolvers[kind] = resolver
        for of_kind, down in (downs or {}).items():
            self._downs.setdefault(of_kind, []).append(down)

    # -- the walk ----------------------------------------------------------------------------------

    async def graph(self, actor: User, query: LineageQuery) -> LineageGraph:
        query = query.checked()
        readable = await self._gate.readable_ids(actor)
        start = await self._start(query, readable)
        first = await self._resolvers[start.kind](start.id)
        if first is None or not self._may_read(readable, first.project_id):
            raise NotFound(f"{query.kind} not found")
        nodes: dict[str, LineageNode] = {start.key: first.node}
        edges: dict[tuple[str, str, str], LineageEdge] = {}
        hidden: dict[str, str] = {}
        found: dict[str, Found | None] = {start.key: first}
        truncated = False
        for direction in ("up", "down") if query.direction == "both" else (query.direction,):
            frontier = [start]
            for _ in range(query.depth):
                following: list[Ref] = []
                for ref in frontier:
                    here = found[ref.key]
                    if here is None:
                        continue
                    steps = here.up if direction == "up" else await self._down(here)
                    for relation, other in steps:
                        if other.key not in found:
                            if len(nodes) >= MAX_NODES:
                                truncated = True
                                continue
                            resolver = self._resolvers.get(other.kind)
                            found[other.key] = await resolver(other.id) if resolver else None
                            thing = found[other.key]
                            if thing is None:  # gone since (a deleted dataset a plot was made from)
                                continue
                            if self._may_read(readable, thing.project_id):
                                nodes[other.key] = thing.node
                                following.append(other)
                            else:
                                hidden[other.key] = f"hidden:{len(hidden) + 1}"
                                nodes[hidden[other.key]] = LineageNode(hidden[other.key], other.kind, hidden=True)
                                found[other.key] = None  # never walked through
                        if found.get(other.key) is None and other.key not in hidden:
                            continue
                        target = hidden.get(other.key, other.key)
                        source, target = (ref.key, target) if direction == "up" else (target, ref.key)
                        edges[(source, relation, target)] = LineageEdge(source, relation, target)
                frontier = following
        return LineageGraph(start.key, await self._named(list(nodes.values())), list(edges.values()), truncated)

    async def _start(self, query: LineageQuery, readable: set[str] | None) -> Ref:
        if query.kind == "file" and len(query.id) == SHA256_LENGTH:  # the bytes: their newest readable upload
            uploads = await self._ingestions.with_file(query.id, readable)
            if not uploads:
                raise NotFound("file not found")
            return Ref("file", uploads[0])
        if query.kind != "dataset":
            return Ref(query.kind, query.id)
        stored = await self._datasets.find(query.id, query.version)
        if stored is None:
            raise NotFound("dataset not found")
        return Ref("dataset", stored.id)

    @staticmethod
    def _may_read(readable: set[str] | None, project_id: str) -> bool:
        return readable is None or project_id in readable

    async def _down(self, here: Found) -> list[tuple[str, Ref]]:
        steps: list[tuple[str, Ref]] = []
        for down in self._downs.get(here.node.kind, []):
            steps.extend(await down(here))
        return steps

    async def _named(self, nodes: list[LineageNode]) -> list[LineageNode]:
        """Who made each thing, by name (one read of the people)."""
        ids = list({n.created_by["id"] for n in nodes if n.created_by})
        people = await self._people.get_many(ids) if ids else {}

        def named(n: LineageNode) -> LineageNode:
            if not n.created_by:
                return n
            who = people.get(n.created_by["id"])
            return attrs.evolve(n, created_by={"id": n.created_by["id"], "name": who.name if who else ""})

        return [named(n) for n in nodes]

    # -- the kinds ---------------------------------------------------------------------------------

    async def _dataset(self, version_id: str) -> Found | None:
        stored = await self._datasets.find_version(version_id)
        return None if stored is None else await self._dataset_found(stored)

    async def _dataset_found(self, stored: StoredDataset) -> Found:
        d = stored.dataset
        provenance = d.provenance
        made_by = Ref("query" if provenance.get("derived_from") == "sql" else "ingestion", d.job_id)
        up: list[tuple[str, Ref]] = [("wasGeneratedBy", made_by)]
        if d.version > 1:
            before = await self._datasets.adjacent_version(d.id, d.version, later=False)
            if before is not None:
                up.append(("wasRevisionOf", Ref("dataset", before.id)))
        node = LineageNode(
            f"dataset:{stored.id}", "dataset", d.id, d.name, project_id=d.project_id, version=d.version,
            version_id=stored.id, created_at=d.created_at, created_by=_by(d.created_by),
            details={"rows": d.row_count, "columns": len(d.schema), "parquet_sha256": stored.parquet_sha256,
                     "source": d.source.name},
        )  # fmt: skip
        return Found(node, d.project_id, up)

    async def _dataset_down(self, here: Found) -> list[tuple[str, Ref]]:
        node = here.node
        dataset_id, version_id = node.id or "", node.version_id or ""
        plots, made, records, documents, after = await asyncio.gather(
            self._visualizations.of_version(dataset_id, version_id),
            self._datasets.made_from(version_id, dataset_id),
            self._records.citing(dataset_id),
            self._documents.citing(dataset_id),
            self._datasets.adjacent_version(dataset_id, node.version or 1, later=True),
        )
        steps: list[tuple[str, Ref]] = [("wasDerivedFrom", Ref("plot", p.id)) for p in plots]
        steps += [("used", Ref("query", job_id)) for _version, job_id in made]
        if after is None:  # citations name the dataset: they hang from its latest version
            steps += [("wasInfluencedBy", Ref("record", r.id)) for r in records]
            steps += [("wasInfluencedBy", Ref("document", d.id)) for d in documents]
        else:
            steps.append(("wasRevisionOf", Ref("dataset", after.id)))
        return steps

    async def _ingestion(self, ingestion_id: str) -> Found | None:
        ingestion = await self._ingestions.find(ingestion_id)
        if ingestion is None:
            return None
        made = await self._datasets.versions_made_by(ingestion.id)
        provenance = made[0].dataset.provenance if made else {}
        node = LineageNode(
            f"ingestion:{ingestion.id}", "ingestion", ingestion.id,
            f"Ingestion of {ingestion.file.name}{f' — {ingestion.sheet}' if ingestion.sheet else ''}",
            project_id=ingestion.project_id, created_at=ingestion.created_at, created_by=_by(ingestion.created_by),
            details={"format": provenance.get("format"), "options": ingestion.options,
                     "versions": provenance.get("versions") or {}, "attempt": provenance.get("attempt")},
        )  # fmt: skip
        return Found(node, ingestion.project_id, [("used", Ref("file", ingestion.id))], {"made": made})

    async def _ingestion_down(self, here: Found) -> list[tuple[str, Ref]]:
        made = here.extra.get("made")
        if made is None:
            made = await self._datasets.versions_made_by(here.node.id or "")
        return [("wasGeneratedBy", Ref("dataset", s.id)) for s in made]

    async def _file(self, ingestion_id: str) -> Found | None:
        """The raw file an ingestion read (a file is named by the ingestion it came in with: the same
        bytes uploaded in another project are another node)."""
        ingestion = await self._ingestions.find(ingestion_id)
        if ingestion is None:
            return None
        f = ingestion.file
        node = LineageNode(
            f"file:{ingestion.id}", "file", ingestion.id, f.name, project_id=ingestion.project_id,
            created_at=ingestion.created_at, created_by=_by(ingestion.created_by),
            details={"sha256": f.sha256, "size": f.size, "content_type": f.content_type},
        )  # fmt: skip
        return Found(node, ingestion.project_id)

    async def _file_down(self, here: Found) -> list[tuple[str, Ref]]:
        return [("used", Ref("ingestion", here.node.id or ""))]

    async def _query(self, job_id: str) -> Found | None:
        made = await self._datasets.versions_made_by(job_id)
        if not made:
            return None
        d = made[0].dataset
        p = d.provenance
        inputs = p.get("inputs") or []
        node = LineageNode(
            f"query:{job_id}", "query", job_id, f"Query saved as {d.name}", project_id=d.project_id,
            created_at=d.created_at, created_by=_by(d.created_by),
            details={"sql": p.get("query"), "versions": p.get("versions") or {}},
        )  # fmt: skip
        up = [("used", Ref("dataset", i.get("version_id") or i["dataset_id"])) for i in inputs]
        return Found(node, d.project_id, up, {"made": made})

    async def _query_down(self, here: Found) -> list[tuple[str, Ref]]:
        return [("wasGeneratedBy", Ref("dataset", s.id)) for s in here.extra.get("made", [])]

    async def _plot(self, plot_id: str) -> Found | None:
        plot = await self._visualizations.find(plot_id)
        if plot is None:
            return None
        spec = plot.spec
        label = f"{getattr(spec, 'kind', 'plot')} plot{f' “{spec.title}”' if getattr(spec, 'title', '') else ''}"
        node = LineageNode(
            f"plot:{plot.id}", "plot", plot.id, label, project_id=plot.project_id, version=plot.version,
            created_at=plot.created_at, created_by=_by(plot.created_by),
            details={"library_versions": plot.library_versions},
        )  # fmt: skip
        source = plot.dataset_version_id or plot.dataset_id
        return Found(node, plot.project_id, [("wasDerivedFrom", Ref("dataset", source))] if source else [])

    async def _cited(self, dataset_ids: list[str]) -> list[tuple[str, Ref]]:
        steps = []
        for dataset_id in dict.fromkeys(dataset_ids):
            latest = await self._datasets.find(dataset_id)
            if latest is not None:
                steps.append(("wasInfluencedBy", Ref("dataset", latest.id)))
        return steps

    async def _record(self, record_id: str) -> Found | None:
        record = await self._records.find(record_id)
        if record is None:
            return None
        node = LineageNode(
            f"record:{record.id}", "record", record.id, record.title, project_id=record.project_id,
            created_at=record.created_at, created_by=_by(record.created_by), details={"kind": record.kind},
        )  # fmt: skip
        cited = [*record.dataset_ids, *([record.dataset_id] if record.dataset_id else [])]
        return Found(node, record.project_id, await self._cited(cited))

    async def _document(self, document_id: str) -> Found | None:
        document = await self._documents.find(document_id)
        if document is None:
            return None
        node = LineageNode(
            f"document:{document.id}", "document", document.id, document.name, project_id=document.project_id,
            version=document.version, created_at=document.updated_at, created_by=_by(document.created_by),
            details={"sha256": document.sha256, "size": document.size},
        )  # fmt: skip
        return Found(node, document.project_id, await self._cited(document.dataset_ids))

