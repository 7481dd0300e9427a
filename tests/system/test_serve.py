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

from domain.stores.embedded import free_port
from tests.system.conftest import ROOT, all_gone, output, service_pids, start, wait_ready

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
