"""The embedded services as a running LabHub uses them: started, supervised (restarted when one
dies) and stopped, for `serve`, for the `services` command and for admin commands."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from domain.core.settings import Settings
from ops.embedded import EmbeddedServiceError, EmbeddedServices, ServiceEndpoints, read_running_endpoints

log = logging.getLogger("labhub.services")


def embedded_services(
    settings: Settings, only: frozenset[str] = frozenset({"mongo", "redis", "s3"})
) -> EmbeddedServices:
    s = settings.services
    return EmbeddedServices(
        settings.data_path,
        s3_access_key=settings.s3.access_key,
        s3_secret_key=settings.s3.secret_key,
        mongo_port=s.mongo_port,
        redis_port=s.redis_port,
        s3_port=s.s3_port,
        start_timeout_s=s.start_timeout_s,
        only=only,
    )


@contextlib.asynccontextmanager
async def running_services(settings: Settings) -> AsyncIterator[EmbeddedServices]:
    """The embedded services, started, supervised (restarted when one dies) and stopped at the end."""
    services = embedded_services(settings)
    services.spawn()  # in the main thread: the children's PDEATHSIG is tied to the spawning thread
    supervisor: asyncio.Task[None] | None = None
    try:
        await asyncio.to_thread(services.wait_ready)
        log.info("embedded services ready", extra={"pids": services.pids, "data_dir": str(services.data_dir)})
        supervisor = asyncio.create_task(
            services.supervise(max_failures=settings.services.restart_attempts), name="service-supervisor"
        )
        yield services
    finally:
        if supervisor is not None:
            supervisor.cancel()
            await asyncio.wait([supervisor], timeout=10)
        await asyncio.to_thread(services.stop)


@contextlib.asynccontextmanager
async def services_for_admin(
    settings: Settings, only: frozenset[str], *, while_serving: bool = True
) -> AsyncIterator[ServiceEndpoints]:
    """Services for an admin command: external, the running server's, or short-lived embedded ones.

    while_serving=False refuses when a server runs on the embedded data dir (a restore)."""
    if settings.services.mode == "external":
        yield ServiceEndpoints(settings.mongo.uri, settings.redis.url, settings.s3.endpoint_url)
        return
    if running := read_running_endpoints(settings.data_path):
        if not while_serving:
            raise EmbeddedServiceError(f"a LabHub server is running on {settings.data_path}; stop it first")
        yield running
        return
    services = embedded_services(settings, only=only)
    services.spawn()
    try:
        yield await asyncio.to_thread(services.wait_ready)
    finally:
        await asyncio.to_thread(services.stop)
