"""Typed application and request state keys, declared once."""

from __future__ import annotations

from aiohttp import web
from pymongo.asynchronous.database import AsyncDatabase

from domain.access_token_service import AccessTokenService
from domain.access_tokens import TokenGrant
from domain.accounts import AccountsService
from domain.auth import AuthService
from domain.calendar_links import CalendarLinks
from domain.dataset_service import DatasetsService
from domain.document_service import DocumentsService
from domain.engagement_service import EngagementService
from domain.ingestion_service import IngestionService
from domain.job_service import JobEvents, JobsService
from domain.jobs import JobKinds
from domain.mail_service import MailService
from domain.meeting_service import MeetingsService
from domain.metrics import Metrics
from domain.notification_service import NotificationsService
from domain.password_resets import PasswordResets
from domain.project_service import ProjectsService
from domain.quotas import Quotas
from domain.record_service import RecordsService
from domain.scheduler import Scheduler
from domain.settings import Settings
from domain.stores.embedded import EmbeddedServices, ServiceEndpoints
from domain.stores.events import EventHub, EventLog
from domain.stores.localfiles import LocalFiles
from domain.stores.objects import ObjectStore
from domain.stores.redis_store import RedisStore
from domain.upload_service import UploadsService
from domain.visualization_service import VisualizationsService
from workers.pool import PoolSizing, WorkerPool

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
SCHEDULER = web.AppKey("scheduler", Scheduler)
LOCAL_FILES = web.AppKey("local_files", LocalFiles)
DATASETS = web.AppKey("datasets", DatasetsService)
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

REQUEST_ID = web.RequestKey("request_id", str)
USER_ID = web.RequestKey("user_id", str)
GRANT = web.RequestKey("grant", TokenGrant)  # set when the request came with a personal access token
