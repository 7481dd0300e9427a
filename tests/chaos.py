"""Chaos: kill -9 whatever LabHub runs, at random, under concurrent writers, then check that
nothing acknowledged was lost, duplicated, corrupted or stuck, that no request answered 500, and
that the server is ready again.

Targets, each chosen by a seeded random schedule that reaches every one of them: the server itself
(started again at once, as systemd would), an idle pool worker, a busy pool worker, the forkserver,
MongoDB, Redis and S3 (restarted by the server's supervisor and pool watchdog). Writers, through
the public API with a personal access token: records, documents (random bytes) and ingestions of
CSV files of known rows (big enough to keep workers busy). A write counts once its answer (2xx)
came back; a write whose answer was lost is not tried again (its fate is unknown, and trying again
would make a duplicate of the client's own making).

    ./labhub chaos --minutes 10 --seed 7     # the long form
    pytest tests/system/test_chaos.py        # the short form that ./labhub test runs
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ops.children import free_port  # noqa: E402
from tests.system.conftest import output, start, wait_ready  # noqa: E402

MISSED_TARGET_GRACE = 4.0
TARGETS = ("server", "idle_worker", "busy_worker", "forkserver", "mongo", "redis", "s3")
HEAD = {"email": "head@chaos.example", "password": "chaos head password"}
CHAOS_ENV = {
    "LABHUB_AUTH_ARGON2_TIME_COST": "1",
    "LABHUB_AUTH_ARGON2_MEMORY_KIB": "1024",
    "LABHUB_AUTH_ARGON2_PARALLELISM": "1",
    "LABHUB_APP_LOG_LEVEL": "WARNING",
    # a killed server's jobs come back to the queue within seconds, not half a minute
    "LABHUB_JOBS_LEASE_S": "6",
    "LABHUB_JOBS_HEARTBEAT_S": "1",
    "LABHUB_POOL_MIN_WORKERS": "2",
    "LABHUB_POOL_MAX_WORKERS": "2",
    # the writers make a lot, quickly: quotas are not what is tested here
    "LABHUB_QUOTAS_STORAGE_PER_USER_BYTES": "0",
    "LABHUB_QUOTAS_STORAGE_PER_PROJECT_BYTES": "0",
    "LABHUB_QUOTAS_QUEUED_JOBS_PER_USER": "0",
    "LABHUB_QUOTAS_STREAMS_PER_USER": "0",
}
SETTLE_S = 240.0  # after the last kill: every acknowledged job reaches its end within this
REQUEST_TIMEOUT_S = 60.0


@attrs.define
class Ledger:
    """What the writers were told was stored, and every answer they got."""

    records: dict[str, dict[str, Any]] = attrs.field(factory=dict)  # id -> the fields sent
    documents: dict[str, str] = attrs.field(factory=dict)  # id -> sha256 of the bytes sent
    ingestions: dict[str, int] = attrs.field(factory=dict)  # job id -> rows of the file sent
    statuses: collections.Counter[int] = attrs.field(factory=collections.Counter)
    lost_answers: int = 0  # requests whose answer never came (the server was killed under them)
    server_errors: list[str] = attrs.field(factory=list)


@attrs.define
class Report:
    seed: int
    minutes: float
    kills: collections.Counter[str]
    ledger: Ledger
    problems: list[str]
    errors_logged: list[str] = attrs.field(
        factory=list
    )  # the server's ERROR lines, when something went wrong

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        lines = [
            f"chaos: seed {self.seed}, {self.minutes:g} min, kills {dict(sorted(self.kills.items()))}",
            f"  acknowledged: {len(self.ledger.records)} records, {len(self.ledger.documents)} documents, "
            f"{len(self.ledger.ingestions)} ingestion jobs; answers {dict(sorted(self.ledger.statuses.items()))}, "
            f"{self.ledger.lost_answers} lost with a killed server",
        ]
        lines += [f"  PROBLEM: {p}" for p in self.problems[:50]] or [
            "  nothing lost, duplicated, corrupted or stuck; no 500"
        ]
        lines += [f"  server: {line[:1500]}" for line in self.errors_logged[-80:]]
        return "\n".join(lines)


class Server:
    """./labhub serve on its own data dir and port, started again whenever it is killed."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir, self.port = data_dir, port
        self.process: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.process = start(self.data_dir, self.port, **CHAOS_ENV, LABHUB_AUTH_BOOTSTRAP_EMAIL=HEAD["email"],
                             LABHUB_AUTH_BOOTSTRAP_PASSWORD=HEAD["password"])  # fmt: skip
        wait_ready(self.port, self.process, timeout_s=180)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def tree(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def services(self) -> dict[str, int]:
        try:
            return json.loads((self.data_dir / "services.json").read_text())["pids"]
        except (OSError, ValueError, KeyError):
            return {}

    def forkserver(self) -> psutil.Process | None:
        for process in self.tree():
            try:
                if "forkserver" in " ".join(process.cmdline()) and process.ppid() == self.process.pid:  # type: ignore[union-attr]
                    return process
            except psutil.Error:
                continue
        return None

    def workers(self) -> list[psutil.Process]:
        forkserver = self.forkserver()
        try:
            return forkserver.children() if forkserver else []
        except psutil.Error:
            return []


def _busy_and_idle(workers: list[psutil.Process]) -> tuple[list[psutil.Process], list[psutil.Process]]:
    for worker in workers:
        try:
            worker.cpu_percent(None)
        except psutil.Error:
            continue
    time.sleep(0.2)
    busy, idle = [], []
    for worker in workers:
        try:
            (busy if worker.cpu_percent(None) > 20 else idle).append(worker)
        except psutil.Error:
            continue
    return busy, idle


async def kill(server: Server, target: str) -> bool:
    """kill -9 one target; False when there was none to kill (no busy worker just then, say)."""
    if target == "server":
        assert server.process is not None
        server.process.kill()
        server.process.wait()
        await asyncio.to_thread(server.start)  # as systemd would
        return True
    if target in ("mongo", "redis", "s3"):
        pid = server.services().get(target)
    elif target == "forkserver":
        found = server.forkserver()
        pid = found.pid if found else None
    else:
        pid = None
        deadline = time.monotonic() + 10  # a worker in the middle of a job, or one between jobs
        while pid is None and time.monotonic() < deadline:
            busy, idle = await asyncio.to_thread(_busy_and_idle, server.workers())
            chosen = busy if target == "busy_worker" else idle
            pid = chosen[0].pid if chosen else None
    if pid is None:
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return True


def csv_file(rng: random.Random) -> tuple[bytes, int]:
    rows = rng.randint(20_000, 120_000)
    lines = ["time,speed,pressure"] + [
        f"{i * 0.01:.2f},{rng.random() * 30:.4f},{1000 + rng.random():.5f}" for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode(), rows


class Writers:
    def __init__(self, base: str, token: str, project_id: str, ledger: Ledger, rng: random.Random) -> None:
        self._base, self._project = base, project_id
        self._headers = {"Authorization": f"Bearer {token}"}
        self._ledger, self._rng = ledger, rng
        self._stop = asyncio.Event()
        self._n = 0

    def stop(self) -> None:
        self._stop.set()

    def _next(self) -> int:
        self._n += 1
        return self._n

    async def _send(
        self, http: httpx.AsyncClient, method: str, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        try:
            response = await http.request(method, path, headers=self._headers, **kwargs)
        except httpx.HTTPError:
            self._ledger.lost_answers += 1  # the server was killed under it, or not back yet
            await asyncio.sleep(0.5)
            return None
        self._ledger.statuses[response.status_code] += 1
        if response.status_code >= 500 and response.status_code != 503:
            self._ledger.server_errors.append(
                f"{method} {path}: {response.status_code} {response.text[:300]}"
            )
        if response.status_code == 503:
            await asyncio.sleep(0.5)
        return response

    async def records(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            n = self._next()
            fields = {"kind": "chaos", "title": f"record {n}", "data": {"n": n, "value": self._rng.random()}}
            response = await self._send(http, "POST", f"/api/projects/{self._project}/records", json=fields)
            if response is not None and response.status_code == 201:
                self._ledger.records[response.json()["id"]] = fields

    async def documents(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            n = self._next()
            body = self._rng.randbytes(self._rng.randint(1, 1_500_000))
            files = {"file": (f"document-{n}.bin", body, "application/octet-stream")}
            response = await self._send(http, "POST", f"/api/projects/{self._project}/documents", files=files)
            if response is not None and response.status_code == 201:
                self._ledger.documents[response.json()["id"]] = hashlib.sha256(body).hexdigest()

    async def ingestions(self, http: httpx.AsyncClient) -> None:
        while not self._stop.is_set():
            n = self._next()
            body, rows = csv_file(self._rng)
            files = {"files": (f"run-{n}.csv", body, "text/csv")}
            response = await self._send(
                http, "POST", f"/api/projects/{self._project}/ingestions", files=files
            )
            if response is not None and response.status_code == 202:
                for job in response.json()["jobs"]:
                    self._ledger.ingestions[job["id"]] = rows
            await asyncio.sleep(0.2)

    async def run(self) -> None:
        async with httpx.AsyncClient(base_url=self._base, timeout=REQUEST_TIMEOUT_S) as http:
            writers = [self.records(http), self.records(http), self.documents(http), self.ingestions(http),
                       self.ingestions(http)]  # fmt: skip
            await asyncio.gather(*writers)


def _setup(base: str) -> tuple[str, str]:
    """A project and a personal access token (it outlives every restart) to write with."""
    with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
        login = http.post("/api/auth/login", json=HEAD).json()
        session = {"Authorization": f"Bearer {login['access_token']}"}
        project = http.post("/api/projects", json={"name": "Chaos"}, headers=session).json()["id"]
        token = http.post("/api/tokens", json={"name": "chaos", "scopes": ["read", "write"]}, headers=session)
        return project, token.json()["token"]


async def _wait_settled(base: str, token: str, ledger: Ledger) -> list[str]:
    """Ready again, and every acknowledged job ended; what is still wrong after SETTLE_S."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + SETTLE_S
    pending = set(ledger.ingestions)
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = (await http.get("/ready")).status_code
                for job_id in list(pending):
                    job = (await http.get(f"/api/jobs/{job_id}", headers=headers)).json()
                    if job["status"] in ("succeeded", "failed", "cancelled"):
                        pending.discard(job_id)
            except httpx.HTTPError:
                ready = None
            if ready == 200 and not pending:
                return []
            await asyncio.sleep(1)
    problems = [f"/ready answered {ready} {SETTLE_S:.0f} s after the last kill"] if ready != 200 else []
    if pending:
        async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S) as http:
            stuck = [(await http.get(f"/api/jobs/{j}", headers=headers)).json() for j in sorted(pending)[:3]]
            login = (await http.post("/api/auth/login", json=HEAD)).json()
            system = (
                await http.get("/api/system", headers={"Authorization": f"Bearer {login['access_token']}"})
            ).json()
        problems.append(
            f"{len(pending)} jobs still not finished {SETTLE_S:.0f} s after the last kill, e.g. "
            + "; ".join(f"{j['id']} {j['status']} attempt {j['attempt']} {j.get('progress')}" for j in stuck)
        )
        problems.append(f"the server then: pool {system.get('pool')}, jobs {system.get('jobs')}")
    return problems


def _dump(server: Server) -> None:
    """The server writes what every task awaits and every thread runs to its log (SIGUSR1)."""
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGUSR1)
        time.sleep(2)


async def _verify(base: str, token: str, project: str, ledger: Ledger) -> list[str]:
    headers = {"Authorization": f"Bearer {token}"}
    problems: list[str] = list(ledger.server_errors)
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_S, headers=headers) as http:

        async def every(path: str) -> list[dict[str, Any]]:
            items, cursor = [], None
            while True:
                page = (
                    await http.get(path, params={"limit": 500, **({"cursor": cursor} if cursor else {})})
                ).json()
                items += page["items"]
                if not (cursor := page["next_cursor"]):
                    return items

        records = await every(f"/api/projects/{project}/records")
        titles = collections.Counter(r["title"] for r in records)
        problems += [f"record title {t!r} stored {n} times" for t, n in titles.items() if n > 1]
        by_id = {r["id"]: r for r in records}
        for record_id, fields in ledger.records.items():
            stored = by_id.get(record_id)
            if stored is None:
                problems.append(f"acknowledged record {record_id} is lost")
            elif (stored["title"], stored["data"]) != (fields["title"], fields["data"]):
                problems.append(f"record {record_id} differs from what was sent")
        documents = await every(f"/api/projects/{project}/documents")
        names = collections.Counter(d["name"] for d in documents)
        problems += [f"document {n!r} stored {c} times" for n, c in names.items() if c > 1]
        for document_id, sha256 in ledger.documents.items():
            response = await http.get(f"/api/documents/{document_id}/content")
            if response.status_code != 200:
                problems.append(f"acknowledged document {document_id}: {response.status_code}")
            elif hashlib.sha256(response.content).hexdigest() != sha256:
                problems.append(f"document {document_id} does not hold the bytes sent")
        ingestions = await every(f"/api/projects/{project}/ingestions")
        files = collections.Counter(i["file"]["name"] for i in ingestions)
        problems += [f"file {n!r} ingested {c} times" for n, c in files.items() if c > 1]
        for job_id, rows in ledger.ingestions.items():
            job = (await http.get(f"/api/jobs/{job_id}")).json()
            if job["status"] != "succeeded":
                problems.append(f"ingestion job {job_id} {job['status']}: {job.get('error')}")
                continue
            dataset = (await http.get(f"/api/datasets/{job['result']['dataset_id']}")).json()
            if dataset.get("row_count") != rows:
                problems.append(f"dataset of job {job_id} has {dataset.get('row_count')} rows, not {rows}")
    return problems


async def chaos(data_dir: Path, *, minutes: float, seed: int, every_s: tuple[float, float]) -> Report:
    rng = random.Random(seed)
    server = Server(data_dir, free_port())
    await asyncio.to_thread(server.start)
    kills: collections.Counter[str] = collections.Counter()
    ledger = Ledger()
    try:
        project, token = await asyncio.to_thread(_setup, server.base)
        writers = Writers(server.base, token, project, ledger, rng)
        writing = asyncio.create_task(writers.run())
        started = time.monotonic()
        deadline, last_chance = started + minutes * 60, started + minutes * 60 * MISSED_TARGET_GRACE
        schedule: list[str] = []
        # the time asked for, and longer (up to MISSED_TARGET_GRACE times) until every target has
        # been killed once: on a busy machine a worker may be idle at its turn, say
        while time.monotonic() < deadline or (
            time.monotonic() < last_chance and any(not kills[t] for t in TARGETS)
        ):
            await asyncio.sleep(rng.uniform(*every_s))
            if not schedule:  # every target once per round, in a seeded order
                schedule = rng.sample(TARGETS, len(TARGETS))
            target = schedule.pop()
            if await kill(server, target):
                kills[target] += 1
            elif not kills[target]:
                schedule.append(target)  # not there to kill (no busy worker now): its turn again next
        writers.stop()
        await asyncio.wait_for(writing, REQUEST_TIMEOUT_S * 2)
        problems = await _wait_settled(server.base, token, ledger)
        problems += await _verify(server.base, token, project, ledger)
        missed = [t for t in TARGETS if not kills[t]]
        if missed:
            problems.append(f"never killed: {', '.join(missed)} (run longer)")
        logged = []
        if problems:  # with what every task awaits and every thread runs, from the server's own log
            await asyncio.to_thread(_dump, server)
            marks = ('"ERROR"', '"labhub.state"')
            logged = [
                line for line in output(data_dir, server.port).splitlines() if any(m in line for m in marks)
            ]
        return Report(seed, minutes, kills, ledger, problems, logged)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labhub chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to kill things (default 5)")
    parser.add_argument(
        "--seed", type=int, default=None, help="the schedule's seed (default: random, printed)"
    )
    parser.add_argument("--every", type=float, nargs=2, default=(30.0, 60.0), metavar=("MIN_S", "MAX_S"),
                        help="seconds between kills (default 30 60)")  # fmt: skip
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    with tempfile.TemporaryDirectory(prefix="labhub-chaos-") as tmp:
        report = asyncio.run(
            chaos(Path(tmp) / "data", minutes=args.minutes, seed=seed, every_s=tuple(args.every))
        )
    print(report.text())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
