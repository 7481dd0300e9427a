"""Where the client finds its server and token: flags, then LABHUB_URL / LABHUB_TOKEN, then the
config file written by `labhub-client login` (mode 0600, in the user's config directory)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


class ConfigError(Exception):
    """No server or token known: the message says how to give one."""


def config_dir() -> Path:
    if override := os.environ.get("LABHUB_CLIENT_CONFIG_DIR"):
        return Path(override)
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "labhub"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "labhub"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, atomically (a crash leaves the old file or the new)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created with mode 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Config:
    url: str
    token: str

    @staticmethod
    def path() -> Path:
        return config_dir() / "client.json"

    @classmethod
    def load(cls, url: str | None = None, token: str | None = None) -> Config:
        saved: dict[str, str] = {}
        if cls.path().exists():
            try:
                saved = json.loads(cls.path().read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    f"{cls.path()} cannot be read ({exc}); run labhub-client login again"
                ) from None
        url = url or os.environ.get("LABHUB_URL") or saved.get("url")
        token = token or os.environ.get("LABHUB_TOKEN") or saved.get("token")
        if not url:
            raise ConfigError("no server: run labhub-client login --url URL, or set LABHUB_URL")
        if not token:
            raise ConfigError("no token: run labhub-client login, or set LABHUB_TOKEN")
        return cls(url.rstrip("/"), token.strip())

    def save(self) -> Path:
        write_private(self.path(), json.dumps({"url": self.url, "token": self.token}, indent=2) + "\n")
        return self.path()
