"""Settings: config.toml defaults, LABHUB_* overrides, one-line errors naming the key, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from domain.core.config import finalize_secrets, load_settings, with_changes
from domain.core.settings import SAMPLE_JWT_SECRET, SettingsError

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_loads_with_working_defaults():
    settings = load_settings(ROOT / "config.toml", environ={})
    assert settings.services.mode == "embedded"
    assert settings.http.port == 8080
    assert settings.http.host == "127.0.0.1"
    assert settings.services.data_dir == "var"
    assert settings.auth.access_ttl_s == 900


def test_every_key_in_the_shipped_config_has_a_comment():
    for line in (ROOT / "config.toml").read_text().splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            assert "#" in line, f"no comment on: {line}"


def test_environment_overrides_any_key_with_types():
    settings = load_settings(
        ROOT / "config.toml",
        environ={
            "LABHUB_HTTP_PORT": "9001",
            "LABHUB_SERVICES_DATA_DIR": "/srv/labhub",
            "LABHUB_AUTH_JWT_SECRET": "x" * 40,
            "LABHUB_AUTH_OPEN_REGISTRATION": "false",
            "LABHUB_HTTP_CORS_ORIGINS": "https://a.example, https://b.example",
            "LABHUB_AUTH_LOGIN_BACKOFF_BASE_S": "0.5",
        },
    )
    assert settings.http.port == 9001
    assert settings.services.data_dir == "/srv/labhub"
    assert settings.auth.jwt_secret == "x" * 40
    assert settings.auth.open_registration is False
    assert settings.http.cors_origins == ("https://a.example", "https://b.example")
    assert settings.auth.login_backoff_base_s == 0.5


def test_json_list_in_environment():
    settings = load_settings(
        ROOT / "config.toml", environ={"LABHUB_HTTP_CORS_ORIGINS": '["https://a.example"]'}
    )
    assert settings.http.cors_origins == ("https://a.example",)


def test_the_launchers_own_variables_are_not_settings():
    environ = {"LABHUB_CHROMIUM": "/usr/bin/chromium", "LABHUB_PYTHON": "python3.12"}
    assert load_settings(ROOT / "config.toml", environ=environ) == load_settings(
        ROOT / "config.toml", environ={}
    )


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"LABHUB_HTTP_PORT": "eighty"}, "http.port"),
        ({"LABHUB_HTTP_PORT": "70000"}, "http.port"),
        ({"LABHUB_SERVICES_MODE": "cloud"}, "services.mode"),
        ({"LABHUB_AUTH_OPEN_REGISTRATION": "maybe"}, "auth.open_registration"),
        ({"LABHUB_HTTP_PORTS": "1"}, "LABHUB_HTTP_PORTS"),
        ({"LABHUB_NOPE_KEY": "1"}, "LABHUB_NOPE_KEY"),
        ({"LABHUB_AUTH_ACCESS_TTL_S": "-5"}, "auth.access_ttl_s"),
    ],
)
def test_bad_environment_value_names_the_key(environ, names):
    with pytest.raises(SettingsError) as caught:
        load_settings(ROOT / "config.toml", environ=environ)
    message = str(caught.value)
    assert names in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[http]\nportz = 1\n", "http.portz"),
        ("[htp]\nport = 1\n", "htp"),
        ("[http]\nport = true\n", "http.port"),
        ("[auth]\njwt_secret = 'abc'\n", "auth.jwt_secret"),
        ("[http\nport = 1\n", "config file"),
    ],
)
def test_bad_config_file_names_the_key(tmp_path, text, names):
    with pytest.raises(SettingsError) as caught:
        load_settings(write(tmp_path, text), environ={})
    assert names in str(caught.value)


def test_secret_from_file(tmp_path):
    secret_file = tmp_path / "jwt"
    secret_file.write_text("s" * 48 + "\n")
    settings = load_settings(write(tmp_path, f"[auth]\njwt_secret_file = '{secret_file}'\n"), environ={})
    assert settings.auth.jwt_secret == "s" * 48


def test_settings_are_frozen():
    settings = load_settings(ROOT / "config.toml", environ={})
    with pytest.raises(AttributeError):
        settings.http.port = 1  # type: ignore[misc]


def test_dev_generates_a_jwt_secret_once_and_keeps_it(tmp_path):
    base = load_settings(ROOT / "config.toml", environ={"LABHUB_SERVICES_DATA_DIR": str(tmp_path)})
    first = finalize_secrets(base)
    second = finalize_secrets(base)
    assert len(first.auth.jwt_secret) >= 32
    assert first.auth.jwt_secret == second.auth.jwt_secret
    assert (tmp_path / "secrets" / "jwt_secret").stat().st_mode & 0o077 == 0
    assert len(first.s3.secret_key) >= 8
    assert len(first.s3.access_key) >= 8


@pytest.mark.parametrize("secret", ["", "short-secret", SAMPLE_JWT_SECRET])
def test_production_refuses_weak_secrets(tmp_path, secret):
    base = load_settings(ROOT / "config.toml", environ={"LABHUB_SERVICES_DATA_DIR": str(tmp_path)})
    production = with_changes(
        base, app={"env": "production"}, auth={"jwt_secret": secret}, http={"public_url": "https://lab.example"}
    )
    with pytest.raises(SettingsError, match=r"auth\.jwt_secret"):
        finalize_secrets(production)


def test_production_accepts_a_long_secret(tmp_path):
    base = load_settings(ROOT / "config.toml", environ={"LABHUB_SERVICES_DATA_DIR": str(tmp_path)})
    production = with_changes(
        base, app={"env": "production"}, auth={"jwt_secret": "k" * 32}, http={"public_url": "https://lab.example"}
    )
    assert finalize_secrets(production).auth.jwt_secret == "k" * 32


def test_production_needs_the_public_url(tmp_path):
    base = load_settings(ROOT / "config.toml", environ={"LABHUB_SERVICES_DATA_DIR": str(tmp_path)})
    production = with_changes(base, app={"env": "production"}, auth={"jwt_secret": "k" * 32})
    with pytest.raises(SettingsError, match=r"http\.public_url: required in production"):
        finalize_secrets(production)


def test_the_scraper_secret_is_a_secret_and_long_in_production(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[metrics]\nbearer_secret = "in the file"\n')
    with pytest.raises(SettingsError, match=r"metrics\.bearer_secret: secrets are not read from"):
        load_settings(config, environ={})
    secret_file = tmp_path / "scraper"
    secret_file.write_text("s" * 40 + "\n")
    settings = load_settings(
        ROOT / "config.toml", environ={"LABHUB_METRICS_BEARER_SECRET_FILE": str(secret_file)}
    )
    assert settings.metrics.enabled
    assert settings.metrics.bearer_secret == "s" * 40
    assert "s" * 40 not in repr(settings)
    production = with_changes(
        settings, app={"env": "production"}, auth={"jwt_secret": "k" * 32}, metrics={"bearer_secret": "short"},
        http={"public_url": "https://lab.example"},
    )  # fmt: skip
    with pytest.raises(SettingsError, match=r"metrics\.bearer_secret: must be at least 32 bytes"):
        finalize_secrets(production)


def test_mail_is_off_by_default_and_its_password_is_a_secret(tmp_path):
    settings = load_settings(ROOT / "config.toml", environ={})
    assert settings.mail.enabled is False
    password_file = tmp_path / "smtp"
    password_file.write_text("relay secret\n")
    environ = {
        "LABHUB_MAIL_ENABLED": "true", "LABHUB_MAIL_HOST": "smtp.lab.example", "LABHUB_MAIL_SECURITY": "tls",
        "LABHUB_MAIL_FROM_ADDRESS": "labhub@lab.example", "LABHUB_MAIL_USERNAME": "labhub",
        "LABHUB_MAIL_PASSWORD_FILE": str(password_file),
    }  # fmt: skip
    mail = load_settings(ROOT / "config.toml", environ=environ).mail
    assert mail.password == "relay secret"
    assert mail.smtp_port == 465  # the standard port of implicit TLS
    assert "relay secret" not in repr(mail)
    with pytest.raises(SettingsError, match=r"mail\.password: secrets are not read"):
        load_settings(write(tmp_path, "[mail]\npassword = 'x'\n"), environ={})


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"LABHUB_MAIL_ENABLED": "true"}, "mail.from_address"),
        ({"LABHUB_MAIL_ENABLED": "true", "LABHUB_MAIL_FROM_ADDRESS": "labhub@lab.example", "LABHUB_MAIL_USERNAME": "u"},
         "mail.password"),
        ({"LABHUB_MAIL_FROM_ADDRESS": "not an address"}, "from_address"),
        ({"LABHUB_MAIL_SECURITY": "ssl"}, "security"),
    ],
)  # fmt: skip
def test_mail_settings_that_cannot_work_stop_the_start(environ, names):
    with pytest.raises(SettingsError, match=names):
        load_settings(ROOT / "config.toml", environ=environ)
