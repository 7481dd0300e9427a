"""LabHub server: create_app(settings) assembles the application; the CLI serves it or runs admin commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import importlib
import json
import logging
import os
import shlex
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp_cors
import attrs
from aiohttp import web
from botocore.exceptions import BotoCoreError, ClientError
from pymongo.errors import PyMongoError

from domain import __version__
from domain.accounts.audit import AccountAuditStore
from domain.accounts.jwt import TokenConfig
from domain.accounts.models import Role, normalize_email
from domain.accounts.passwords import Passwords
from domain.accounts.refresh_tokens import RefreshTokenStore
from domain.accounts.service import AccountsService
from domain.accounts.signin import AuthService
from domain.accounts.store import UserStore
from domain.core.background import stop_if_cancelled
from domain.core.clock import utcnow
from domain.core.content import human_size
from domain.core.errors import DomainError
from domain.core.metrics import Metrics
from domain.core.settings import Settings, SettingsError, finalize_secrets, load_settings, with_changes
from domain.datasets.ingestion import INGEST_KIND, IngestionService
from domain.datasets.service import DatasetsService
from domain.datasets.store import DatasetStore, IngestionStore
from domain.documents.service import DocumentsService
from domain.documents.store import DocumentStore
from domain.engagement.service import EngagementService
from domain.engagement.store import ActivityLog, EngagementStore
from domain.infra.events import EventHub, EventLog, SessionEnds
from domain.infra.localfiles import LocalFiles
from domain.infra.mongo import Database, open_mongo
from domain.infra.objects import ObjectStore, open_objects
from domain.infra.redis_store import RedisStore, open_redis
from domain.infra.throttle import LoginThrottle, SingleUse, WindowLimit
from domain.jobs.models import Job, JobKinds, JobStatus
from domain.jobs.scheduler import Scheduler, SchedulerSettings
from domain.jobs.service import JobEvents, JobsService
from domain.jobs.store import JobStore
from domain.mail.letters import Sender
from domain.mail.outbox import MailOutbox
from domain.mail.service import MailService
from domain.mail.smtp import SmtpTransport
from domain.meetings.calendar_links import CalendarLinks
from domain.meetings.service import MeetingsService
from domain.meetings.store import MeetingStore
from domain.notifications.service import NotificationsService
from domain.notifications.store import NotificationStore
from domain.projects.audit import AuditLog
from domain.projects.audit_store import AuditStore
from domain.projects.service import ProjectGate, ProjectsService
from domain.projects.store import ProjectStore
from domain.quotas.service import Quotas
from domain.quotas.store import UsageStore
from domain.records.service import RecordsService
from domain.records.store import RecordStore
from domain.resets.service import PasswordResets, ResetLimits
from domain.resets.store import PasswordResetStore
from domain.tokens.service import AccessTokenService
from domain.tokens.store import AccessTokenStore
from domain.uploads.service import UploadsService
from domain.uploads.store import UploadStore
from domain.visualizations.service import VisualizationsService
from domain.visualizations.store import VisualizationStore
from handlers import (
    auth,
    calendar,
    datasets,
    documents,
    engagement,
    health,
    ingestions,
    jobs,
    meetings,
    metrics,
    notifications,
    openapi,
    projects,
    records,
    system,
    tokens,
    tus,
    users,
    visualizations,
)
from handlers.console import console_middleware, setup_console
from handlers.errors import problem_middleware
from handlers.keys import (
    ACCESS_TOKENS,
    ACCOUNTS,
    AUTH,
    CALENDAR_LINKS,
    DATASETS,
    DOCUMENTS,
    EMBEDDED,
    ENDPOINTS,
    ENGAGEMENT,
    EVENT_HUB,
    EVENT_LOG,
    INGESTIONS,
    JOB_EVENTS,
    JOB_KINDS,
    JOBS,
    LOCAL_FILES,
    MAIL,
    MEETINGS,
    METRICS,
    MONGO,
    NOTIFICATIONS,
    OBJECTS,
    OPENAPI,
    PASSWORD_RESETS,
    POOL,
    POOL_SIZING,
    PROJECTS,
    QUOTAS,
    RECORDS,
    REDIS,
    SCHEDULER,
    SETTINGS,
    UPLOADS,
    VISUALIZATIONS,
)
from handlers.observe import add_standard_headers, configure_logging, dump_state, request_context_middleware
from handlers.sse import PING_FRAME, encode_entry
from handlers.tus import EXPOSED_HEADERS, tus_middleware
from ops.archive import ArchiveError, ArchiveReader, ArchiveWriter
from ops.backup import BackupError
from ops.backup import backup as run_backup
from ops.backup import restore as run_restore
from ops.backup import verify as verify_backup
from ops.embedded import (
    EmbeddedServiceError,
    EmbeddedServices,
    ServiceEndpoints,
    read_running_endpoints,
)
from workers.pool import WorkerPool, host_sizing

ROUTE_MODULES = (
    health, auth, users, projects, documents, records, ingestions, datasets, visualizations, jobs, notifications,
    meetings, engagement, system, tokens, calendar, tus, metrics, openapi,
)  # fmt: skip

log = logging.getLogger("labhub.server")


# -- lifecycle: one cleanup context per resource, in order; cleanup runs in reverse ----------------


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
    async with open_mongo(app[ENDPOINTS].mongo_uri, app[SETTINGS].mongo.database) as db:
        app[MONGO] = db
        yield


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_redis(app[ENDPOINTS].redis_url, app[SETTINGS].redis.key_prefix) as store:
        app[REDIS] = store
        yield


async def objects_ctx(app: web.Application) -> AsyncIterator[None]:
    s3 = app[SETTINGS].s3
    async with open_objects(
        app[ENDPOINTS].s3_endpoint_url, s3.access_key, s3.secret_key, s3.bucket, s3.region
    ) as store:
        app[OBJECTS] = store
        yield


def build_accounts(
    db: Database, settings: Settings, redis: RedisStore | None = None
) -> tuple[AccountsService, Passwords]:
    """redis None: nobody registers (so no limit to count) and sign-outs are not announced."""
    a = settings.auth
    passwords = Passwords(
        time_cost=a.argon2_time_cost, memory_kib=a.argon2_memory_kib, parallelism=a.argon2_parallelism,
        at_once=a.password_checks_at_once, waiting=a.password_checks_waiting,
    )  # fmt: skip
    registrations = None
    if redis is not None:
        registrations = WindowLimit(
            redis, "register-client", limit=a.registrations_per_client, window_s=a.registration_window_s
        )
    accounts = AccountsService(
        UserStore(db),
        RefreshTokenStore(db),
        passwords,
        open_registration=a.open_registration,
        cache_s=a.identity_cache_s,
        registrations=registrations,
        session_ends=SessionEnds(redis) if redis is not None else None,
    )
    return accounts, passwords


def build_mail(db: Database, settings: Settings) -> MailService:
    m = settings.mail
    sender = Sender(
        address=m.from_address, name=m.from_name, base_url=settings.mail_base_url, zone=settings.app.zone
    )
    return MailService(m, MailOutbox(db), UserStore(db), ProjectStore(db), SmtpTransport(m), sender)


def login_throttle(redis: RedisStore, settings: Settings) -> LoginThrottle:
    a = settings.auth
    per_client = WindowLimit(
        redis, "login-client", limit=a.login_failures_per_client, window_s=a.login_client_window_s
    )
    return LoginThrottle(
        redis, per_client, free_attempts=a.login_free_attempts, base_s=a.login_backoff_base_s,
        max_s=a.login_backoff_max_s,
    )  # fmt: skip


def build_resets(
    db: Database,
    settings: Settings,
    accounts: AccountsService,
    mail: MailService | None,
    redis: RedisStore | None,
) -> PasswordResets:
    """redis None (the command line): no self-service requests, so no limits to count."""
    a = settings.auth
    limits = throttle = None
    if redis is not None:
        throttle = login_throttle(redis, settings)
        limits = ResetLimits(
            per_address=WindowLimit(
                redis, "reset-address", limit=a.reset_requests_per_address, window_s=a.reset_window_s
            ),
            per_client=WindowLimit(
                redis, "reset-client", limit=a.reset_requests_per_client, window_s=a.reset_window_s
            ),
        )
    return PasswordResets(
        PasswordResetStore(db), UserStore(db), accounts, AccountAuditStore(db), mail, limits, throttle,
        ttl_s=a.reset_ttl_s, mail_base_url=settings.mail_base_url,
    )  # fmt: skip


async def domain_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = app[MONGO]
    accounts, passwords = build_accounts(db, settings, app[REDIS])
    a = settings.auth
    throttle = login_throttle(app[REDIS], settings)
    tokens = TokenConfig(
        secret=a.jwt_secret,
        issuer=a.jwt_issuer,
        audience=a.jwt_audience,
        access_ttl_s=a.access_ttl_s,
        sse_ttl_s=a.sse_ticket_ttl_s,
    )
    app[ACCOUNTS] = accounts
    app[AUTH] = AuthService(
        UserStore(db),
        RefreshTokenStore(db),
        passwords,
        throttle,
        accounts,
        tokens,
        SingleUse(app[REDIS], "sse-ticket"),
        refresh_ttl_s=a.refresh_ttl_s,
    )
    project_store, audit_store = ProjectStore(db), AuditStore(db)
    gate = ProjectGate(project_store, cache_s=a.identity_cache_s)
    app[ACCESS_TOKENS] = access_tokens = AccessTokenService(
        AccessTokenStore(db), accounts, gate, cache_s=a.identity_cache_s
    )
    accounts.revoke_tokens_with(access_tokens.revoke_user)
    app[MAIL] = mail = build_mail(db, settings)
    app[PASSWORD_RESETS] = build_resets(db, settings, accounts, mail, app[REDIS])
    audit = AuditLog(audit_store)
    app[PROJECTS] = projects_service = ProjectsService(gate, project_store, UserStore(db), audit)
    activity = ActivityLog(db, MeetingStore(db), settings.app.zone)
    u = settings.uploads
    app[QUOTAS] = quotas = Quotas(UsageStore(db), settings.quotas)
    app[UPLOADS] = resumable = UploadsService(
        UploadStore(db), app[OBJECTS], quotas, max_size=max(u.max_bytes, settings.ingest.max_file_bytes),
        part_size=u.part_size_bytes, ttl_s=u.resumable_ttl_s,
    )  # fmt: skip
    app[DOCUMENTS] = documents_service = DocumentsService(
        gate, DocumentStore(db), app[OBJECTS], audit, activity, resumable, quotas,
        max_bytes=settings.uploads.max_bytes, part_size=settings.uploads.part_size_bytes,
    )  # fmt: skip
    app[RECORDS] = records_service = RecordsService(gate, RecordStore(db), audit, activity)
    for purger in (
        documents_service.purge_project,
        records_service.purge_project,
        audit_store.delete_project,
    ):
        projects_service.add_purger(purger)
    j = settings.jobs
    app[EVENT_LOG] = event_log = EventLog(app[REDIS], maxlen=j.events_maxlen, ttl_s=j.events_ttl_s)
    app[NOTIFICATIONS] = notifications_service = NotificationsService(NotificationStore(db), event_log)
    app[MEETINGS] = meetings_service = MeetingsService(
        gate, MeetingStore(db), UserStore(db), notifications_service, audit, mail, zone=settings.app.zone
    )
    app[CALENDAR_LINKS] = CalendarLinks(db, accounts, project_store, MeetingStore(db), UserStore(db))
    app[JOB_EVENTS] = job_events = JobEvents(event_log, app[REDIS])
    app[JOBS] = jobs_service = JobsService(gate, JobStore(db), job_events, app[JOB_KINDS], quotas)
    app[LOCAL_FILES] = local_files = LocalFiles(settings.data_path, cache_bytes=settings.ingest.cache_bytes)
    await asyncio.to_thread(local_files.sweep)
    dataset_store, ingestion_store = DatasetStore(db), IngestionStore(db)
    app[DATASETS] = datasets_service = DatasetsService(
        gate, dataset_store, ingestion_store, app[OBJECTS], local_files
    )
    app[INGESTIONS] = ingestion_service = IngestionService(
        gate, jobs_service, JobStore(db), ingestion_store, dataset_store, app[OBJECTS], local_files,
        datasets_service, settings.ingest, activity, resumable, quotas, part_size=settings.uploads.part_size_bytes,
    )  # fmt: skip
    app[VISUALIZATIONS] = visualization_service = VisualizationsService(
        gate, VisualizationStore(db), dataset_store, datasets_service, jobs_service, JobStore(db), app[OBJECTS],
        local_files, part_size=settings.uploads.part_size_bytes,
    )  # fmt: skip
    app[ENGAGEMENT] = engagement_service = EngagementService(
        gate, EngagementStore(db), activity, UserStore(db), audit, visualization_service,
        zone=settings.app.zone,
    )  # fmt: skip
    ingestion_service.visualize = visualization_service.queue_default
    datasets_service.on_remove(visualization_service.remove_for_dataset)
    datasets_service.list_related_with(visualization_service.summaries_for_dataset)
    for kind in (ingestion_service.job_kind(), *visualization_service.job_kinds()):
        app[JOB_KINDS].register(kind)
    for purger in (
        visualization_service.purge_project,
        datasets_service.purge_project,
        ingestion_service.purge_project,
        meetings_service.purge_project,
        engagement_service.purge_project,
    ):
        projects_service.add_purger(purger)
    if a.bootstrap_email and a.bootstrap_password:
        created = await accounts.ensure_head(
            email=a.bootstrap_email, password=a.bootstrap_password, name=a.bootstrap_email.split("@")[0]
        )
        if created:
            log.info("bootstrap head created", extra={"user_id": created.id})
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
    pool = WorkerPool(sizing.size, p.worker_memory_bytes)
    # the main thread: the forkserver's PDEATHSIG is tied to the thread that starts it
    pool.start()
    app[POOL], app[POOL_SIZING] = pool, sizing
    try:
        yield
    finally:
        await asyncio.to_thread(pool.shutdown)


async def scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    j = app[SETTINGS].jobs
    scheduler = Scheduler(
        JobStore(app[MONGO]),
        app[JOB_EVENTS],
        app[JOB_KINDS],
        app[POOL],
        app[NOTIFICATIONS],
        app[REDIS],
        SchedulerSettings(
            heartbeat_s=j.heartbeat_s, lease_s=j.lease_s, poll_s=j.poll_s,
            cancel_grace_s=j.cancel_grace_s, shutdown_grace_s=j.shutdown_grace_s,
        ),
        metrics=app[METRICS],
    )  # fmt: skip
    app[POOL].listen(scheduler.on_worker_event, scheduler.on_pool_rebuilt)
    scheduler.on_finished(app[MAIL].job_finished)
    scheduler.on_finished(count_ingestion(app[METRICS]))
    app[SCHEDULER] = scheduler
    await scheduler.start()
    try:
        yield
    finally:
        await scheduler.stop()


def count_ingestion(metrics: Metrics) -> Callable[[Job, str], Awaitable[None]]:
    """A finish listener: the bytes and rows of each ingestion that succeeded on this instance."""

    async def count(job: Job, _title: str) -> None:
        if job.kind == INGEST_KIND and job.status is JobStatus.SUCCEEDED:
            metrics.ingested_bytes.inc(job.params["file"]["size"])
            metrics.ingested_rows.inc((job.result or {}).get("rows") or 0)

    return count


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


def _setup_cors(app: web.Application, origins: tuple[str, ...]) -> None:
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=True,
        allow_headers="*",
        allow_methods="*",
        expose_headers=("X-Request-ID", "Retry-After", "Content-Disposition", *EXPOSED_HEADERS),
        max_age=600,
    )
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(origins, options))
    for route in list(app.router.routes()):
        cors.add(route)


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
            upload_sweep_ctx,
        ]
    )
    app.on_shutdown.append(close_event_streams)
    for module in ROUTE_MODULES:
        app.add_routes(module.routes)
    setup_console(app)
    _setup_cors(app, settings.http.cors_origins)
    app.on_response_prepare.append(add_standard_headers)
    app[OPENAPI] = openapi.build_openapi(app, version=__version__)
    return app


# -- command line ----------------------------------------------------------------------------------


def fail(message: str) -> int:
    print(f"labhub: {message}", file=sys.stderr)
    return 1


def _stop_on_signals() -> asyncio.Event:
    """Set by SIGTERM or SIGINT (Ctrl-C): the running command then stops cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def serve(settings: Settings) -> int:
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=10)
    stop = _stop_on_signals()
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


