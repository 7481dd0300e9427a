"""A lineage graph as W3C PROV (docs/architecture.md, "Lineage"), written by the `prov` package.

Ingestions and saved queries are activities, the rest entities; people are agents, and so is the
software that did the work (LabHub, and the parser's libraries with their versions). Hidden nodes
stay entities with nothing but their kind.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prov.model import ProvDocument

from domain import __version__
from domain.lineage.models import LineageGraph, LineageNode

ACTIVITIES = {"ingestion", "query"}
LABHUB = "https://w3id.org/labhub/ns#"


def _name(key: str) -> str:
    return "labhub:" + key.replace(":", "-")


def _attributes(node: LineageNode) -> dict[str, Any]:
    attributes: dict[str, Any] = {"prov:type": f"labhub:{node.kind}"}
    if node.hidden:
        attributes["labhub:hidden"] = True
        return attributes
    attributes["prov:label"] = node.label
    for name in ("id", "project_id", "version", "version_id"):
        value = getattr(node, name)
        if value is not None:
            attributes[f"labhub:{name}"] = value
    for name, value in node.details.items():
        if isinstance(value, str | int | float | bool) and value is not None:
            attributes[f"labhub:{name}"] = value
    return attributes


class _Agents:
    """Each agent declared once, however many activities and entities name it."""

    def __init__(self, document: ProvDocument) -> None:
        self._document = document
        self._made: dict[str, Any] = {}

    def get(self, name: str, attributes: dict[str, Any]) -> Any:
        if name not in self._made:
            self._made[name] = self._document.agent(f"labhub:{name}", attributes)
        return self._made[name]


def prov_document(graph: LineageGraph, base_url: str) -> ProvDocument:
    document = ProvDocument()
    document.add_namespace("labhub", LABHUB)
    document.add_namespace("lh", base_url.rstrip("/") + "/api/")
    agents = _Agents(document)
    labhub = agents.get("software-labhub", {"prov:type": "prov:SoftwareAgent", "prov:label": f"LabHub {__version__}"})
    for node in graph.nodes:
        name = _name(node.key)
        if node.kind in ACTIVITIES and not node.hidden:
            activity = document.activity(name, node.created_at, None, _attributes(node))
            document.wasAssociatedWith(activity, labhub)
            for library, version in (node.details.get("versions") or {}).items():
                agent = agents.get(f"software-{library}-{version}", {"prov:type": "prov:SoftwareAgent",
                                                                      "prov:label": f"{library} {version}"})  # fmt: skip
                document.wasAssociatedWith(activity, agent)
        elif node.kind in ACTIVITIES:
            document.activity(name, None, None, _attributes(node))
        else:
            document.entity(name, _attributes(node))
        if node.created_by and not node.hidden:
            person = agents.get(f"person-{node.created_by['id']}",
                                {"prov:type": "prov:Person", "prov:label": node.created_by.get("name") or ""})  # fmt: skip
            if node.kind in ACTIVITIES:
                document.wasAssociatedWith(name, person)
            else:
                document.wasAttributedTo(name, person)
    relations: dict[str, Callable[[str, str], object]] = {
        "used": document.used, "wasGeneratedBy": document.wasGeneratedBy, "wasRevisionOf": document.wasRevisionOf,
        "wasInfluencedBy": document.wasInfluencedBy, "wasDerivedFrom": document.wasDerivedFrom,
    }  # fmt: skip
    for edge in graph.edges:  # subject first, as PROV says them: an activity used an entity, ...
        relations[edge.relation](_name(edge.source), _name(edge.target))
    return document


def prov_json(graph: LineageGraph, base_url: str) -> str:
    text = prov_document(graph, base_url).serialize(format="json")
    return str(text)
