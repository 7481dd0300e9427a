"""Every route of the API and the console, with CORS, the standard headers and the OpenAPI
document built from them (docs/architecture.md, "The request path")."""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web

from domain import __version__
from handlers import (
    auth,
    calendar,
    datasets,
    device,
    documents,
    engagement,
    fair,
    health,
    ingestions,
    jobs,
    lineage,
    meetings,
    metrics,
    notifications,
    openapi,
    projects,
    records,
    sql,
    sso,
    system,
    tokens,
    tus,
    users,
    visualizations,
)
from handlers.console import setup_console
from handlers.keys import OPENAPI
from handlers.observe import add_standard_headers
from handlers.tus import EXPOSED_HEADERS

ROUTE_MODULES = (
    health, auth, users, projects, documents, records, ingestions, datasets, visualizations, sql, jobs,
    notifications, meetings, engagement, system, tokens, calendar, tus, metrics, openapi, lineage, fair,
    sso, device,
)  # fmt: skip


def add_routes(app: web.Application, cors_origins: tuple[str, ...]) -> None:
    for module in ROUTE_MODULES:
        app.add_routes(module.routes)
    setup_console(app)
    _setup_cors(app, cors_origins)
    app.on_response_prepare.append(add_standard_headers)
    app[OPENAPI] = openapi.build_openapi(app, version=__version__)


def _setup_cors(app: web.Application, origins: tuple[str, ...]) -> None:
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=True,
        allow_headers="*",
        allow_methods="*",
        expose_headers=("X-Request-ID", "Retry-After", "Content-Disposition", "LabHub-Row-Count", "LabHub-Truncated",
                        "LabHub-Elapsed-Ms", *EXPOSED_HEADERS),
        max_age=600,
    )
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(origins, options))
    for route in list(app.router.routes()):
        cors.add(route)
