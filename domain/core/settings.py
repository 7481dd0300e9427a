"""LabHub settings: frozen attrs sections, one per config.toml table, checked as they are made
(how they are read, from config.toml and LABHUB_* variables, is core/config.py)."""

from __future__ import annotations

import re
import urllib.parse
import zoneinfo
from pathlib import Path
from typing import Any, Literal

import attrs

ENV_PREFIX = "LABHUB_"
CONFIG_PATH_VARIABLE = "LABHUB_CONFIG"
# the launcher's own variables, which are not settings: the Python to use, the browser tests' Chromium
LAUNCHER_VARIABLES = frozenset({CONFIG_PATH_VARIABLE, "LABHUB_PYTHON", "LABHUB_CHROMIUM"})
SAMPLE_JWT_SECRET = "change-me-to-a-long-random-secret"  # noqa: S105 - the sample that must never run in production
MIN_PRODUCTION_SECRET_BYTES = 32


class SettingsError(Exception):
    """A setting is unknown or has a bad value; the message names the key in one line."""


def _positive(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name}: must be greater than 0, got {value!r}")


def _not_negative(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name}: must be 0 (no limit) or more, got {value!r}")


def _nice(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= 19:
        raise ValueError(f"{attribute.name}: must be a niceness from 0 (none) to 19, got {value}")


def _port(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 0 <= value <= 65535:
        raise ValueError(f"{attribute.name}: must be a TCP port (0-65535, 0 = pick a free one), got {value}")


def _fraction(_inst: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"{attribute.name}: must be in (0, 1], got {value}")


def _part_size(_inst: object, attribute: attrs.Attribute[Any], value: int) -> None:
    if not 5 * 1024**2 <= value <= 5 * 1024**3:
        raise ValueError(
            f"{attribute.name}: must be between 5 MiB and 5 GiB (S3 multipart limits), got {value}"
        )


def _timezone(_inst: object, attribute: attrs.Attribute[Any], value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{attribute.name}: not an IANA time zone such as Europe/Berlin, got {value!r}"
        ) from None


@attrs.frozen
class AppSettings:
    env: Literal["dev", "test", "production"] = "dev"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    timezone: str = attrs.field(default="UTC", validator=_timezone)
    publisher: str = ""  # the lab or institute: the publisher of packages and public pages (default "LabHub")

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)


def _public_url(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value and (not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value) or value.endswith("/")):
        raise ValueError(
            f"{attribute.name}: must be like https://labhub.lab.example (no trailing /), got {value!r}"
        )


@attrs.frozen
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = attrs.field(default=8080, validator=_port)
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = attrs.field(default=1_048_576, validator=_positive)
    max_json_depth: int = attrs.field(default=64, validator=_positive)
    public_url: str = attrs.field(default="", validator=_public_url)


@attrs.frozen
class ServicesSettings:
    mode: Literal["embedded", "external"] = "embedded"
    data_dir: str = "var"
    mongo_port: int = attrs.field(default=0, validator=_port)
    redis_port: int = attrs.field(default=0, validator=_port)
    s3_port: int = attrs.field(default=0, validator=_port)
    start_timeout_s: float = attrs.field(default=60.0, validator=_positive)
    restart_attempts: int = attrs.field(default=5, validator=_positive)


def hide_password(url: str) -> str:
    """A service URL as it may be printed: any password in it replaced by ***."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return repr(url)
    host = parts.netloc.rpartition("@")[2]
    return repr(urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}")))


@attrs.frozen
class MongoSettings:
    uri: str = attrs.field(default="mongodb://127.0.0.1:27017", repr=hide_password)
    database: str = "labhub"


@attrs.frozen
class RedisSettings:
    url: str = attrs.field(default="redis://127.0.0.1:6379/0", repr=hide_password)
    key_prefix: str = "labhub:"


@attrs.frozen
class S3Settings:
    endpoint_url: str = "http://127.0.0.1:9000"
    access_key: str = ""
    secret_key: str = attrs.field(default="", repr=False)
    secret_key_file: str = ""
    bucket: str = "labhub"
    region: str = "us-east-1"


@attrs.frozen
class AuthSettings:
    jwt_secret: str = attrs.field(default="", repr=False)
    jwt_secret_file: str = ""
    jwt_issuer: str = "labhub"
    jwt_audience: str = "labhub-api"
    access_ttl_s: int = attrs.field(default=900, validator=_positive)
    refresh_ttl_s: int = attrs.field(default=30 * 24 * 3600, validator=_positive)
    sse_ticket_ttl_s: int = attrs.field(default=60, validator=_positive)
    open_registration: bool = True
    bootstrap_email: str = ""
    bootstrap_password: str = attrs.field(default="", repr=False)
    login_free_attempts: int = attrs.field(default=5, validator=_positive)
    login_backoff_base_s: float = attrs.field(default=1.0, validator=_positive)
    login_backoff_max_s: float = attrs.field(default=900.0, validator=_positive)
    login_failures_per_client: int = attrs.field(default=50, validator=_positive)
    login_client_window_s: int = attrs.field(default=900, validator=_positive)
    registrations_per_client: int = attrs.field(default=10, validator=_positive)
    registration_window_s: int = attrs.field(default=3600, validator=_positive)
    password_checks_at_once: int = attrs.field(default=2, validator=_positive)
    password_checks_waiting: int = attrs.field(default=32, validator=_positive)
    argon2_time_cost: int = attrs.field(default=3, validator=_positive)
    argon2_memory_kib: int = attrs.field(default=65_536, validator=_positive)
    argon2_parallelism: int = attrs.field(default=4, validator=_positive)
    identity_cache_s: float = 5.0
    reset_ttl_s: int = attrs.field(default=24 * 3600, validator=_positive)
    reset_requests_per_address: int = attrs.field(default=3, validator=_positive)
    reset_requests_per_client: int = attrs.field(default=20, validator=_positive)
    reset_window_s: int = attrs.field(default=3600, validator=_positive)


@attrs.frozen
class UploadSettings:
    max_bytes: int = attrs.field(default=5 * 1024**3, validator=_positive)
    part_size_bytes: int = attrs.field(default=8 * 1024**2, validator=_part_size)
    resumable_ttl_s: int = attrs.field(default=24 * 3600, validator=_positive)
    resumable_sweep_s: float = attrs.field(default=300.0, validator=_positive)


@attrs.frozen
class PoolSettings:
    ram_fraction: float = attrs.field(default=0.5, validator=_fraction)
    worker_memory_bytes: int = attrs.field(default=1024**3, validator=_positive)
    min_workers: int = attrs.field(default=1, validator=_positive)
    max_workers: int = attrs.field(default=8, validator=_positive)
    worker_nice: int = attrs.field(default=5, validator=_nice)


@attrs.frozen
class JobSettings:
    heartbeat_s: float = attrs.field(default=5.0, validator=_positive)
    lease_s: float = attrs.field(default=30.0, validator=_positive)
    poll_s: float = attrs.field(default=2.0, validator=_positive)
    cancel_grace_s: float = attrs.field(default=10.0, validator=_positive)
    shutdown_grace_s: float = attrs.field(default=20.0, validator=_positive)
    events_ttl_s: int = attrs.field(default=7 * 24 * 3600, validator=_positive)
    events_maxlen: int = attrs.field(default=5000, validator=_positive)
    plugins: tuple[str, ...] = ()


@attrs.frozen
class SseSettings:
    ping_s: float = attrs.field(default=15.0, validator=_positive)
    retry_ms: int = attrs.field(default=3000, validator=_positive)
    max_buffer_bytes: int = attrs.field(default=512 * 1024, validator=_positive)


@attrs.frozen
class IngestSettings:
    max_file_bytes: int = attrs.field(default=4 * 1024**3, validator=_positive)
    max_files: int = attrs.field(default=100, validator=_positive)
    max_columns: int = attrs.field(default=50_000, validator=_positive)
    max_cell_bytes: int = attrs.field(default=1024 * 1024, validator=_positive)
    max_uncompressed_bytes: int = attrs.field(default=1024**3, validator=_positive)
    max_zip_entries: int = attrs.field(default=10_000, validator=_positive)
    max_compression_ratio: float = attrs.field(default=200.0, validator=_positive)
    block_bytes: int = attrs.field(default=2 * 1024 * 1024, validator=_positive)
    stats_values: int = attrs.field(default=4_000_000, validator=_positive)
    timeout_s: float = attrs.field(default=3600.0, validator=_positive)
    raw_wait_s: float = attrs.field(default=600.0, validator=_positive)
    raw_lease_s: float = attrs.field(default=30.0, validator=_positive)
    cache_bytes: int = attrs.field(default=2 * 1024**3, validator=_positive)


@attrs.frozen
class SqlSettings:
    """SQL over datasets (docs/architecture.md, "SQL"): the query lane and each query's limits."""

    workers: int = attrs.field(default=0, validator=_not_negative)  # 0: sized from the host
    timeout_s: float = attrs.field(default=30.0, validator=_positive)
    memory_bytes: int = attrs.field(default=1024**3, validator=_positive)
    threads: int = attrs.field(default=2, validator=_positive)
    default_rows: int = attrs.field(default=10_000, validator=_positive)
    max_rows: int = attrs.field(default=1_000_000, validator=_positive)
    max_answer_bytes: int = attrs.field(default=64 * 1024**2, validator=_positive)
    max_sql_chars: int = attrs.field(default=100_000, validator=_positive)
    save_timeout_s: float = attrs.field(default=600.0, validator=_positive)


def _email_or_empty(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value and not re.match(r"^[^@\s<>]+@[^@\s<>]+$", value):
        raise ValueError(
            f"{attribute.name}: must be an email address such as labhub@lab.example, got {value!r}"
        )


STANDARD_SMTP_PORTS = {"none": 25, "starttls": 587, "tls": 465}


@attrs.frozen
class MailSettings:
    enabled: bool = False
    host: str = "localhost"
    port: int = attrs.field(default=0, validator=_port)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str = ""
    password: str = attrs.field(default="", repr=False)
    password_file: str = ""
    ca_file: str = ""
    from_address: str = attrs.field(default="", validator=_email_or_empty)
    from_name: str = "LabHub"
    job_notice_after_s: float = attrs.field(default=600.0, validator=_positive)
    timeout_s: float = attrs.field(default=30.0, validator=_positive)
    poll_s: float = attrs.field(default=10.0, validator=_positive)
    retry_base_s: float = attrs.field(default=30.0, validator=_positive)
    retry_max_s: float = attrs.field(default=3600.0, validator=_positive)
    max_attempts: int = attrs.field(default=12, validator=_positive)
    keep_sent_days: int = attrs.field(default=30, validator=_positive)

    @property
    def smtp_port(self) -> int:
        return self.port or STANDARD_SMTP_PORTS[self.security]


@attrs.frozen
class MetricsSettings:
    enabled: bool = True
    # the scraper's credential (Authorization: Bearer …); from the environment or bearer_secret_file only
    bearer_secret: str = attrs.field(default="", repr=False)
    bearer_secret_file: str = ""


@attrs.frozen
class QuotaSettings:
    """What one person may hold at a time (0: no limit)."""

    storage_per_user_bytes: int = attrs.field(default=50 * 1024**3, validator=_not_negative)
    storage_per_project_bytes: int = attrs.field(default=250 * 1024**3, validator=_not_negative)
    open_uploads_per_user: int = attrs.field(default=20, validator=_not_negative)
    queued_jobs_per_user: int = attrs.field(default=200, validator=_not_negative)
    streams_per_user: int = attrs.field(default=20, validator=_not_negative)


_ROLE_NAMES = ("student", "researcher", "GD", "DH")


def _issuer(_inst: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value and (not re.match(r"^https?://[^\s?#]+$", value) or value.endswith("/.well-known/openid-configuration")):
        raise ValueError(
            f"{attribute.name}: must be the provider's issuer URL, e.g. https://idp.uni.example/realms/lab, got {value!r}"
        )


def _group_roles(_inst: object, attribute: attrs.Attribute[Any], value: dict[str, str]) -> None:
    for group, role in value.items():
        if role not in _ROLE_NAMES:
            raise ValueError(
                f"{attribute.name}: group {group!r} maps to {role!r}; roles are {', '.join(_ROLE_NAMES)}"
            )


@attrs.frozen
class OidcSettings:
    """Sign-in with the university's account (docs/architecture.md, "Single sign-on")."""

    enabled: bool = False
    issuer: str = attrs.field(default="", validator=_issuer)
    client_id: str = ""
    client_secret: str = attrs.field(default="", repr=False)
    client_secret_file: str = ""
    scopes: tuple[str, ...] = ("openid", "email", "profile")
    display_name: str = "your institution's account"
    email_claim: str = "email"
    name_claim: str = "name"
    groups_claim: str = "groups"
    allowed_email_domains: tuple[str, ...] = ()  # empty: any; else the address's domain or a subdomain of one
    create_users: bool = True  # a first sign-in makes a student; false: only existing accounts may sign in
    group_roles: dict[str, str] = attrs.field(factory=dict, validator=_group_roles)
    http_timeout_s: float = attrs.field(default=10.0, validator=_positive)
    state_ttl_s: int = attrs.field(default=600, validator=_positive)  # a sign-in must come back within this
    metadata_ttl_s: int = attrs.field(default=3600, validator=_positive)  # discovery and keys are read again after this
    jwks_refresh_s: float = attrs.field(default=10.0, validator=_positive)  # an unknown key id reads the keys again at most this often
    leeway_s: int = attrs.field(default=60, validator=_not_negative)  # clock skew allowed on exp/iat


@attrs.frozen
class DeviceLoginSettings:
    """labhub-client login --browser: a code shown on the command line, approved in the browser."""

    ttl_s: int = attrs.field(default=600, validator=_positive)  # a code works this long (10 minutes), once
    interval_s: int = attrs.field(default=5, validator=_positive)  # the client polls at most this often
    starts_per_client: int = attrs.field(default=20, validator=_positive)  # codes one address may ask for per window
    lookups_per_user: int = attrs.field(default=10, validator=_positive)  # wrong codes one person may type per window
    window_s: int = attrs.field(default=600, validator=_positive)


@attrs.frozen
class Settings:
    app: AppSettings = AppSettings()
    http: HttpSettings = HttpSettings()
    services: ServicesSettings = ServicesSettings()
    mongo: MongoSettings = MongoSettings()
    redis: RedisSettings = RedisSettings()
    s3: S3Settings = S3Settings()
    auth: AuthSettings = AuthSettings()
    uploads: UploadSettings = UploadSettings()
    quotas: QuotaSettings = QuotaSettings()
    pool: PoolSettings = PoolSettings()
    jobs: JobSettings = JobSettings()
    sse: SseSettings = SseSettings()
    ingest: IngestSettings = IngestSettings()
    sql: SqlSettings = SqlSettings()
    mail: MailSettings = MailSettings()
    metrics: MetricsSettings = MetricsSettings()
    oidc: OidcSettings = OidcSettings()
    device_login: DeviceLoginSettings = DeviceLoginSettings()

    @property
    def mail_base_url(self) -> str:
        """The base of links in mail: http.public_url, else the configured listen address (never a
        request's Host header, which whoever asks for a reset mail controls)."""
        host = self.http.host if self.http.host not in {"0.0.0.0", "::", ""} else "localhost"  # noqa: S104 - comparing, not binding
        return self.http.public_url or f"http://{host}:{self.http.port}"

    @property
    def data_path(self) -> Path:
        return Path(self.services.data_dir).resolve()
