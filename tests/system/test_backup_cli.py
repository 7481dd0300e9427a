"""./labhub backup, backup --verify and restore on real server processes with embedded services."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ops.children import free_port
from tests.system.conftest import run_labhub, start, wait_ready

pytestmark = pytest.mark.system

CSV = b"t,v\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(500))


def labhub(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = run_labhub(data_dir, *args)
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def populate(base: str) -> tuple[dict[str, str], dict[str, bytes]]:
    """An account, a project, a document and a dataset, through HTTP; returns the login and reads."""
    login = {"email": "head@lab.example", "password": "a long lab password"}
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.post("/api/auth/register", json={**login, "name": "Lab"}).status_code == 201
        token = http.post("/api/auth/login", json=login).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        project = http.post("/api/projects", json={"name": "Tunnel"}, headers=auth).json()["id"]
        files = {"file": ("notes.txt", b"lab notes", "text/plain")}
        document = http.post(f"/api/projects/{project}/documents", files=files, headers=auth).json()["id"]
        files = {"files": ("run.csv", CSV, "text/csv")}
        job = http.post(f"/api/projects/{project}/ingestions", files=files, headers=auth).json()["jobs"][0][
            "id"
        ]
        deadline = time.monotonic() + 120
        while (state := http.get(f"/api/jobs/{job}", headers=auth).json())["status"] in {"queued", "running"}:
            assert time.monotonic() < deadline, state
            time.sleep(0.2)
        assert state["status"] == "succeeded", state
        dataset = state["result"]["dataset_id"]
        reads = {
            url: http.get(url, headers=auth).content
            for url in (f"/api/documents/{document}/content", f"/api/datasets/{dataset}/rows",
                        f"/api/datasets/{dataset}/raw", f"/api/projects/{project}")
        }  # fmt: skip
    return login, reads


def test_backup_of_a_running_server_restores_into_a_new_data_dir(server, tmp_path):
    process, port, _ = server
    login, reads = populate(f"http://127.0.0.1:{port}")
    archive = tmp_path.parent / f"{tmp_path.name}-backup.tar"
    made = labhub(tmp_path, "backup", str(archive))
    assert made.returncode == 0, made.stderr
    assert "backup written to" in made.stdout
    checked = labhub(tmp_path, "backup", "--verify", str(archive))
    assert checked.returncode == 0, checked.stderr
    assert "is intact" in checked.stdout
    # a restore never runs under a server (into services that hold data: tests/api/test_backup.py)
    refused = labhub(tmp_path, "restore", str(archive))
    assert refused.returncode == 1
    assert "running" in refused.stderr
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    # into a new data dir: the server starts on it with the same data
    target = tmp_path.parent / f"{tmp_path.name}-restored"
    restored = labhub(target, "restore", str(archive))
    assert restored.returncode == 0, restored.stderr
    port = free_port()
    again = start(target, port)
    try:
        wait_ready(port, again)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            token = http.post("/api/auth/login", json=login).json()["access_token"]
            for url, body in reads.items():
                response = http.get(url, headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 200, url
                assert response.content == body, url
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(timeout=60)


def test_verify_reports_damage_with_exit_status_1(tmp_path):
    archive = tmp_path / "not-a-backup"
    archive.mkdir()
    (archive / "manifest.json").write_text(
        '{"format": 1, "files": {"mongo/x.bson": {"size": 1, "sha256": "00"}}}'
    )
    checked = labhub(tmp_path / "data", "backup", "--verify", str(archive))
    assert checked.returncode == 1
    assert "mongo/x.bson: missing from the archive" in checked.stderr
