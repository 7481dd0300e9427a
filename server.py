"""LabHub server: create_app(settings) assembles the application; the CLI serves it or runs admin commands."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import attrs
from aiohttp import web

from domain import __version__
from domain.assembly import attach_query_lane, build_domain, build_scheduler, start_serving
from domain.core.background import stop_if_cancelled
from domain.core.config import finalize_secrets, load_settings, with_changes
from domain.core.metrics import Metrics
from domain.core.settings import Settings, SettingsError
from domain.infra.events import EventHub, SessionEnds
from domain.infra.mongo import open_mongo
from domain.infra.objects import open_objects
from domain.infra.redis_store import open_redis
from domain.jobs.models import JobKinds
from handlers.console import console_middleware
from handlers.errors import problem_middleware
from handlers.keys import (
    DOCUMENTS,
    DOMAIN,
    EMBEDDED,
    ENDPOINTS,
    EVENT_HUB,
    JOB_KINDS,
    MAIL,
    METRICS,
    MONGO,
    OBJECTS,
    POOL,
    POOL_SIZING,
    QUERY_POOL,
    REDIS,
    SCHEDULER,
    SETTINGS,
    UPLOADS,
    put_domain,
)
from handlers.observe import configure_logging, dump_state, request_context_middleware
from handlers.routes import add_routes
from handlers.sse import PING_FRAME, encode_entry
from handlers.tus import tus_middleware
from ops.commands import fail, parser, run_admin, stop_on_signals
from ops.embedded import (
    EmbeddedServiceError,
    ServiceEndpoints,
)
from ops.running import running_services
from workers.pool import LANE_HEADROOM_BYTES, LANE_IMPORTS, WorkerPool, host_sizing, lane_size

log = logging.getLogger("labhub.server")


# -- lifecycle: one cleanup context per resource, in order; cleanup runs in reverse ----------------


async def services_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.services.mode == "external":
        app[ENDPOINTS] = ServiceEndpoints(settings.mongo.uri, settings.redis.url, settings.s3.endpoint_url)
        yield
        return
    async with running_services(settings) as services:
        app[ENDPOINTS], app[EMBEDDED] = services.endpoints(), services
        yield


async def mongo_ctx(app: web.Application) -> AsyncIterator[None]:
    mongo = app[SETTINGS].mongo
    async with open_mongo(app[ENDPOINTS].mongo_uri, mongo.database, count=app[METRICS].backend_call) as db:
        app[MONGO] = db
        yield


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    redis = app[SETTINGS].redis
    async with open_redis(app[ENDPOINTS].redis_url, redis.key_prefix, count=app[METRICS].backend_call) as store:
        app[REDIS] = store
        yield


async def objects_ctx(app: web.Application) -> AsyncIterator[None]:
    s3 = app[SETTINGS].s3
    async with open_objects(
        app[ENDPOINTS].s3_endpoint_url, s3.access_key, s3.secret_key, s3.bucket, s3.region,
        count=app[METRICS].backend_call,
    ) as store:
        app[OBJECTS] = store
        yield


async def domain_ctx(app: web.Application) -> AsyncIterator[None]:
    """Every service, built and tied together once (domain/assembly.py), under the app's keys."""
    settings = app[SETTINGS]
    domain = build_domain(settings, app[MONGO], app[REDIS], app[OBJECTS], app[JOB_KINDS])
    await start_serving(domain, settings)
    put_domain(app, domain)
    yield


