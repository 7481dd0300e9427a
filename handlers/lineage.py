"""/api/lineage: what a stored thing came from and what came from it (docs/architecture.md, "Lineage")."""

from __future__ import annotations

from aiohttp import web

from domain.lineage.models import LineageGraph, LineageQuery
from domain.lineage.prov import prov_json
from handlers.codec import json_response, parse_query
from handlers.identity import require_user
from handlers.keys import LINEAGE, SETTINGS
from handlers.openapi import doc

routes = web.RouteTableDef()


@routes.get("/api/lineage")
@doc("The lineage of a file, ingestion, dataset (version), saved query, plot, record, document or export: "
     "{root, nodes, edges} with PROV's relations, only what the caller may read (anything else is a hidden "
     "node); format=prov-json answers W3C PROV-JSON (as application/prov+json)", query=LineageQuery,
     response=LineageGraph, response_content_type=("application/json", "application/prov+json"))  # fmt: skip
async def lineage(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, LineageQuery)
    graph = await request.app[LINEAGE].graph(actor, query)
    if query.format == "prov-json":
        base = request.app[SETTINGS].http.public_url or f"{request.scheme}://{request.host}"
        return web.Response(text=prov_json(graph, base), content_type="application/prov+json")
    return json_response(graph)
