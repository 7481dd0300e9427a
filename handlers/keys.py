"""Typed application and request state keys, declared once."""

from __future__ import annotations

from aiohttp import web
from pymongo.asynchronous.database import AsyncDatabase

from domain.accounts.policy import SignInPolicies
from domain.accounts.service import AccountsService
from domain.accounts.signin import AuthService
from domain.assembly import Domain
from domain.core.metrics import Metrics
from domain.core.settings import Settings
from domain.datasets.ingestion import IngestionService
from domain.datasets.series import SeriesService
from domain.datasets.service import DatasetsService
from domain.documents.service import DocumentsService
from domain.engagement.service import EngagementService
from domain.fair.service import FairService
from domain.infra.events import EventHub, EventLog
from domain.infra.localfiles import LocalFiles
from domain.infra.objects import ObjectStore
from domain.infra.redis_store import RedisStore
from domain.jobs.events import JobEvents
from domain.jobs.models import JobKinds
from domain.jobs.scheduler import Scheduler
from domain.jobs.service import JobsService
from domain.lineage.service import LineageService
from domain.mail.service import MailService
from domain.meetings.calendar_links import CalendarLinks
from domain.meetings.service import MeetingsService
from domain.notifications.service import NotificationsService
from domain.projects.service import ProjectsService
from domain.quotas.service import Quotas
from domain.records.service import RecordsService
from domain.resets.service import PasswordResets
from domain.sql.service import SqlService
from domain.sso.service import SsoService
from domain.tokens.devices import DeviceLogins
from domain.tokens.models import TokenGrant
from domain.tokens.service import AccessTokenService
from domain.uploads.service import UploadsService
from domain.visualizations.service import VisualizationsService
from ops.embedded import EmbeddedServices, ServiceEndpoints
from workers.pool import PoolSizing, WorkerPool

DOMAIN = web.AppKey("domain", Domain)  # every service (domain/assembly.py); handlers use the keys below
SETTINGS = web.AppKey("settings", Settings)
ENDPOINTS = web.AppKey("endpoints", ServiceEndpoints)
MONGO = web.AppKey("mongo", AsyncDatabase)
EMBEDDED = web.AppKey("embedded", EmbeddedServices)  # only with services.mode = "embedded"
REDIS = web.AppKey("redis", RedisStore)
OBJECTS = web.AppKey("objects", ObjectStore)
ACCOUNTS = web.AppKey("accounts", AccountsService)
AUTH = web.AppKey("auth", AuthService)
OPENAPI = web.AppKey("openapi", dict)
PROJECTS = web.AppKey("projects", ProjectsService)
QUOTAS = web.AppKey("quotas", Quotas)
DOCUMENTS = web.AppKey("documents", DocumentsService)
RECORDS = web.AppKey("records", RecordsService)
EVENT_LOG = web.AppKey("event_log", EventLog)
EVENT_HUB = web.AppKey("event_hub", EventHub)
NOTIFICATIONS = web.AppKey("notifications", NotificationsService)
JOB_KINDS = web.AppKey("job_kinds", JobKinds)
JOBS = web.AppKey("jobs", JobsService)
JOB_EVENTS = web.AppKey("job_events", JobEvents)  # one per process: see JobEvents
POOL = web.AppKey("pool", WorkerPool)
POOL_SIZING = web.AppKey("pool_sizing", PoolSizing)
QUERY_POOL = web.AppKey("query_pool", WorkerPool)  # the query lane (domain/sql/lane.py)
SQL = web.AppKey("sql", SqlService)
SCHEDULER = web.AppKey("scheduler", Scheduler)
LOCAL_FILES = web.AppKey("local_files", LocalFiles)
DATASETS = web.AppKey("datasets", DatasetsService)
SERIES = web.AppKey("series", SeriesService)
LINEAGE = web.AppKey("lineage", LineageService)
FAIR = web.AppKey("fair", FairService)
INGESTIONS = web.AppKey("ingestions", IngestionService)
VISUALIZATIONS = web.AppKey("visualizations", VisualizationsService)
MEETINGS = web.AppKey("meetings", MeetingsService)
METRICS = web.AppKey("metrics", Metrics)
ENGAGEMENT = web.AppKey("engagement", EngagementService)
ACCESS_TOKENS = web.AppKey("access_tokens", AccessTokenService)
CALENDAR_LINKS = web.AppKey("calendar_links", CalendarLinks)
MAIL = web.AppKey("mail", MailService)
UPLOADS = web.AppKey("uploads", UploadsService)
PASSWORD_RESETS = web.AppKey("password_resets", PasswordResets)
SSO = web.AppKey("sso", SsoService)
SIGN_IN_POLICIES = web.AppKey("sign_in_policies", SignInPolicies)
DEVICE_LOGINS = web.AppKey("device_logins", DeviceLogins)

REQUEST_ID = web.RequestKey("request_id", str)
USER_ID = web.RequestKey("user_id", str)
GRANT = web.RequestKey("grant", TokenGrant)  # set when the request came with a personal access token


def put_domain(app: web.Application, domain: Domain) -> None:
    """Every service of the domain under its key: handlers read them by key, typed."""
    app[DOMAIN] = domain
    app[ACCOUNTS], app[AUTH], app[ACCESS_TOKENS] = domain.accounts, domain.auth, domain.access_tokens
    app[MAIL], app[PASSWORD_RESETS], app[PROJECTS] = domain.mail, domain.password_resets, domain.projects
    app[QUOTAS], app[UPLOADS], app[DOCUMENTS] = domain.quotas, domain.uploads, domain.documents
    app[RECORDS], app[EVENT_LOG], app[NOTIFICATIONS] = domain.records, domain.event_log, domain.notifications
    app[MEETINGS], app[CALENDAR_LINKS] = domain.meetings, domain.calendar_links
    app[JOB_EVENTS], app[JOBS], app[LOCAL_FILES] = domain.job_events, domain.jobs, domain.local_files
    app[DATASETS], app[INGESTIONS] = domain.datasets, domain.ingestions
    app[VISUALIZATIONS], app[ENGAGEMENT] = domain.visualizations, domain.engagement
    app[SQL], app[SERIES], app[LINEAGE], app[FAIR] = domain.sql, domain.series, domain.lineage, domain.fair
    app[SSO], app[SIGN_IN_POLICIES], app[DEVICE_LOGINS] = domain.sso, domain.sign_in_policies, domain.device_logins