@contextlib.asynccontextmanager
async def background(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    """A task owned by a cleanup context: it runs while the app does and is cancelled (and awaited) at cleanup."""
    task = asyncio.create_task(work, name=name)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.wait([task], timeout=10)


async def events_ctx(app: web.Application) -> AsyncIterator[None]:
    """The one Redis reader that feeds every SSE client of this process."""
    hub = EventHub(app[REDIS], encode_entry, ping_s=app[SETTINGS].sse.ping_s, ping_frame=PING_FRAME)
    app[EVENT_HUB] = hub
    async with (
        background(hub.run(), "event-hub"),
        # a person signed out on any instance: their streams here end too
        background(SessionEnds(app[REDIS]).listen(hub.close_user), "session-ends"),
    ):
        yield


async def close_event_streams(app: web.Application) -> None:
    """on_shutdown: open event streams end now instead of holding the shutdown up."""
    if EVENT_HUB in app:
        app[EVENT_HUB].close_all()


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    p = app[SETTINGS].pool
    sizing = host_sizing(
        ram_fraction=p.ram_fraction, worker_memory_bytes=p.worker_memory_bytes,
        min_workers=p.min_workers, max_workers=p.max_workers,
    )  # fmt: skip
    log.info("worker pool", extra={"pool": attrs.asdict(sizing)})
    pool = WorkerPool(sizing.size, p.worker_memory_bytes, nice=p.worker_nice)
    # the main thread: the forkserver's PDEATHSIG is tied to the thread that starts it
    pool.start()
    app[POOL], app[POOL_SIZING] = pool, sizing
    # the query lane: its own small pool, so that queries never wait behind jobs (domain/sql/lane.py)
    q = app[SETTINGS].sql
    lane = WorkerPool(q.workers or lane_size(), q.memory_bytes + LANE_HEADROOM_BYTES, LANE_IMPORTS)
    lane.start()
    app[QUERY_POOL] = lane
    attach_query_lane(app[DOMAIN], lane)
    try:
        yield
    finally:
        await asyncio.gather(asyncio.to_thread(pool.shutdown), asyncio.to_thread(lane.shutdown))


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    scheduler = build_scheduler(app[DOMAIN], app[SETTINGS], app[MONGO], app[REDIS], app[POOL], app[METRICS])
    app[SCHEDULER] = scheduler
    await scheduler.start()
    try:
        yield
    finally:
        await scheduler.stop()


async def upload_sweep_ctx(app: web.Application) -> AsyncIterator[None]:
    """Expired resumable uploads, and document versions a failed upload left without a document,
    are removed in the background, on every instance (idempotent)."""

    async def sweep_forever() -> None:
        while True:
            stop_if_cancelled()
            for name, sweep in (("upload", app[UPLOADS].sweep), ("orphan", app[DOCUMENTS].sweep_orphans)):
                try:
                    await sweep()
                except Exception:  # the sweep must outlive a failure (a service restarting, say)
                    log.exception("%s sweep failed; trying again later", name)
            await asyncio.sleep(app[SETTINGS].uploads.resumable_sweep_s)

    async with background(sweep_forever(), "upload-sweep"):
        yield


async def write_behind_ctx(app: web.Application) -> AsyncIterator[None]:
    """The flushers of what waits in Redis for MongoDB (domain/infra/write_behind.py): activity
    counts and notifications; what waits is flushed once more at the end."""
    domain = app[DOMAIN]
    waiting = {"activity counts": domain.activity.waiting, "notifications": domain.notifications.waiting}
    async with contextlib.AsyncExitStack() as stack:
        for name, queue in waiting.items():
            await stack.enter_async_context(background(queue.run(), f"flush {name}"))
        yield
    for name, queue in waiting.items():
        try:
            await queue.flush()
        except Exception as exc:  # noqa: BLE001 - it waits in Redis for the next flush
            log.warning("%s left in Redis at shutdown", name, extra={"error": repr(exc)[:200]})


async def mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """The mail sender: one background task per instance, when mail is on."""
    settings, mail = app[SETTINGS], app[MAIL]
    if not mail.enabled:
        yield
        return
    if not settings.http.public_url:
        log.warning("mail is on but http.public_url is not set: links in mail use the listen address",
                    extra={"base_url": settings.mail_base_url})  # fmt: skip
    async with background(mail.run(), "mail-sender"):
        yield


def load_job_plugins(kinds: JobKinds, plugins: tuple[str, ...]) -> None:
    """Register the job kinds named by jobs.plugins ("module:ATTRIBUTE", a list of JobKind)."""
    for plugin in plugins:
        module_name, _, attribute = plugin.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise SettingsError(f"jobs.plugins: cannot load {plugin!r}: {exc}") from None
        for kind in found:
            kinds.register(kind)


def create_app(settings: Settings) -> web.Application:
    """The whole application; tests build it the same way, with their own settings."""
    app = web.Application(
        middlewares=[request_context_middleware, tus_middleware, problem_middleware, console_middleware],
        client_max_size=settings.http.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[METRICS].info.labels(__version__).set(1)
    app[JOB_KINDS] = JobKinds()
    load_job_plugins(app[JOB_KINDS], settings.jobs.plugins)
    app.cleanup_ctx.extend(
        [
            services_ctx,
            mongo_ctx,
            redis_ctx,
            objects_ctx,
            domain_ctx,
            events_ctx,
            pool_ctx,
            scheduler_ctx,
            mail_ctx,
            write_behind_ctx,
            upload_sweep_ctx,
        ]
    )
    app.on_shutdown.append(close_event_streams)
    add_routes(app, settings.http.cors_origins)
    return app


# -- command line ----------------------------------------------------------------------------------


async def serve(settings: Settings) -> int:
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10)
    stop = stop_on_signals()
    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, dump_state)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.http.host, settings.http.port)
        await site.start()
    except EmbeddedServiceError as exc:
        await runner.cleanup()
        return fail(str(exc))
    except OSError as exc:
        await runner.cleanup()
        return fail(f"cannot listen on {settings.http.host}:{settings.http.port}: {exc.strerror or exc}")
    except Exception as exc:
        log.debug("start-up failed", exc_info=True)
        await runner.cleanup()
        return fail(f"cannot start: {type(exc).__name__}: {exc}")
    log.info(
        "listening",
        extra={"url": f"http://{settings.http.host}:{settings.http.port}", "mode": settings.services.mode},
    )
    await stop.wait()
    log.info("stopping")
    await runner.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    # everything LabHub writes (its data dir, secrets, caches, logs, backups) is its owner's alone
    os.umask(0o077)
    args = parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        if args.command == "serve" and (args.host or args.port is not None):
            http = {k: v for k, v in {"host": args.host, "port": args.port}.items() if v is not None}
            settings = with_changes(settings, http=http)
        settings = finalize_secrets(settings)
    except SettingsError as exc:
        return fail(f"configuration error: {exc}")
    configure_logging(settings.app.log_level)
    if args.command == "serve":
        try:
            return asyncio.run(serve(settings))
        except SettingsError as exc:
            return fail(f"configuration error: {exc}")
    if args.command != "check-config":
        return run_admin(settings, args)
    print(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
