"""Exports (RO-Crate, BagIt, DataCite), publications, and the public landing pages of published
dataset versions at /d/{slug} (docs/architecture.md, "Publishing and archiving")."""

from __future__ import annotations

import html
import json
from typing import Any

import attrs
from aiohttp import web

from domain.core.errors import NotFound
from domain.datasets.models import NUMBER_TYPES, PARQUET, StoredDataset, finite_number
from domain.fair.crate import license_name
from domain.fair.models import ExportQuery, ProjectExport, Publication, PublishRequest, UnpublishQuery
from domain.fair.service import Package
from handlers.codec import json_response, parse_body, parse_query
from handlers.console import ASSETS_PREFIX, CONSOLE
from handlers.downloads import content_disposition, stream_file
from handlers.identity import require_user
from handlers.keys import FAIR
from handlers.openapi import doc, not_api

routes = web.RouteTableDef()

PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP, "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


@attrs.frozen
class PublicDownload:
    format: str = "csv"


@routes.get("/api/datasets/{id}/export")
@doc("A dataset version packed for the world: format=ro-crate (a zip: Parquet, CSV, the raw file and "
     "ro-crate-metadata.json), bagit (that crate in a BagIt bag, a zip) or datacite (DataCite JSON 4.5)",
     query=ExportQuery, response=bytes, response_content_type=("application/zip", "application/json"))  # fmt: skip
async def export_dataset(request: web.Request) -> web.StreamResponse:
    actor = await require_user(request)
    query = parse_query(request, ExportQuery)
    made = await request.app[FAIR].export_dataset(actor, request.match_info["id"], query)
    if isinstance(made, Package):
        return await stream_file(request, made.path, made.name, made.media_type)
    return json_response(made)


@routes.post("/api/projects/{pid}/exports")
@doc("Chosen datasets (latest versions), documents and records of a project as one RO-Crate (or BagIt) zip",
     body=ProjectExport, response=bytes, response_content_type="application/zip")  # fmt: skip
async def export_project(request: web.Request) -> web.StreamResponse:
    actor = await require_user(request)
    chosen = await parse_body(request, ProjectExport)
    made = await request.app[FAIR].export_project(actor, request.match_info["pid"], chosen)
    return await stream_file(request, made.path, made.name, made.media_type)


@routes.post("/api/datasets/{id}/publication")
@doc("Publish a version (default: the latest) with a licence and a description: a public page at /d/{slug} "
     "(project leads and heads)", body=PublishRequest, response=Publication, status=201)  # fmt: skip
async def publish(request: web.Request) -> web.Response:
    actor = await require_user(request)
    body = await parse_body(request, PublishRequest)
    return json_response(await request.app[FAIR].publish(actor, request.match_info["id"], body), status=201)


@routes.delete("/api/datasets/{id}/publication")
@doc("Unpublish (version=, default every published version): the public page answers 404 afterwards "
     "(project leads and heads)", query=UnpublishQuery, status=204)  # fmt: skip
async def unpublish(request: web.Request) -> web.Response:
    actor = await require_user(request)
    query = parse_query(request, UnpublishQuery)
    await request.app[FAIR].unpublish(actor, request.match_info["id"], query.version)
    return web.Response(status=204)


@routes.get("/api/datasets/{id}/publications")
@doc("The dataset's published versions, with their public pages", response=list[Publication])
async def publications(request: web.Request) -> web.Response:
    actor = await require_user(request)
    return json_response(await request.app[FAIR].publications(actor, request.match_info["id"]))


# -- the public side: no session -------------------------------------------------------------------


def _not_found() -> web.Response:
    body = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Not found</title></head>"
            "<body><h1>Not found</h1><p>No published dataset is here (any more).</p></body></html>")  # fmt: skip
    return web.Response(status=404, text=body, content_type="text/html", headers=PAGE_HEADERS)


@routes.get("/d/{slug}")
@not_api
async def landing_page(request: web.Request) -> web.Response:
    fair = request.app[FAIR]
    try:
        published, stored, authors = await fair.public(request.match_info["slug"])
    except NotFound:
        return _not_found()
    stylesheet = f"{ASSETS_PREFIX}{request.app[CONSOLE].version}/app.css"
    page = render_page(published, stored, authors, publisher=fair.publisher, stylesheet=stylesheet)
    return web.Response(text=page, content_type="text/html", headers={**PAGE_HEADERS, "Cache-Control": "no-cache"})


@routes.get("/d/{slug}/download")
@not_api
async def public_download(request: web.Request) -> web.StreamResponse:
    wanted = request.query.get("format", "csv")
    if wanted not in {"csv", "parquet"}:
        raise web.HTTPBadRequest(text="format must be csv or parquet")
    try:
        name, media, path = await request.app[FAIR].public_file(request.match_info["slug"], wanted)
    except NotFound:
        return _not_found()
    return web.FileResponse(path, headers={"Content-Type": media, "Content-Disposition": content_disposition(name)})


@routes.get("/d/{slug}/raw")
@not_api
async def public_raw(request: web.Request) -> web.StreamResponse:
    try:
        name, _media, path = await request.app[FAIR].public_file(request.match_info["slug"], "raw")
    except NotFound:
        return _not_found()
    # as an attachment of octet-stream: the raw file is never shown as a page of this site
    return web.FileResponse(path, headers={"Content-Type": "application/octet-stream",
                                           "Content-Disposition": content_disposition(name)})  # fmt: skip


