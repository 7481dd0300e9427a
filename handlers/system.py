"""/api/system: what heads need to see about this instance (pool size and why, jobs, versions)."""

from __future__ import annotations

import importlib.metadata
import platform

import attrs
from aiohttp import web

from domain import __version__
from domain.core.errors import Forbidden
from domain.mail.service import MailView
from domain.quotas.service import QuotaLimits
from handlers.codec import json_response
from handlers.identity import require_user
from handlers.keys import JOBS, MAIL, POOL, POOL_SIZING, QUOTAS, SCHEDULER
from handlers.openapi import doc
from workers.pool import PoolSizing

routes = web.RouteTableDef()

VERSIONED = (
    "aiohttp",
    "pymongo",
    "redis",
    "aiobotocore",
    "numpy",
    "pandas",
    "pyarrow",
    "matplotlib",
    "scipy",
    "h5py",
)


@attrs.frozen
class PoolView:
    sizing: PoolSizing
    healthy: bool
    generation: int
    running_jobs: list[str]


@attrs.frozen
class SystemView:
    instance_id: str
    pool: PoolView
    jobs: dict[str, int]
    versions: dict[str, str]
    mail: MailView
    quotas: QuotaLimits


def _versions(labhub: str) -> dict[str, str]:
    versions = {"labhub": labhub, "python": platform.python_version()}
    for name in VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@routes.get("/api/system")
@doc("Pool size with the host facts it came from, job counts, versions, mail outbox, quotas (heads)",
     response=SystemView)  # fmt: skip
async def system(request: web.Request) -> web.Response:
    user = await require_user(request)
    if not user.is_head:
        raise Forbidden("only heads (GD, DH) can see the system view", code="not_head")
    app = request.app
    scheduler, pool = app[SCHEDULER], app[POOL]
    view = SystemView(
        instance_id=scheduler.instance_id,
        pool=PoolView(app[POOL_SIZING], pool.healthy, pool.generation, scheduler.running_jobs),
        jobs=await app[JOBS].counts(),
        versions=_versions(__version__),
        mail=await app[MAIL].view(),
        quotas=app[QUOTAS].limits(),
    )
    return json_response(view)
