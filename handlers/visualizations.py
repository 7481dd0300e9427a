"""/api/visualizations: plots of datasets, rendered by jobs, served safely."""

from __future__ import annotations

from typing import Literal

import attrs
from aiohttp import web

from domain.core.pagination import Page
from domain.visualizations.models import PlotSpec, Visualization
from handlers.codec import json_response, parse_body, parse_query
from handlers.datasets import VersionQuery
from handlers.downloads import stream_content
from handlers.identity import require_user
from handlers.keys import VISUALIZATIONS
from handlers.openapi import doc

routes = web.RouteTableDef()

IMAGE_HEADERS = {
    # plots are immutable once rendered: the browser may keep them
    "Cache-Control": "private, max-age=31536000, immutable",
    # an SVG opened directly can never run script or load anything
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
}


@attrs.frozen
class VisualizationListQuery:
    dataset_id: str | None = None
    limit: int | None = None
    cursor: str | None = None


@attrs.frozen
class ImageQuery:
    format: Literal["png", "svg"] | None = None


@routes.post("/api/datasets/{id}/visualizations")
@doc("Plot a dataset (its latest version, or ?version=): the spec is checked against its columns, then a "
     "job renders it", body=PlotSpec, query=VersionQuery, response=Visualization, status=202)  # fmt: skip
async def create_visualization(request: web.Request) -> web.Response:
    actor = await require_user(request)
    spec = await parse_body(request, PlotSpec)
    version = parse_query(request, VersionQuery).version
    visualization = await request.app[VISUALIZATIONS].create(actor, request.match_info["id"], spec, version)
    return json_response(visualization, status=202)


@routes.get("/api/projects/{pid}/visualizations")
@doc("The project's plots, newest first; dataset_id= for one dataset's", query=VisualizationListQuery,
     response=Page[Visualization])  # fmt: skip
async def list_visualizations(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, VisualizationListQuery)
    page = await request.app[VISUALIZATIONS].list_visualizations(
        actor, request.match_info["pid"], dataset_id=query.dataset_id, limit=query.limit, cursor=query.cursor
    )
    return json_response(page)


@routes.get("/api/visualizations/{id}")
@doc("A plot: spec, dataset and its version, status, library versions, creator", response=Visualization)
async def get_visualization(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[VISUALIZATIONS].get(actor, request.match_info["id"]))


@routes.get("/api/visualizations/{id}/image")
@doc("The rendered image (PNG or SVG, as the spec asked)", query=ImageQuery, response=bytes,
     response_content_type=("image/png", "image/svg+xml"))  # fmt: skip
async def visualization_image(request: web.Request) -> web.StreamResponse:
    actor = await require_user(request)
    query = parse_query(request, ImageQuery)
    service = request.app[VISUALIZATIONS]
    content = await service.image(actor, request.match_info["id"], query.format)
    return await stream_content(request, content, service.open, inline=True, headers=IMAGE_HEADERS)


@routes.delete("/api/visualizations/{id}")
@doc("Delete a plot and its image (creator, leads, heads)", status=204)
async def delete_visualization(request: web.Request) -> web.Response:
    actor = await require_user(request)
    await request.app[VISUALIZATIONS].delete(actor, request.match_info["id"])
    return web.Response(status=204)