def json_ld(published: Publication, stored: StoredDataset, authors: list[tuple[str, str]], publisher: str) -> dict[str, Any]:
    """schema.org Dataset, for dataset search engines (Google Dataset Search reads this)."""
    d = stored.dataset
    variables = []
    for column in d.schema[:500]:
        stats = d.stats.get(column.name) or {}
        variable: dict[str, Any] = {"@type": "PropertyValue", "name": column.name, "description": f"{column.type} column"}
        if column.unit:
            variable["unitText"] = column.unit
        if column.type in NUMBER_TYPES:
            for key, prop in (("min", "minValue"), ("max", "maxValue")):
                if (number := finite_number(stats.get(key))) is not None:
                    variable[prop] = number
        variables.append(variable)
    keywords = [k for k in (d.dataset_type, d.tag) if k]
    return {
        "@context": "https://schema.org/",
        "@type": "Dataset",
        "@id": published.url,
        "name": published.title,
        "description": published.description,
        "url": published.url,
        "identifier": published.url,
        "version": str(d.version),
        "license": published.license,
        "isAccessibleForFree": True,
        "datePublished": published.published_at.date().isoformat(),
        "dateCreated": d.created_at.date().isoformat(),
        "creator": [{"@type": "Person", "name": name or "a LabHub user"} for _uid, name in authors],
        "publisher": {"@type": "Organization", "name": publisher},
        **({"keywords": keywords} if keywords else {}),
        "variableMeasured": variables,
        "distribution": [
            {"@type": "DataDownload", "encodingFormat": "text/csv", "contentUrl": f"{published.url}/download?format=csv"},
            {"@type": "DataDownload", "encodingFormat": PARQUET,
             "contentUrl": f"{published.url}/download?format=parquet"},
            {"@type": "DataDownload", "encodingFormat": d.source.content_type, "contentUrl": f"{published.url}/raw",
             "name": d.source.name},
        ],
    }


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.6g}"
    return html.escape(str(value))


def render_page(
    published: Publication, stored: StoredDataset, authors: list[tuple[str, str]], *, publisher: str, stylesheet: str
) -> str:
    d, e = stored.dataset, html.escape
    ld = json.dumps(json_ld(published, stored, authors, publisher), ensure_ascii=False, default=str)
    ld = ld.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")  # never ends its script
    rows = "".join(
        f"<tr><th scope=\"row\">{e(c.name)}</th><td>{e(c.type)}</td><td>{e(c.unit or '—')}</td>"
        + "".join(f"<td>{_cell((d.stats.get(c.name) or {}).get(k))}</td>" for k in ("count", "nulls", "min", "max", "mean", "std"))
        + "</tr>"
        for c in d.schema[:500]
    )  # fmt: skip
    more = f"<p class=\"muted\">The first 500 of {len(d.schema):,} columns.</p>" if len(d.schema) > 500 else ""
    people = ", ".join(e(name or "a LabHub user") for _uid, name in authors) or e(publisher)
    year = published.published_at.year
    citation = f"{people} ({year}). {e(published.title)} (version {d.version}) [Data set]. {e(publisher)}. {e(published.url)}"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(published.title)} — {e(publisher)}</title>
<meta name="description" content="{e(published.description[:300])}">
<link rel="stylesheet" href="{e(stylesheet)}">
<link rel="canonical" href="{e(published.url)}">
<script type="application/ld+json">{ld}</script>
</head>
<body>
<main id="main" class="public">
<p class="meta">{e(publisher)} · published dataset</p>
<h1>{e(published.title)}</h1>
<p class="meta">Version {d.version} · published {published.published_at.date().isoformat()} · by {people} ·
licence <a href="{e(published.license)}" rel="license">{e(license_name(published.license))}</a></p>
<section aria-labelledby="about-h"><h2 id="about-h">About</h2><p class="description">{e(published.description)}</p>
<p>{d.row_count:,} rows × {len(d.schema):,} columns, made from {e(d.source.name)} ({d.source.size:,} bytes, sha256 <code>{e(d.source.sha256)}</code>).</p></section>
<section aria-labelledby="download-h"><h2 id="download-h">Download</h2>
<ul>
<li><a href="{e(published.url)}/download?format=csv" download>CSV</a></li>
<li><a href="{e(published.url)}/download?format=parquet" download>Parquet</a></li>
<li><a href="{e(published.url)}/raw" download>The raw file ({e(d.source.name)})</a></li>
</ul></section>
<section aria-labelledby="columns-h"><h2 id="columns-h">Columns</h2>
<div class="scroll" tabindex="0" role="region" aria-label="Columns and statistics"><table><caption>Columns and their statistics</caption>
<thead><tr><th scope="col">Column</th><th scope="col">Type</th><th scope="col">Unit</th><th scope="col">Count</th><th scope="col">Nulls</th><th scope="col">Min</th><th scope="col">Max</th><th scope="col">Mean</th><th scope="col">Std</th></tr></thead>
<tbody>{rows}</tbody></table></div>{more}</section>
<section aria-labelledby="cite-h"><h2 id="cite-h">Cite</h2><p class="citation">{citation}</p></section>
</main>
</body>
</html>
"""
