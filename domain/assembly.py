"""The composition root: every service built once, and every hook between areas registered here.

`build_domain` is what `serve` runs at start-up (server.py) and what the admin commands run
(ops/commands.py), so a hook added here is there for both. Areas never build each other: a service
receives what it needs, and one area reaches another only through a service or a hook set below
(docs/architecture.md, "How the areas are tied together").
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import attrs

from domain.accounts.audit import AccountAuditStore
from domain.accounts.jwt import TokenConfig
from domain.accounts.passwords import Passwords
from domain.accounts.people import People
from domain.accounts.policy import SignInPolicies
from domain.accounts.refresh_tokens import RefreshTokenStore
from domain.accounts.service import AccountsService
from domain.accounts.signin import AuthService
from domain.accounts.store import SignInPolicyStore, UserStore
from domain.activity.service import ActivityLog
from domain.activity.store import ActivityStore
from domain.core.metrics import Metrics
from domain.core.settings import Settings
from domain.datasets.ingestion import INGEST_KIND, IngestionService
from domain.datasets.series import SeriesService
from domain.datasets.service import DatasetsService
from domain.datasets.store import DatasetStore, IngestionStore
from domain.documents.service import DocumentsService
from domain.documents.store import DocumentStore
from domain.engagement.service import EngagementService
from domain.engagement.store import EngagementStore
from domain.fair.service import FairService
from domain.fair.store import FairStore
from domain.infra.events import EventLog, SessionEnds
from domain.infra.localfiles import LocalFiles
from domain.infra.mongo import Database
from domain.infra.objects import ObjectStore
from domain.infra.redis_store import RedisStore
from domain.infra.throttle import LoginThrottle, SingleUse, WindowLimit
from domain.jobs.attempts import SchedulerSettings
from domain.jobs.events import JobEvents
from domain.jobs.models import Job, JobKinds, JobStatus
from domain.jobs.notices import JobNotices
from domain.jobs.scheduler import Scheduler
from domain.jobs.service import JobsService
from domain.jobs.store import JobStore
from domain.lineage.service import LineageService
from domain.mail.letters import Sender
from domain.mail.outbox import MailOutbox
from domain.mail.service import MailService
from domain.mail.smtp import SmtpTransport
from domain.meetings.calendar_links import CalendarLinks
from domain.meetings.invitations import Invitations
from domain.meetings.service import MeetingsService
from domain.meetings.store import CalendarLinkStore, MeetingStore
from domain.notifications.service import NotificationsService
from domain.notifications.store import NotificationStore
from domain.projects.audit import AuditLog
from domain.projects.audit_store import AuditStore
from domain.projects.service import ProjectGate, ProjectsService
from domain.projects.stamps import ProjectStamps
from domain.projects.store import ProjectStore
from domain.quotas.service import Quotas
from domain.quotas.store import UsageStore
from domain.records.service import RecordsService
from domain.records.store import RecordStore
from domain.resets.service import PasswordResets, ResetLimits
from domain.resets.store import PasswordResetStore
from domain.sql.lane import QueryLane
from domain.sql.service import SqlService
from domain.sso.oidc import OidcClient
from domain.sso.service import SsoService
from domain.sso.store import IdentityStore, PendingSignIns
from domain.tokens.device_store import DeviceLoginStore
from domain.tokens.devices import DeviceLogins
from domain.tokens.service import AccessTokenService
from domain.tokens.store import AccessTokenStore
from domain.uploads.service import UploadsService
from domain.uploads.store import UploadStore
from domain.visualizations.service import VisualizationsService
from domain.visualizations.store import VisualizationStore
from workers.pool import WorkerPool

log = logging.getLogger("labhub.assembly")


@attrs.frozen
class Domain:
    """Every service of one LabHub process."""

    accounts: AccountsService
    auth: AuthService
    access_tokens: AccessTokenService
    mail: MailService
    password_resets: PasswordResets
    activity: ActivityLog
    projects: ProjectsService
    quotas: Quotas
    uploads: UploadsService
    documents: DocumentsService
    records: RecordsService
    event_log: EventLog
    notifications: NotificationsService
    meetings: MeetingsService
    calendar_links: CalendarLinks
    job_events: JobEvents
    job_notices: JobNotices
    jobs: JobsService
    local_files: LocalFiles
    datasets: DatasetsService
    ingestions: IngestionService
    visualizations: VisualizationsService
    engagement: EngagementService
    sql: SqlService
    series: SeriesService
    lineage: LineageService
    fair: FairService
    sso: SsoService
    sign_in_policies: SignInPolicies
    device_logins: DeviceLogins


async def start_serving(domain: Domain, settings: Settings) -> None:
    """What only `serve` does at start (never an admin command, which may run beside a server): the
    local files a previous run left are swept, and the head named in auth.bootstrap_email is made
    when it does not exist yet."""
    await asyncio.to_thread(domain.local_files.sweep)
    a = settings.auth
    if a.bootstrap_email and a.bootstrap_password:
        created = await domain.accounts.ensure_head(
            email=a.bootstrap_email, password=a.bootstrap_password, name=a.bootstrap_email.split("@")[0]
        )
        if created:
            log.info("bootstrap head created", extra={"user_id": created.id})


def attach_query_lane(domain: Domain, pool: WorkerPool) -> None:
    """The serving process's query lane: SQL runs there, never in the jobs' pool."""
    domain.sql.use_lane(QueryLane(pool))


def build_scheduler(
    domain: Domain, settings: Settings, db: Database, redis: RedisStore, pool: WorkerPool, metrics: Metrics
) -> Scheduler:
    """The scheduler of this process, listening to the pool, and what hears of each finished job."""
    j = settings.jobs
    scheduler = Scheduler(
        JobStore(db), domain.job_events, domain.jobs.kinds, pool, redis,
        SchedulerSettings(
            heartbeat_s=j.heartbeat_s, lease_s=j.lease_s, poll_s=j.poll_s,
            cancel_grace_s=j.cancel_grace_s, shutdown_grace_s=j.shutdown_grace_s,
        ),
        metrics=metrics,
    )  # fmt: skip
    pool.listen(scheduler.on_worker_event, scheduler.on_pool_rebuilt)
    domain.jobs.run_here(scheduler)  # a job submitted while a slot is idle starts here at once
    scheduler.on_finished(domain.job_notices.in_app)
    scheduler.on_finished(domain.job_notices.by_mail)
    scheduler.on_finished(_count_ingestion(metrics))
    return scheduler


def _count_ingestion(metrics: Metrics) -> Callable[[Job, str], Awaitable[None]]:
    """A finish listener: the bytes and rows of each ingestion that succeeded on this instance."""

    async def count(job: Job, _title: str) -> None:
        if job.kind == INGEST_KIND and job.status is JobStatus.SUCCEEDED:
            metrics.ingested_bytes.inc(job.params["file"]["size"])
            metrics.ingested_rows.inc((job.result or {}).get("rows") or 0)

    return count


def _passwords(settings: Settings) -> Passwords:
    a = settings.auth
    return Passwords(
        time_cost=a.argon2_time_cost, memory_kib=a.argon2_memory_kib, parallelism=a.argon2_parallelism,
        at_once=a.password_checks_at_once, waiting=a.password_checks_waiting,
    )  # fmt: skip


def _login_throttle(redis: RedisStore, settings: Settings) -> LoginThrottle:
    a = settings.auth
    per_client = WindowLimit(
        redis, "login-client", limit=a.login_failures_per_client, window_s=a.login_client_window_s
    )
    return LoginThrottle(
        redis, per_client, free_attempts=a.login_free_attempts, base_s=a.login_backoff_base_s,
        max_s=a.login_backoff_max_s,
    )  # fmt: skip


def _mail(db: Database, settings: Settings) -> MailService:
    m = settings.mail
    sender = Sender(
        address=m.from_address, name=m.from_name, base_url=settings.mail_base_url, zone=settings.app.zone
    )
    return MailService(m, MailOutbox(db), SmtpTransport(m), sender)


def _resets(
    db: Database,
    settings: Settings,
    redis: RedisStore,
    people: People,
    accounts: AccountsService,
    mail: MailService,
) -> PasswordResets:
    a = settings.auth
    limits = ResetLimits(
        per_address=WindowLimit(
            redis, "reset-address", limit=a.reset_requests_per_address, window_s=a.reset_window_s
        ),
        per_client=WindowLimit(
            redis, "reset-client", limit=a.reset_requests_per_client, window_s=a.reset_window_s
        ),
    )
    return PasswordResets(
        PasswordResetStore(db), people, accounts, mail, limits,
        _login_throttle(redis, settings), ttl_s=a.reset_ttl_s, mail_base_url=settings.mail_base_url,
    )  # fmt: skip


def build_domain(
    settings: Settings, db: Database, redis: RedisStore, objects: ObjectStore, job_kinds: JobKinds
) -> Domain:
    """Every service, tied together; job kinds the areas define are added to job_kinds."""
    a, u, j = settings.auth, settings.uploads, settings.jobs
    passwords = _passwords(settings)
    registrations = WindowLimit(
        redis, "register-client", limit=a.registrations_per_client, window_s=a.registration_window_s
    )
    users = UserStore(db)
    people = People(users, AccountAuditStore(db))
    policies = SignInPolicies(
        SignInPolicyStore(db), people, cache_s=a.identity_cache_s, sso_enabled=settings.oidc.enabled
    )
    accounts = AccountsService(
        users, RefreshTokenStore(db), passwords, open_registration=a.open_registration,
        cache_s=a.identity_cache_s, registrations=registrations, session_ends=SessionEnds(redis),
        policies=policies,
    )  # fmt: skip
    tokens = TokenConfig(
        secret=a.jwt_secret, issuer=a.jwt_issuer, audience=a.jwt_audience, access_ttl_s=a.access_ttl_s,
        sse_ttl_s=a.sse_ticket_ttl_s,
    )  # fmt: skip
    auth = AuthService(
        users, RefreshTokenStore(db), passwords, _login_throttle(redis, settings), accounts, tokens,
        SingleUse(redis, "sse-ticket"), refresh_ttl_s=a.refresh_ttl_s, policies=policies,
    )  # fmt: skip
    o = settings.oidc
    sso = SsoService(
        o, OidcClient(o) if o.enabled else None, IdentityStore(db), PendingSignIns(redis, o.state_ttl_s),
        accounts, auth, people,
    )  # fmt: skip
    project_store, audit_store = ProjectStore(db), AuditStore(db)
    gate = ProjectGate(project_store, cache_s=a.identity_cache_s, stamps=ProjectStamps(redis))
    access_tokens = AccessTokenService(
        AccessTokenStore(db), accounts, people, gate, cache_s=a.identity_cache_s
    )
    accounts.revoke_tokens_with(access_tokens.revoke_user)
    d = settings.device_login
    device_logins = DeviceLogins(
        DeviceLoginStore(redis), access_tokens, people, d,
        starts=WindowLimit(redis, "device-start", limit=d.starts_per_client, window_s=d.window_s),
        lookups=WindowLimit(redis, "device-lookup", limit=d.lookups_per_user, window_s=d.window_s),
    )  # fmt: skip
    mail = _mail(db, settings)
    resets = _resets(db, settings, redis, people, accounts, mail)
    audit = AuditLog(audit_store)
    projects = ProjectsService(gate, project_store, people, audit)
    activity = ActivityLog(ActivityStore(db), redis, settings.app.zone)
    quotas = Quotas(UsageStore(db), settings.quotas)
    uploads = UploadsService(
        UploadStore(db), objects, quotas, max_size=max(u.max_bytes, settings.ingest.max_file_bytes),
        part_size=u.part_size_bytes, ttl_s=u.resumable_ttl_s,
    )  # fmt: skip
    documents = DocumentsService(
        gate, DocumentStore(db), objects, audit, activity, uploads, quotas,
        max_bytes=u.max_bytes, part_size=u.part_size_bytes,
    )  # fmt: skip
    records = RecordsService(gate, RecordStore(db), audit, activity)
    event_log = EventLog(redis, maxlen=j.events_maxlen, ttl_s=j.events_ttl_s)
    notifications = NotificationsService(NotificationStore(db), event_log)
    meetings = MeetingsService(
        gate,
        MeetingStore(db),
        people,
        notifications,
        audit,
        Invitations(mail, people),
        zone=settings.app.zone,
    )
    calendar_links = CalendarLinks(CalendarLinkStore(db), accounts, gate, MeetingStore(db), people)
    job_events = JobEvents(event_log, redis)
    jobs = JobsService(gate, JobStore(db), job_events, job_kinds, quotas)
    local_files = LocalFiles(settings.data_path, cache_bytes=settings.ingest.cache_bytes)
    dataset_store, ingestion_store = DatasetStore(db), IngestionStore(db)
    datasets = DatasetsService(
        gate, dataset_store, objects, local_files, part_size=u.part_size_bytes
    )
    ingestions = IngestionService(
        gate, jobs, ingestion_store, dataset_store, objects, local_files, datasets,
        settings.ingest, activity, uploads, quotas, part_size=u.part_size_bytes,
    )  # fmt: skip
    visualizations = VisualizationsService(
        gate, VisualizationStore(db), datasets, jobs, objects, local_files,
        part_size=u.part_size_bytes,
    )  # fmt: skip
    engagement = EngagementService(
        gate, EngagementStore(db), activity, people, audit, visualizations, meetings, zone=settings.app.zone
    )
    sql = SqlService(
        gate, datasets, jobs, objects, local_files, settings.sql, settings.ingest, part_size=u.part_size_bytes
    )
    series = SeriesService(datasets, jobs, local_files, zone=settings.app.timezone)
    lineage = LineageService(gate, people, datasets, ingestions, visualizations, records, documents)
    fair = FairService(
        gate, FairStore(db), people, datasets, documents, records, local_files, publisher=settings.app.publisher,
        base_url=settings.mail_base_url,
    )  # fmt: skip
    # -- the hooks between areas: here and nowhere else --------------------------------------------
    ingestions.visualize = visualizations.queue_default
    datasets.on_remove(visualizations.remove_for_dataset)
    datasets.guard_with(fair.refuse_published)
    fair.add_to_lineage(lineage)
    datasets.list_related_with(visualizations.summaries_for_dataset)
    for kind in (ingestions.job_kind(), *visualizations.job_kinds(), sql.job_kind(), series.job_kind()):
        job_kinds.register(kind)
    for purger in (
        fair.purge_project,  # first: the public pages go before what they show
        documents.purge_project, records.purge_project, audit_store.delete_project,
        visualizations.purge_project, datasets.purge_project, ingestions.purge_project,
        meetings.purge_project, engagement.purge_project,
    ):  # fmt: skip
        projects.add_purger(purger)
    return Domain(
        accounts=accounts, auth=auth, access_tokens=access_tokens, mail=mail, password_resets=resets, activity=activity,
        projects=projects, quotas=quotas, uploads=uploads, documents=documents, records=records,
        event_log=event_log, notifications=notifications, meetings=meetings, calendar_links=calendar_links,
        job_events=job_events, job_notices=JobNotices(notifications, mail, people, gate, after_s=settings.mail.job_notice_after_s), jobs=jobs, local_files=local_files, datasets=datasets, ingestions=ingestions,
        visualizations=visualizations, engagement=engagement, sql=sql, series=series, lineage=lineage, fair=fair,
        sso=sso, sign_in_policies=policies, device_logins=device_logins,
    )  # fmt: skip
