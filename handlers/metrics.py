"""GET /metrics: this instance's counters for Prometheus, never public (404 to whoever may not see it)."""

from __future__ import annotations

import hmac

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pymongo.errors import PyMongoError

from domain.core.errors import DomainError
from domain.core.metrics import Metrics
from handlers.health import service_checks
from handlers.identity import bearer_token, require_user
from handlers.keys import EMBEDDED, EVENT_HUB, JOBS, METRICS, POOL, SCHEDULER, SETTINGS
from handlers.openapi import doc

routes = web.RouteTableDef()


async def _allowed(request: web.Request) -> bool:
    """The scraper's secret, a head, or a head's token with the admin scope."""
    settings = request.app[SETTINGS].metrics
    token = bearer_token(request)
    if token is None:
        return False
    secret = settings.bearer_secret
    if secret and hmac.compare_digest(token.encode(), secret.encode()):
        return True
    try:
        user = await require_user(request)  # a personal token must have the admin scope (check_use)
    except DomainError:
        return False
    return user.is_head


async def _read_state(app: web.Application, metrics: Metrics) -> None:
    """The gauges that are read when scraped: the services, jobs, the pool and open streams."""
    checks = await service_checks(app)
    for service, result in checks.items():
        metrics.service_up.labels(service).set(result == "ok")
    if EMBEDDED in app:
        embedded = app[EMBEDDED]
        for service in embedded.pids:
            metrics.service_restarts.labels(service).set(embedded.restarts.get(service, 0))
    metrics.jobs_running.set(len(app[SCHEDULER].running_jobs))
    metrics.pool_workers.set(app[POOL].size)
    metrics.sse_open.set(app[EVENT_HUB].subscriber_count)
    if checks["mongo"] != "ok":
        return  # the job gauges keep their last values; labhub_service_up says why
    try:
        counts = await app[JOBS].counts()
    except PyMongoError:
        return
    for status, count in counts.items():
        metrics.jobs.labels(status).set(count)
    metrics.queue_depth.set(counts.get("queued", 0))


@routes.get("/metrics")
@doc("This instance's metrics in the Prometheus text format: heads, admin tokens or the scraper's "
     "secret (metrics.bearer_secret); 404 to anyone else", response=bytes,
     response_content_type=CONTENT_TYPE_LATEST.split(";")[0])  # fmt: skip
async def scrape(request: web.Request) -> web.Response:
    if not request.app[SETTINGS].metrics.enabled or not await _allowed(request):
        raise web.HTTPNotFound()
    metrics = request.app[METRICS]
    await _read_state(request.app, metrics)
    body = generate_latest(metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})