def _read_password(path: str | None) -> str:
    if path == "-":
        return sys.stdin.readline().rstrip("\n")
    if path:
        return Path(path).read_text(encoding="utf-8").rstrip("\n")
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Repeat password: "):
        raise SystemExit(fail("passwords do not match"))
    return first


@contextlib.asynccontextmanager
async def _services_for_admin(
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


@contextlib.asynccontextmanager
async def _mongo_for_admin(settings: Settings) -> AsyncIterator[Database]:
    async with (
        _services_for_admin(settings, frozenset({"mongo"})) as endpoints,
        open_mongo(endpoints.mongo_uri, settings.mongo.database) as db,
    ):
        yield db


@contextlib.asynccontextmanager
async def _stores_for_admin(
    settings: Settings, *, while_serving: bool
) -> AsyncIterator[tuple[Database, ObjectStore]]:
    s3 = settings.s3
    async with (
        _services_for_admin(settings, frozenset({"mongo", "s3"}), while_serving=while_serving) as endpoints,
        open_mongo(endpoints.mongo_uri, settings.mongo.database) as db,
        open_objects(
            endpoints.s3_endpoint_url, s3.access_key, s3.secret_key, s3.bucket, s3.region
        ) as objects,
    ):
        yield db, objects


def _describe(manifest: dict[str, Any]) -> str:
    c = manifest["counts"]
    return (
        f"{c['collections']} collections, {c['documents']} documents, {c['objects']} objects, "
        f"{human_size(c['bytes'])} (LabHub {manifest['labhub_version']}, {manifest['created_at']})"
    )


async def backup_command(settings: Settings, args: argparse.Namespace) -> int:
    path = Path(args.path)
    if args.verify:
        reader = ArchiveReader(path)
        try:
            manifest, problems = await asyncio.to_thread(verify_backup, reader)
        finally:
            reader.close()
        for problem in problems:
            print(f"damaged: {problem}", file=sys.stderr)
        if problems:
            return fail(f"{path} is damaged: {len(problems)} of {len(manifest['files'])} files do not match")
        print(f"{path} is intact: {_describe(manifest)}")
        return 0
    writer = ArchiveWriter(path)
    try:
        async with _stores_for_admin(settings, while_serving=True) as (db, objects):
            manifest = await run_backup(db, objects, writer, version=__version__)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    print(f"backup written to {path}: {_describe(manifest)}")
    if manifest["requeued_jobs"]:
        print(
            f"{len(manifest['requeued_jobs'])} running jobs are in it as queued: they run again after a restore"
        )
    if manifest["missing_objects"]:
        print(f"{len(manifest['missing_objects'])} referenced objects were not in storage when they were copied "
              "(deleted during the backup, or still being uploaded); listed in the manifest as missing_objects",
              file=sys.stderr)  # fmt: skip
    return 0


async def restore_command(settings: Settings, args: argparse.Namespace) -> int:
    reader = ArchiveReader(Path(args.path))
    try:
        async with _stores_for_admin(settings, while_serving=False) as (db, objects):
            manifest = await run_restore(
                reader, db, objects, force=args.force, part_size=settings.uploads.part_size_bytes
            )
    finally:
        reader.close()
    print(f"restored {args.path}: {_describe(manifest)}")
    return 0


async def create_user(settings: Settings, args: argparse.Namespace) -> int:
    password = _read_password(args.password_file)
    async with _mongo_for_admin(settings) as db:
        accounts, _ = build_accounts(db, settings)
        try:
            user = await accounts.create(
                email=args.email,
                password=password,
                name=args.name or args.email.split("@")[0],
                role=Role(args.role),
            )
        except DomainError as exc:
            return fail(exc.detail)
    print(f"created {user.role.value} {user.email} (id {user.id})")
    return 0


async def reset_password(settings: Settings, args: argparse.Namespace) -> int:
    """For a head locked out: a one-time reset link, or a new password from a file."""
    password = _read_password(args.password_file) if args.password_file else None
    async with (
        _services_for_admin(settings, frozenset({"mongo", "redis"})) as endpoints,
        open_mongo(endpoints.mongo_uri, settings.mongo.database) as db,
        open_redis(endpoints.redis_url, settings.redis.key_prefix) as redis,
    ):
        # with Redis, a running server hears of the sign-out and closes the person's event streams
        accounts, _ = build_accounts(db, settings, redis)
        access_tokens = AccessTokenService(
            AccessTokenStore(db), accounts, ProjectGate(ProjectStore(db)), cache_s=0
        )
        accounts.revoke_tokens_with(access_tokens.revoke_user)
        try:
            found = await UserStore(db).credentials(normalize_email(args.email))
            if found is None:
                return fail(f"no account has the email {args.email}")
            user = found[0]
            if not user.active:
                return fail(f"{user.email} is deactivated; another head can activate it")
            if password is not None:
                await accounts.set_password(
                    user.id, password, actor_id=None, revoke_tokens=args.revoke_tokens
                )
                await AccountAuditStore(db).record(
                    user_id=user.id, actor_id=None, action="password.set", target_type="user", target_id=user.id,
                    at=utcnow(), details={"via": "command", "revoke_tokens": args.revoke_tokens},
                )  # fmt: skip
                print(f"password set for {user.email}; every session of the account is signed out")
                return 0
            resets = build_resets(db, settings, accounts, None, None)
            link = await resets.issue(user, actor_id=None, base_url=settings.mail_base_url, via="command")
        except DomainError as exc:
            return fail(exc.detail)
    print(f"reset link for {user.email} (works once, until {link.expires_at:%Y-%m-%d %H:%M} UTC):")
    print(link.url)
    return 0


def _shared_secret(path: Path, value: str) -> str:
    """path holding value (0600), for instances that share it; written if it is missing or differs."""
    if not path.exists() or path.read_text(encoding="utf-8").strip() != value:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value, encoding="utf-8")
    path.chmod(0o600)
    return str(path)


