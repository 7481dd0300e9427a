"""LabHub settings: frozen attrs sections loaded from config.toml, overridden by LABHUB_* variables."""

from __future__ import annotations

import json
import os
import re
import secrets
import tomllib
import typing
import urllib.parse
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn
from cattrs.v import transform_error

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
    max_columns: int = attrs.field(default=2000, validator=_positive)
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
    mail: MailSettings = MailSettings()
    metrics: MetricsSettings = MetricsSettings()

    @property
    def mail_base_url(self) -> str:
        """The base of links in mail: http.public_url, else the configured listen address (never a
        request's Host header, which whoever asks for a reset mail controls)."""
        host = self.http.host if self.http.host not in {"0.0.0.0", "::", ""} else "localhost"  # noqa: S104 - comparing, not binding
        return self.http.public_url or f"http://{host}:{self.http.port}"

    @property
    def data_path(self) -> Path:
        return Path(self.services.data_dir).resolve()


# Secrets may come from the environment or from a *_file key, never from the config file itself.
SECRET_KEYS = frozenset(
    {
        ("auth", "jwt_secret"),
        ("auth", "bootstrap_password"),
        ("s3", "secret_key"),
        ("mail", "password"),
        ("metrics", "bearer_secret"),
    }
)
_SECTIONS: dict[str, type[Any]] = typing.get_type_hints(Settings)
_FIELD_TYPES: dict[str, dict[str, Any]] = {
    name: typing.get_type_hints(cls) for name, cls in _SECTIONS.items()
}


def _structure_bool(value: object, _type: type) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _structure_int(value: object, _type: type) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"expected a whole number, got {value!r}")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip().replace("_", ""))
        except ValueError:
            pass
    raise ValueError(f"expected a whole number, got {value!r}")


