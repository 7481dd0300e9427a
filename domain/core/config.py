"""Reading the settings: config.toml (or LABHUB_CONFIG), LABHUB_<SECTION>_<KEY> overrides, secrets
from the environment or *_file keys, one clear line naming the key for a bad value."""

from __future__ import annotations

import json
import os
import secrets
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn
from cattrs.v import transform_error

from domain.core.settings import (
    CONFIG_PATH_VARIABLE,
    ENV_PREFIX,
    LAUNCHER_VARIABLES,
    MIN_PRODUCTION_SECRET_BYTES,
    SAMPLE_JWT_SECRET,
    MailSettings,
    OidcSettings,
    Settings,
    SettingsError,
)

# Secrets may come from the environment or from a *_file key, never from the config file itself.
SECRET_KEYS = frozenset(
    {
        ("auth", "jwt_secret"),
        ("auth", "bootstrap_password"),
        ("s3", "secret_key"),
        ("mail", "password"),
        ("metrics", "bearer_secret"),
        ("oidc", "client_secret"),
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
    if origin is dict:  # a JSON object, e.g. LABHUB_OIDC_GROUP_ROLES='{"lab-heads": "DH"}'
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {raw!r}")
        return value
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
    _check_oidc(settings.oidc)
    return settings


def _check_oidc(oidc: OidcSettings) -> None:
    if not oidc.enabled:
        return
    if not oidc.issuer:
        raise SettingsError("oidc.issuer: required when oidc.enabled is true (the provider's issuer URL)")
    if not oidc.client_id:
        raise SettingsError("oidc.client_id: required when oidc.enabled is true")
    if "openid" not in oidc.scopes:
        raise SettingsError("oidc.scopes: must include openid")


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