async def services_command(settings: Settings, args: argparse.Namespace) -> int:
    """Only the embedded services, for LabHub instances in external mode (one host, several instances)."""
    if settings.services.mode == "external":
        return fail("services.mode is external: there are no embedded services to run")
    stop = _stop_on_signals()
    secrets_dir = settings.data_path / "secrets"
    async with running_services(settings) as services:
        endpoints = services.endpoints()
        found = {
            "mongo_uri": endpoints.mongo_uri,
            "redis_url": endpoints.redis_url,
            "s3_endpoint_url": endpoints.s3_endpoint_url,
            "s3_access_key": settings.s3.access_key,
            "s3_secret_key_file": _shared_secret(secrets_dir / "s3_secret", settings.s3.secret_key),
        }
        # every instance must sign and check tokens with one secret: the generated one, if in use
        generated_jwt = secrets_dir / "jwt_secret"
        if (
            generated_jwt.exists()
            and generated_jwt.read_text(encoding="utf-8").strip() == settings.auth.jwt_secret
        ):
            found["jwt_secret_file"] = str(generated_jwt)
        if args.env:
            names = {
                "mongo_uri": "MONGO_URI", "redis_url": "REDIS_URL", "s3_endpoint_url": "S3_ENDPOINT_URL",
                "s3_access_key": "S3_ACCESS_KEY", "s3_secret_key_file": "S3_SECRET_KEY_FILE",
                "jwt_secret_file": "AUTH_JWT_SECRET_FILE",
            }  # fmt: skip
            print("export LABHUB_SERVICES_MODE=external")
            for key, value in found.items():
                print(f"export LABHUB_{names[key]}={shlex.quote(value)}")
        else:
            print(json.dumps(found))
        sys.stdout.flush()
        await stop.wait()
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="labhub", description=__doc__)
    parser.add_argument("--config", help="config file (default: config.toml or $LABHUB_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run LabHub (embedded services unless configured external)")
    serve_cmd.add_argument("--host", help="listen address (overrides http.host)")
    serve_cmd.add_argument("--port", type=int, help="listen port (overrides http.port)")
    user_cmd = commands.add_parser("create-user", help="create an account with any role")
    user_cmd.add_argument("--email", required=True)
    user_cmd.add_argument("--role", required=True, choices=[r.value for r in Role])
    user_cmd.add_argument("--name", help="display name (default: the part of the email before @)")
    user_cmd.add_argument(
        "--password-file", help="read the password from this file ('-' = stdin) instead of a prompt"
    )
    reset_cmd = commands.add_parser(
        "reset-password",
        help="a one-time password reset link for an account (or set its password from a file)",
    )
    reset_cmd.add_argument("--email", required=True)
    reset_cmd.add_argument(
        "--password-file",
        help="set this password ('-' = stdin) instead of printing a link; signs out every session",
    )
    reset_cmd.add_argument(
        "--revoke-tokens",
        action="store_true",
        help="with --password-file: also revoke every personal access token",
    )
    backup_cmd = commands.add_parser(
        "backup",
        help="write a backup archive (a directory, or a .tar) while the server runs; --verify checks one",
    )
    backup_cmd.add_argument(
        "path", help="where to write the archive (a new directory, or a name ending .tar)"
    )
    backup_cmd.add_argument(
        "--verify", action="store_true", help="re-hash the archive at PATH instead of writing one"
    )
    restore_cmd = commands.add_parser(
        "restore", help="load a backup into empty services (stop the server first), then serve as usual"
    )
    restore_cmd.add_argument("path", help="the archive: a backup directory or .tar")
    restore_cmd.add_argument(
        "--force", action="store_true", help="replace whatever the database and bucket hold now"
    )
    services_cmd = commands.add_parser(
        "services",
        help="run only the embedded MongoDB, Redis and S3 (for instances in external mode); prints where they are",
    )
    services_cmd.add_argument(
        "--env", action="store_true", help="print export LABHUB_...= lines to source instead of JSON"
    )
    commands.add_parser("check-config", help="validate the configuration and print it (secrets hidden)")
    return parser


def main(argv: list[str] | None = None) -> int:
    # everything LabHub writes (its data dir, secrets, caches, logs, backups) is its owner's alone
    os.umask(0o077)
    args = _parser().parse_args(argv)
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
    admin = {
        "create-user": create_user, "reset-password": reset_password,
        "backup": backup_command, "restore": restore_command, "services": services_command,
    }  # fmt: skip
    if args.command in admin:
        try:
            return asyncio.run(admin[args.command](settings, args))
        except (EmbeddedServiceError, BackupError, ArchiveError) as exc:
            return fail(str(exc))
        except (PyMongoError, BotoCoreError, ClientError, OSError) as exc:  # a service or the disk failed
            log.debug("%s failed", args.command, exc_info=True)
            return fail(f"{args.command} failed: {type(exc).__name__}: {exc}")
    print(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
