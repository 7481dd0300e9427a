"""A real OpenID provider for the sign-in tests: panva's oidc-provider (tests/oidc/provider.mjs) on
Node.js from the system's packages, on a random loopback port.

Node.js: on PATH (./labhub test installs Debian's nodejs when it can). Its packages come from
tests/oidc/package-lock.json (`npm ci`, once). Without Node.js the tests that need it fail with one
line saying what to install; they never skip.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parent / "oidc"
_INSTALL = threading.Lock()


def node() -> str:
    found = shutil.which("node")
    if found is None:
        raise pytest.UsageError(
            "the sign-in tests run a real OpenID provider on Node.js: install Debian's 'nodejs' and 'npm' "
            "packages (./labhub test does when it runs as root)"
        )
    return found


def ensure_packages() -> None:
    """npm ci from the lock file, once (a stamp of the lock's content says it was done)."""
    stamp = HERE / "node_modules" / ".labhub-lock"
    lock = (HERE / "package-lock.json").read_text()
    # a thread lock and a file lock: the suite's workers (pytest-xdist) are processes
    with _INSTALL, (HERE / ".install-lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == lock:
            return
        npm = shutil.which("npm")
        if npm is None:
            raise pytest.UsageError(
                "the sign-in tests need npm (Debian's 'npm' package) to install oidc-provider"
            )
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE, check=True)
        stamp.write_text(lock)


class OpenIdProvider:
    """The provider process and its control API (see provider.mjs)."""

    def __init__(self) -> None:
        ensure_packages()
        self.process = subprocess.Popen(
            [node(), str(HERE / "provider.mjs")], cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the provider prints its issuer once it listens
        if not line:
            raise AssertionError(f"the OpenID provider did not start (exit {self.process.wait()})")
        self.issuer: str = json.loads(line)["issuer"]
        self.http = httpx.Client(base_url=self.issuer, timeout=30)

    def _control(self, what: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.http.post(f"/__test/{what}", json=body or {})
        response.raise_for_status()
        return response.json()

    def configure(self, *, clients: list[dict[str, Any]], accounts: dict[str, dict[str, Any]]) -> None:
        self._control("configure", {"clients": clients, "accounts": accounts})

    def rotate(self) -> str:
        """A new signing key replaces the old one; the new key's id."""
        return str(self._control("rotate")["kid"])

    def tamper(self, mode: str | None) -> None:
        """The next ID token: "foreign_key" (signed by a key never published) or "wrong_nonce"."""
        self._control("tamper", {"mode": mode})

    def key_ids(self) -> list[str]:
        return [key["kid"] for key in self.http.get("/jwks").json()["keys"]]

    def stop(self) -> None:
        self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="session")
def openid_provider() -> Iterator[OpenIdProvider]:
    provider = OpenIdProvider()
    try:
        yield provider
    finally:
        provider.stop()


def client_for(client_id: str, secret: str, base_url: str) -> dict[str, Any]:
    """A confidential client of the provider whose redirect is LabHub's callback at base_url."""
    return {
        "client_id": client_id,
        "client_secret": secret,
        "redirect_uris": [f"{base_url}/api/auth/oidc/callback"],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