def _structure_float(value: object, _type: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _structure_str(value: object, _type: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value  # settings hold no str-based enums, only Literal choices


def _make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(bool, _structure_bool)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(str, _structure_str)
    for cls in [*_SECTIONS.values(), Settings]:
        converter.register_structure_hook(
            cls, make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=True)
        )
    return converter


_CONVERTER = _make_converter()


def _env_value(raw: str, field_type: Any) -> object:
    """Environment values are strings; lists accept JSON arrays or comma-separated items."""
    origin = typing.get_origin(field_type)
    if origin in (tuple, list):
        stripped = raw.strip()
        if stripped.startswith("["):
            return json.loads(stripped)
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return raw


def _apply_environment(data: dict[str, dict[str, Any]], environ: Mapping[str, str]) -> None:
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name in LAUNCHER_VARIABLES:
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section = next((s for s in _SECTIONS if rest.startswith(s + "_")), None)
        if section is None:
            raise SettingsError(f"{name}: unknown setting (no section {rest.split('_')[0]!r})")
        key = rest[len(section) + 1 :]
        if key not in _FIELD_TYPES[section]:
            raise SettingsError(f"{name}: unknown setting {section}.{key}")
        try:
            data.setdefault(section, {})[key] = _env_value(raw, _FIELD_TYPES[section][key])
        except ValueError as exc:
            raise SettingsError(f"{name}: {exc}") from None


def _read_secret_files(data: dict[str, dict[str, Any]]) -> None:
    for section, key in SECRET_KEYS:
        path = data.get(section, {}).get(f"{key}_file")
        if path and not data[section].get(key):
            try:
                data[section][key] = Path(path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SettingsError(f"{section}.{key}_file: cannot read {path}: {exc.strerror}") from None


def _describe(exc: BaseException, _type: Any) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"{', '.join(sorted(exc.extra_fields))}: unknown key"
    if isinstance(exc, KeyError):
        return "required key missing"
    if typing.get_origin(_type) is Literal:
        choices = ", ".join(repr(c) for c in typing.get_args(_type))
        return f"must be one of {choices}"
    return str(exc) or type(exc).__name__


def _first_error(exc: cattrs.BaseValidationError) -> str:
    messages = transform_error(exc, path="", format_exception=_describe)
    message = messages[0] if messages else str(exc)
    # transform_error writes "invalid value for type, expected int @ .http.port"
    if " @ " not in message:
        return message
    text, where = message.rsplit(" @ ", 1)
    where = where.lstrip(".")
    field, sep, reason = text.partition(": ")
    if sep and where in _SECTIONS and field.isidentifier():
        # a validator or an unknown key inside a section: name the key itself
        return f"{where}.{field}: {reason}"
    return f"{where}: {text}"


def load_settings(
    config_path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read config.toml (or LABHUB_CONFIG), apply LABHUB_<SECTION>_<KEY> overrides, validate."""
    environ = os.environ if environ is None else environ
    path = Path(
        config_path or environ.get(CONFIG_PATH_VARIABLE) or Path(__file__).parents[2] / "config.toml"
    )
    try:
        with path.open("rb") as handle:
            data: dict[str, Any] = tomllib.load(handle)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: {exc}") from None
    for section, values in data.items():
        if section not in _SECTIONS:
            raise SettingsError(f"{section}: unknown section in {path}")
        if not isinstance(values, dict):
            raise SettingsError(f"{section}: must be a [section] table in {path}")
        for key in values:
            if (section, key) in SECRET_KEYS and values[key]:
                raise SettingsError(
                    f"{section}.{key}: secrets are not read from {path.name}; "
                    f"set {ENV_PREFIX}{section.upper()}_{key.upper()} or {section}.{key}_file"
                )
    _apply_environment(data, environ)
    _read_secret_files(data)
    return structure_settings(data)


def structure_settings(data: Mapping[str, Any]) -> Settings:
    try:
        settings = _CONVERTER.structure(dict(data), Settings)
    except (cattrs.BaseValidationError, ValueError, TypeError) as exc:
        if isinstance(exc, cattrs.BaseValidationError):
            raise SettingsError(_first_error(exc)) from None
        raise SettingsError(str(exc)) from None
    _check_mail(settings.mail)
    return settings


def _check_mail(mail: MailSettings) -> None:
    if not mail.enabled:
        return
    if not mail.host.strip():
        raise SettingsError("mail.host: required when mail.enabled is true")
    if not mail.from_address:
        raise SettingsError("mail.from_address: required when mail.enabled is true (e.g. labhub@lab.example)")
    if mail.username and not mail.password:
        raise SettingsError(
            "mail.password: required with mail.username (LABHUB_MAIL_PASSWORD or mail.password_file)"
        )


def with_changes(settings: Settings, **sections: Mapping[str, Any]) -> Settings:
    """A copy of settings with some keys of some sections replaced (used by the launcher and tests)."""
    changed = {name: attrs.evolve(getattr(settings, name), **values) for name, values in sections.items()}
    return attrs.evolve(settings, **changed)


def _persistent_secret(path: Path, nbytes: int) -> str:
    """A random secret generated once and kept in the data dir (embedded dev mode only)."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    return value


def finalize_secrets(settings: Settings) -> Settings:
    """Fill in generated secrets for embedded dev use and refuse weak ones in production."""
    auth = settings.auth
    if not auth.jwt_secret and settings.app.env != "production":
        secret = _persistent_secret(settings.data_path / "secrets" / "jwt_secret", 48)
        settings = with_changes(settings, auth={"jwt_secret": secret})
    secret = settings.auth.jwt_secret
    if settings.app.env == "production":
        if not secret:
            raise SettingsError("auth.jwt_secret: required in production (LABHUB_AUTH_JWT_SECRET)")
        if secret == SAMPLE_JWT_SECRET:
            raise SettingsError("auth.jwt_secret: the sample secret cannot be used in production")
        if len(secret.encode()) < MIN_PRODUCTION_SECRET_BYTES:
            raise SettingsError(
                f"auth.jwt_secret: must be at least {MIN_PRODUCTION_SECRET_BYTES} bytes in production"
            )
    if settings.app.env == "production" and not settings.http.public_url:
        # links (calendar, reset, mail) would be built from the Host header a client sends, and the
        # session cookie could not tell it is served over TLS behind a proxy
        raise SettingsError(
            "http.public_url: required in production, the address people use, e.g. https://labhub.lab.example "
            "(LABHUB_HTTP_PUBLIC_URL)"
        )
    scraper = settings.metrics.bearer_secret
    if scraper and settings.app.env == "production" and len(scraper.encode()) < MIN_PRODUCTION_SECRET_BYTES:
        raise SettingsError(
            f"metrics.bearer_secret: must be at least {MIN_PRODUCTION_SECRET_BYTES} bytes in production"
        )
    if settings.services.mode == "embedded" and not settings.s3.secret_key:
        s3_secret = _persistent_secret(settings.data_path / "secrets" / "s3_secret", 24)
        settings = with_changes(
            settings, s3={"secret_key": s3_secret, "access_key": settings.s3.access_key or "labhub-local"}
        )
    return settings


__all__ = [
    "AppSettings",
    "AuthSettings",
    "HttpSettings",
    "IngestSettings",
    "JobSettings",
    "MailSettings",
    "MetricsSettings",
    "MongoSettings",
    "PoolSettings",
    "QuotaSettings",
    "RedisSettings",
    "S3Settings",
    "ServicesSettings",
    "Settings",
    "SettingsError",
    "SseSettings",
    "UploadSettings",
    "finalize_secrets",
    "load_settings",
    "structure_settings",
    "with_changes",
]
