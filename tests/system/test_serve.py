"""The real server process: ./labhub serve, readiness, one owner per data dir, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request

import psutil
import pytest

from ops.children import free_port
from tests.system.conftest import ROOT, all_gone, output, run_labhub, service_pids, start, wait_ready

pytestmark = pytest.mark.system


def test_serve_is_ready_and_sigkill_leaves_no_service_behind(server, tmp_path):
    process, _port, ready = server
    assert ready == {"status": "ok", "checks": {"mongo": "ok", "redis": "ok", "s3": "ok", "pool": "ok"}}
    pids = service_pids(tmp_path)
    assert set(pids) == {"mongo", "redis", "s3"}
    descendants = [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
    assert len(descendants) > len(pids), "the worker pool (forkserver and workers) should be running"
    for pid in pids.values():
        assert psutil.Process(pid).is_running()
    # a second server on the same data dir refuses at once, naming the problem
    second_port = free_port()
    second = start(tmp_path, second_port)
    assert second.wait(timeout=60) != 0
    err = output(tmp_path, second_port)
    assert "in use by another LabHub process" in err
    assert len(err.strip().splitlines()) == 1
    for pid in pids.values():
        assert psutil.Process(pid).is_running()
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert all_gone(pids.values()), "embedded services outlived a SIGKILLed server"
    assert all_gone(descendants), "a worker or the forkserver outlived a SIGKILLed server"


def test_sigterm_stops_services_and_data_survives_a_restart(server, tmp_path):
    process, port, _ = server
    pids = service_pids(tmp_path)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/auth/register",
        data=json.dumps({"email": "keep@lab.example", "password": "kept password", "name": "Kept"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    assert all_gone(pids.values())
    assert not (tmp_path / "services.json").exists()
    # restart on the same data dir: the account is still there
    port = free_port()
    again = start(tmp_path, port)
    try:
        wait_ready(port, again)
        login = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/auth/login",
            data=json.dumps({"email": "keep@lab.example", "password": "kept password"}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(login, timeout=10) as response:
            assert "access_token" in json.load(response)
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=60)


def test_create_user_against_the_running_server(server, tmp_path):
    _, port, _ = server
    password_file = tmp_path / "pw"
    password_file.write_text("head password 42\n")
    env = {**os.environ, "LABHUB_SERVICES_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [str(ROOT / "labhub"), "create-user", "--email", "Head@Lab.Example", "--role", "DH",
         "--password-file", str(password_file)],
        cwd=ROOT, env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert b"created DH head@lab.example" in result.stdout
    login = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/auth/login",
        data=json.dumps({"email": "head@lab.example", "password": "head password 42"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(login, timeout=10) as response:
        assert response.status == 200


def test_bad_configuration_stops_the_start_with_one_line(tmp_path):
    env = {**os.environ, "LABHUB_SERVICES_DATA_DIR": str(tmp_path), "LABHUB_HTTP_PORT": "not-a-port"}
    result = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "serve"], cwd=ROOT, env=env, capture_output=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "http.port" in lines[0]


def test_production_refuses_a_short_secret(tmp_path):
    env = {
        **os.environ,
        "LABHUB_SERVICES_DATA_DIR": str(tmp_path),
        "LABHUB_APP_ENV": "production",
        "LABHUB_AUTH_JWT_SECRET": "too-short",
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "server.py"), "serve"], cwd=ROOT, env=env, capture_output=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert b"auth.jwt_secret" in result.stderr


def _labhub(data_dir, *args, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return run_labhub(data_dir, *args, stdin=stdin, LABHUB_HTTP_PUBLIC_URL="https://hub.lab.example")


def _post(port: int, path: str, body: dict) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST",
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_locked_out_head_resets_from_the_command_line_with_the_server_stopped_or_running(tmp_path):
    data_dir = tmp_path / "data"
    made = _labhub(data_dir, "create-user", "--email", "head@lab.example", "--role", "DH", "--password-file", "-",
                   stdin=b"forgotten password\n")  # fmt: skip
    assert made.returncode == 0, made.stderr.decode()
    printed = _labhub(data_dir, "reset-password", "--email", "Head@Lab.Example")  # no server: its own MongoDB
    assert printed.returncode == 0, printed.stderr.decode()
    url = printed.stdout.decode().splitlines()[-1]
    assert url.startswith("https://hub.lab.example/reset#token=lhr_")
    token = url.split("#token=", 1)[1]
    missing = _labhub(data_dir, "reset-password", "--email", "nobody@lab.example")
    assert missing.returncode == 1
    assert b"no account has the email" in missing.stderr

    port = free_port()
    process = start(data_dir, port)
    try:
        wait_ready(port, process)
        assert (
            _post(
                port, "/api/auth/password-reset/confirm", {"token": token, "password": "remembered at last"}
            )
            == 204
        )
        assert (
            _post(port, "/api/auth/login", {"email": "head@lab.example", "password": "remembered at last"})
            == 200
        )
        # with the server running: a password straight from a file (stdin here)
        set_now = _labhub(data_dir, "reset-password", "--email", "head@lab.example", "--password-file", "-",
                          stdin=b"set from the shell\n")  # fmt: skip
        assert set_now.returncode == 0, set_now.stderr.decode()
        assert (
            _post(port, "/api/auth/login", {"email": "head@lab.example", "password": "set from the shell"})
            == 200
        )
        assert (
            _post(port, "/api/auth/login", {"email": "head@lab.example", "password": "remembered at last"})
            == 401
        )
        assert (
            _post(port, "/api/auth/password-reset/confirm", {"token": token, "password": "once more, please"})
            == 400
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_embedded_services_and_the_data_dir_are_private(server, tmp_path):
    """Another local account can neither read the data dir nor use the services on 127.0.0.1: they
    ask for secrets that are in no command line (`ps` shows those to everyone)."""
    import asyncio
    import stat
    from urllib.parse import urlsplit

    import redis
    from aiobotocore.session import get_session
    from botocore.exceptions import ClientError
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure

    process, _port, _ = server
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    for path in [tmp_path / "secrets", *(tmp_path / "mongo").rglob("*"), *(tmp_path / "secrets").iterdir()]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
    secrets = [p.read_text().strip() for p in (tmp_path / "secrets").iterdir()]
    assert len(secrets) >= 4  # jwt, s3, mongo and redis
    tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    for proc in tree:
        command_line = " ".join(proc.cmdline())
        assert not any(secret in command_line for secret in secrets), command_line

    endpoints = json.loads((tmp_path / "services.json").read_text())
    mongo = urlsplit(endpoints["mongo_uri"])
    with MongoClient(
        f"mongodb://127.0.0.1:{mongo.port}/?directConnection=true", serverSelectionTimeoutMS=5000
    ) as anyone:
        with pytest.raises(OperationFailure) as refused:
            anyone["labhub"]["users"].find_one()
        assert refused.value.code == 13  # Unauthorized
    redis_port = urlsplit(endpoints["redis_url"]).port
    with pytest.raises(redis.exceptions.AuthenticationError), redis.Redis(port=redis_port) as anyone_redis:
        anyone_redis.get("labhub:anything")

    async def list_buckets_with(secret: str) -> None:
        session = get_session()
        async with session.create_client(
            "s3", endpoint_url=endpoints["s3_endpoint_url"], aws_access_key_id="labhub-local",
            aws_secret_access_key=secret, region_name="us-east-1",
        ) as s3:  # fmt: skip
            await s3.list_buckets()

    with pytest.raises(ClientError):
        asyncio.run(list_buckets_with("a guessed secret"))
