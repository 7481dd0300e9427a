"""labhub-client, the real CLI in a subprocess, against the real server process: login, push of a
CSV and a workbook followed to the end, a push interrupted and resumed by running the same command
again, and watch: files written slowly into a folder, the watcher killed and restarted, the server
stopped and started again — every file becomes exactly one ingestion."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pyarrow.parquet as pq
import pytest

from ops.children import free_port
from tests.system.conftest import ROOT, start, wait_ready

pytestmark = pytest.mark.system

PART = 5 * 1024 * 1024
SERVER_ENV = {"LABHUB_UPLOADS_PART_SIZE_BYTES": str(PART)}


class Lab:
    """A running server with a project and a personal access token in a file, and the client's
    config directory."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.data = tmp_path / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.config = tmp_path / "client-config"

    def start(self) -> None:
        self.process = start(self.data, self.port, **SERVER_ENV)
        wait_ready(self.port, self.process)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=90)

    def sign_up(self) -> None:
        http = httpx.Client(base_url=self.url, timeout=30)
        account = {"email": "rig@lab.example", "password": "instrument pc 1"}
        assert http.post("/api/auth/register", json={**account, "name": "Rig PC"}).status_code == 201
        session = http.post("/api/auth/login", json=account).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {session}"
        project = http.post("/api/projects", json={"name": "Wind tunnel", "description": "rig 2"})
        assert project.status_code == 201, project.text
        self.project_id = project.json()["id"]
        token = http.post("/api/tokens", json={"name": "rig pc", "scopes": ["read", "write"]})
        assert token.status_code == 201, token.text
        self.token_file = self.tmp / "token.txt"
        self.token_file.write_text(token.json()["token"] + "\n")
        http.headers["Authorization"] = f"Bearer {token.json()['token']}"
        self.http = http

    def env(self) -> dict[str, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("LABHUB_")}
        return {**clean, "PYTHONPATH": str(ROOT / "client"), "LABHUB_CLIENT_CONFIG_DIR": str(self.config)}

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "labhub_client", *args]

    def run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), check=False, env=self.env(), capture_output=True, text=True, timeout=timeout
        )

    def spawn(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(self.command(*args), env=self.env(), stdout=out, stderr=subprocess.STDOUT)

    def ingestions(self) -> list[dict[str, Any]]:
        return self.http.get(f"/api/projects/{self.project_id}/ingestions", params={"limit": 100}).json()[
            "items"
        ]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    lab = Lab(tmp_path)
    lab.start()
    try:
        lab.sign_up()
        yield lab
    finally:
        lab.stop()


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 180) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s} s")


