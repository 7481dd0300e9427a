"""A resumable upload survives `kill -9` of the real server: tuspy stops part-way, the server is
killed and started again on the same data, and the same upload goes on from the offset HEAD reports
to the right bytes and sha256 (the hash state rebuilt from the stored parts)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import urllib.request

import psutil
import pytest
from tusclient import client as tus

from ops.children import free_port
from tests.system.conftest import all_gone, start, wait_ready

pytestmark = pytest.mark.system

PART = 5 * 1024 * 1024


def _post(url: str, body: dict, headers: dict | None = None) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _get(url: str, headers: dict) -> dict:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
        return json.load(response)


def test_an_upload_resumes_after_the_server_is_killed(tmp_path):
    data = os.urandom(3 * PART + 12345)
    path = tmp_path / "flight-07.tdms"
    path.write_bytes(data)
    env = {"LABHUB_UPLOADS_PART_SIZE_BYTES": str(PART)}
    port = free_port()
    server = start(tmp_path / "data", port, **env)
    again = None
    try:
        wait_ready(port, server)
        base = f"http://127.0.0.1:{port}"
        _post(
            f"{base}/api/auth/register",
            {"email": "pc@lab.example", "password": "instrument pc 1", "name": "PC"},
        )
        token = _post(f"{base}/api/auth/login", {"email": "pc@lab.example", "password": "instrument pc 1"})[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        uploader = tus.TusClient(f"{base}/api/uploads", headers=headers).uploader(str(path), chunk_size=PART)
        uploader.upload(stop_at=2 * PART)
        url = uploader.url
        assert url.startswith(f"{base}/api/uploads/")
        children = [p.pid for p in psutil.Process(server.pid).children(recursive=True)]
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
        assert all_gone(children)

        again = start(tmp_path / "data", port, **env)
        wait_ready(port, again)
        token = _post(f"{base}/api/auth/login", {"email": "pc@lab.example", "password": "instrument pc 1"})[
            "access_token"
        ]
        headers = {"Authorization": f"Bearer {token}"}
        assert _get(url, headers)["offset"] == 2 * PART  # what was acknowledged before the kill is there
        resumed = tus.TusClient(f"{base}/api/uploads", headers=headers).uploader(
            str(path), url=url, chunk_size=PART
        )
        resumed.upload()
        upload = _get(url, headers)
        assert upload["status"] == "complete"
        assert upload["sha256"] == hashlib.sha256(data).hexdigest()
    finally:
        for process in (server, again):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=60)
