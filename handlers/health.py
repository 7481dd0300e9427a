"""Liveness (/health) and readiness (/ready: MongoDB, Redis and S3 answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from aiohttp import web

from domain.infra.mongo import ping_mongo
from handlers.codec import json_response
from handlers.errors import problem_response
from handlers.keys import MONGO, OBJECTS, POOL, REDIS
from handlers.openapi import doc

routes = web.RouteTableDef()

READY_TIMEOUT_S = 3.0


@attrs.frozen
class Health:
    status: str


@attrs.frozen
class Readiness:
    status: str
    checks: dict[str, str]


async def _check(probe: Callable[[], Awaitable[Any]]) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await probe()
    except TimeoutError:
        return f"down: no answer within {READY_TIMEOUT_S:.0f} s"
    except Exception as exc:  # noqa: BLE001 - any failure of a probe means "down", with its reason
        return f"down: {type(exc).__name__}"
    return "ok"


async def service_checks(app: web.Application) -> dict[str, str]:
    """ "ok" or "down: <why>" for MongoDB, Redis, S3 and the worker pool, as this instance sees them."""
    results = await asyncio.gather(
        _check(lambda: ping_mongo(app[MONGO])),
        _check(app[REDIS].ping),
        _check(app[OBJECTS].ping),
    )
    checks = dict(zip(("mongo", "redis", "s3"), results, strict=True))
    checks["pool"] = "ok" if app[POOL].healthy else "down: the worker pool is being rebuilt"
    return checks


@routes.get("/health")
@doc("Liveness: the process is up", response=Health, auth="none")
async def health(_request: web.Request) -> web.Response:
    return json_response(Health(status="ok"))


@routes.get("/ready")
@doc(
    "Readiness: MongoDB, Redis, S3 and the worker pool answer (503 names what is down)",
    response=Readiness,
    auth="none",
)
async def ready(request: web.Request) -> web.Response:
    checks = await service_checks(request.app)
    down = [name for name, result in checks.items() if result != "ok"]
    if down:
        return problem_response(
            request,
            status=503,
            code="not_ready",
            detail=f"not ready: {', '.join(down)} down",
            extra={"checks": checks},
        )
    return json_response(Readiness(status="ok", checks=checks))