def csv_bytes(rows: int, seed: int = 0) -> bytes:
    lines = ["time,speed [m/s],probe"] + [
        f"{i * 0.01:.2f},{(i * 7 + seed) % 97 / 10},p{i % 3}" for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def workbook() -> bytes:
    book = openpyxl.Workbook()
    first = book.active
    first.title = "Run 1"
    first.append(["alpha [deg]", "CL"])
    for i in range(20):
        first.append([i, i / 10])
    second = book.create_sheet("Run 2")
    second.append(["alpha [deg]", "CD"])
    for i in range(30):
        second.append([i, i / 100])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_login_push_follow_list_and_download(lab: Lab) -> None:
    login = lab.run("login", "--url", lab.url, "--token-file", str(lab.token_file))
    assert login.returncode == 0, login.stderr
    saved = lab.config / "client.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert json.loads(saved.read_text())["token"] == lab.token_file.read_text().strip()

    (lab.tmp / "wind.csv").write_bytes(csv_bytes(500))
    (lab.tmp / "polar.xlsx").write_bytes(workbook())
    pushed = lab.run(
        "push", str(lab.tmp / "wind.csv"), str(lab.tmp / "polar.xlsx"), "--project", "Wind tunnel",
        "--dataset-type", "wind", "--tag", "run 7", "--manifest", '[{}, {"sheets": ["Run 1", "Run 2"]}]', "--json",
    )  # fmt: skip
    assert pushed.returncode == 0, pushed.stderr
    outcome = json.loads(pushed.stdout)
    assert outcome["ok"] is True
    assert outcome["project_id"] == lab.project_id
    jobs = [job for entry in outcome["files"] for job in entry["jobs"]]
    assert [(j["file"], j["sheet"], j["status"]) for j in jobs] == [
        ("wind.csv", None, "succeeded"), ("polar.xlsx", "Run 1", "succeeded"), ("polar.xlsx", "Run 2", "succeeded")]  # fmt: skip
    assert all(len(j["dataset_ids"]) == 1 for j in jobs)

    listed = lab.run("datasets", "--project", lab.project_id, "--json")
    assert listed.returncode == 0, listed.stderr
    datasets = {d["name"]: d for d in json.loads(listed.stdout)}
    assert set(datasets) == {"wind.csv", "polar.xlsx — Run 1", "polar.xlsx — Run 2"}
    assert datasets["wind.csv"]["row_count"] == 500
    assert datasets["wind.csv"]["tag"] == "run 7"

    target = lab.tmp / "wind-back.csv"
    got = lab.run("download", datasets["wind.csv"]["id"], "--format", "csv", "-o", str(target))
    assert got.returncode == 0, got.stderr
    assert target.read_text().splitlines()[0].startswith("time,speed [m/s],probe")
    assert len(target.read_text().splitlines()) == 501

    # questions: the sql command, and the Python client's tables and frames (only the columns asked for)
    grouped = "SELECT probe, count(*) AS n FROM wind_tunnel.wind GROUP BY probe ORDER BY probe"
    asked = lab.run("sql", grouped, "--format", "csv")
    assert asked.returncode == 0, asked.stderr
    assert list(csv.reader(io.StringIO(asked.stdout))) == [["probe", "n"], ["p0", "167"], ["p1", "167"], ["p2", "166"]]
    shown = lab.run("sql", grouped)
    assert shown.returncode == 0, shown.stderr
    assert "p2" in shown.stdout
    assert "3 rows" in shown.stderr
    parquet = lab.tmp / "answer.parquet"
    saved_answer = lab.run("sql", "SELECT * FROM wind_tunnel.wind", "-o", str(parquet))
    assert saved_answer.returncode == 0, saved_answer.stderr
    assert pq.read_table(parquet).num_rows == 500
    wrong = lab.run("sql", "SELECT nope FROM wind_tunnel.wind")
    assert wrong.returncode == 1
    assert "nope" in wrong.stderr
    sys.path.insert(0, str(ROOT / "client"))
    from labhub_client import Client

    with Client(lab.url, lab.token_file.read_text().strip()) as hub:
        table = hub.sql('SELECT probe, max("speed [m/s]") AS top FROM wind GROUP BY probe ORDER BY probe',
                        project_id=lab.project_id)  # fmt: skip
        assert table.column_names == ["probe", "top"]
        assert table.num_rows == 3
        frame = hub.dataset(datasets["wind.csv"]["id"]).to_pandas(columns=["time", "speed [m/s]"])
        assert list(frame.columns) == ["time", "speed [m/s]"]
        assert len(frame) == 500
        assert frame["speed [m/s]"].max() == pytest.approx(9.6)
        drawn = hub.dataset(datasets["wind.csv"]["id"]).series(["speed [m/s]"], x="time", points=100)
        assert drawn.column_names == ["series", "x", "y"]
        assert max(drawn.column("y").to_pylist()) == pytest.approx(9.6)

    mine = lab.run("jobs", "--json")
    assert {j["id"] for j in jobs} <= {j["id"] for j in json.loads(mine.stdout)}

    # a file LabHub cannot read fails its job: the exit code says so, and --no-wait does not wait
    (lab.tmp / "broken.xlsx").write_bytes(b"this is not a workbook")
    failed = lab.run("push", str(lab.tmp / "broken.xlsx"), "--project", lab.project_id)
    assert failed.returncode == 1, failed.stderr
    assert "failed" in failed.stderr
    quick = lab.run("push", str(lab.tmp / "broken.xlsx"), "--project", lab.project_id, "--no-wait", "--json")
    assert quick.returncode == 0, quick.stderr
    assert json.loads(quick.stdout)["files"][0]["jobs"][0]["status"] in {"queued", "running", "failed"}
    # usage mistakes are told plainly
    nowhere = lab.run("push", str(lab.tmp / "wind.csv"), "--project", "No such project")
    assert nowhere.returncode == 1
    assert "no project" in nowhere.stderr.lower()

    # the next run of the same instrument: a new version of the dataset, which keeps its name
    (lab.tmp / "wind-day2.csv").write_bytes(csv_bytes(300))
    again = lab.run("push", str(lab.tmp / "wind-day2.csv"), "--project", lab.project_id,
                    "--version-of", datasets["wind.csv"]["id"], "--json")  # fmt: skip
    assert again.returncode == 0, again.stderr
    [job] = json.loads(again.stdout)["files"][0]["jobs"]
    assert job["dataset_ids"] == [datasets["wind.csv"]["id"]]
    now = {d["name"]: d for d in json.loads(lab.run("datasets", "--project", lab.project_id, "--json").stdout)}
    assert (now["wind.csv"]["row_count"], now["wind.csv"]["version"]) == (300, 2)
    assert set(now) == set(datasets)


def test_an_interrupted_push_resumes_when_the_same_command_runs_again(lab: Lab) -> None:
    lab.run("login", "--url", lab.url, "--token-file", str(lab.token_file))
    data = os.urandom(96 * 1024 * 1024)  # stored as is: no table in it
    path = lab.tmp / "scope-capture.bin"
    path.write_bytes(data)
    log = lab.tmp / "push.log"
    pending = lab.config / "pending-uploads.json"
    args = ("push", str(path), "--project", "Wind tunnel", "--json")
    first = lab.spawn(*args, log=log)

    def part_way() -> str | None:
        if not pending.exists():
            return None
        ids = list(json.loads(pending.read_text() or "{}").values())
        if not ids:
            return None
        state = lab.http.get(f"/api/uploads/{ids[0]}").json()
        return ids[0] if state.get("offset", 0) > 0 else None

    upload_id = wait_for(part_way, "the first push to send some bytes", 120)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    offset = lab.http.get(f"/api/uploads/{upload_id}").json()["offset"]
    assert 0 < offset < len(data), "the push finished before it could be interrupted"

    again = lab.run(*args)
    assert again.returncode == 0, again.stderr
    [entry] = json.loads(again.stdout)["files"]
    [ingestion] = lab.ingestions()
    assert ingestion["upload_id"] == upload_id  # the same upload went on; no second one was made
    assert ingestion["file"]["size"] == len(data)
    assert entry["jobs"][0]["id"] == ingestion["id"]
    assert json.loads(pending.read_text()) == {}


def test_watch_sends_every_file_exactly_once_through_restarts(lab: Lab) -> None:
    lab.run("login", "--url", lab.url, "--token-file", str(lab.token_file))
    folder = lab.tmp / "rig"
    folder.mkdir()
    state_path = folder / ".labhub-client-state.json"
    log = lab.tmp / "watch.log"
    args = ("watch", str(folder), "--project", "Wind tunnel", "--pattern", "*.csv", "--pattern", "*.bin",
            "--settle", "1.5", "--interval", "0.3", "--tag", "rig")  # fmt: skip
    expected: dict[str, int] = {}

    def state() -> dict[str, Any]:
        try:
            return json.loads(state_path.read_text())["files"]
        except (OSError, ValueError, KeyError):
            return {}

    def sent(*names: str) -> bool:
        files = state()
        return all(files.get(n, {}).get("status") == "sent" for n in names)

    def write_slowly(name: str, rows: int) -> None:
        data = csv_bytes(rows, seed=len(expected))
        with (folder / name).open("wb") as out:
            for start in range(0, len(data), len(data) // 4 + 1):
                out.write(data[start : start + len(data) // 4 + 1])
                out.flush()
                time.sleep(0.4)  # an instrument writing: pauses shorter than --settle
        expected[name] = rows

    watcher = lab.spawn(*args, log=log)
    try:
        write_slowly("run-01.csv", 2000)
        write_slowly("run-02.csv", 3000)
        (folder / "notes.txt").write_text("not a pattern the watcher sends")
        wait_for(lambda: sent("run-01.csv", "run-02.csv"), "the first files sent")

        # the watcher stops (as systemd would stop it) and misses files written meanwhile
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(timeout=60) == 0
        write_slowly("run-03.csv", 1000)
        watcher = lab.spawn(*args, log=log)
        wait_for(lambda: sent("run-03.csv"), "a file written while the watcher was stopped")

        # killed mid-upload of a large file: the next watcher resumes that upload
        (folder / "capture.bin").write_bytes(os.urandom(64 * 1024 * 1024))
        capture_upload = wait_for(
            lambda: state().get("capture.bin", {}).get("upload_id"), "the large upload to start"
        )
        watcher.send_signal(signal.SIGKILL)
        watcher.wait(timeout=30)
        watcher = lab.spawn(*args, log=log)
        wait_for(lambda: sent("capture.bin"), "the large file sent after the watcher was killed")

        # the server stops while files arrive; the watcher waits for it and goes on
        lab.stop()
        write_slowly("run-04.csv", 1500)
        lab.start()
        write_slowly("run-05.csv", 2500)
        wait_for(lambda: sent("run-04.csv", "run-05.csv"), "the files written around the server restart")
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=60)

    ingestions = lab.ingestions()
    names = sorted(i["file"]["name"] for i in ingestions)
    assert names == sorted([*expected, "capture.bin"]), log.read_text()[-3000:]
    assert all(i["upload_id"] for i in ingestions)
    assert next(i for i in ingestions if i["file"]["name"] == "capture.bin")["upload_id"] == capture_upload

    def all_done() -> list[dict[str, Any]] | None:
        items = lab.ingestions()
        return items if all(i["status"] in {"succeeded", "failed"} for i in items) else None

    for ingestion in wait_for(all_done, "every ingestion finished"):
        assert ingestion["status"] == "succeeded", ingestion
        if ingestion["file"]["name"] in expected:  # sent whole, never half-written
            [dataset_id] = ingestion["dataset_ids"]
            dataset = lab.http.get(f"/api/datasets/{dataset_id}").json()
            assert dataset["row_count"] == expected[ingestion["file"]["name"]]
            assert dataset["tag"] == "rig"
