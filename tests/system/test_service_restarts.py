"""kill -9 of an embedded service under a running job: the supervisor brings it back on its own,
the job ends succeeded once, a client watching the job gets the end, and no request meanwhile is a
500 (a 503 naming the service is the honest answer while it is down)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import httpx
import pytest
import redis.asyncio as aioredis

from domain.infra.events import stream_id
from ops.children import free_port
from tests.sse_client import Event, SseParser
from tests.system.conftest import queue_test_job, service_endpoints, service_pids, start, wait_ready

pytestmark = pytest.mark.system

SCRAPER = "the-scraper-secret-of-the-outage-test"
ENV = {"LABHUB_JOBS_PLUGINS": "tests.jobkinds:SYSTEM_KINDS", "LABHUB_SSE_PING_S": "0.5",
       "LABHUB_METRICS_BEARER_SECRET": SCRAPER}  # fmt: skip
FINAL = {"succeeded", "failed", "cancelled"}
AOF_WINDOW_S = 1.5  # appendfsync everysec: Redis may lose about the last second of writes (docs/architecture.md, "The job path")
KILLS = 3


def is_final(event: Event) -> bool:
    return event.event == "status" and event.data["status"] in FINAL


class Watcher:
    """A client that follows a job's events and reconnects with Last-Event-ID, as a frontend would."""

    def __init__(self, http: httpx.AsyncClient, job_id: str, headers: dict[str, str]) -> None:
        self.http, self.job_id, self.headers = http, job_id, headers
        self.events: list[Event] = []
        self.connections = 0
        self.refused: list[int] = []

    @property
    def last_id(self) -> str | None:
        return next((e.id for e in reversed(self.events) if e.id), None)

    async def run(self) -> None:
        while not (self.events and is_final(self.events[-1])):
            headers = {**self.headers, **({"Last-Event-ID": self.last_id} if self.last_id else {})}
            try:
                async with self.http.stream(
                    "GET", f"/api/jobs/{self.job_id}/events", headers=headers
                ) as response:
                    if response.status_code == 204:
                        return
                    if response.status_code != 200:
                        self.refused.append(response.status_code)
                        await asyncio.sleep(0.5)
                        continue
                    self.connections += 1
                    parser = SseParser()
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is not None and event.event != "snapshot":
                            self.events.append(event)
            except httpx.TransportError:
                await asyncio.sleep(0.5)


class Poller:
    """Requests of every kind while the service is down: each answers, and never with a 500."""

    def __init__(self, http: httpx.AsyncClient, calls: list[tuple[str, str, dict]]) -> None:
        self.http, self.calls = http, calls
        self.statuses: dict[str, list[int]] = {f"{m} {p}": [] for m, p, _ in calls}
        self.stop = asyncio.Event()

    async def run(self) -> None:
        while not self.stop.is_set():
            for method, path, options in self.calls:
                response = await self.http.request(method, path, **options)
                self.statuses[f"{method} {path}"].append(response.status_code)
                if response.status_code >= 500:
                    assert response.status_code == 503, (method, path, response.text)
                    assert response.headers["content-type"].startswith("application/problem+json")
                    assert response.headers.get("Retry-After") or path == "/ready"
            await asyncio.sleep(0.1)


async def wait_for(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"{what} within {timeout_s} s"
        await asyncio.sleep(0.2)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("service", ["redis", "mongo", "s3"])
async def test_a_killed_service_comes_back_and_the_job_ends_once(tmp_path, service):
    port = free_port()
    server = start(tmp_path, port, **ENV)
    try:
        await asyncio.to_thread(wait_ready, port, server)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
            account = {"email": "outage@lab.example", "password": "outage password", "name": "O"}
            user = (await http.post("/api/auth/register", json=account)).json()
            login = await http.post("/api/auth/login", json={k: account[k] for k in ("email", "password")})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            project = (await http.post("/api/projects", json={"name": "Outage"}, headers=headers)).json()
            document = (
                await http.post(f"/api/projects/{project['id']}/documents", headers=headers,
                                files={"file": ("a.txt", b"kept through the outage")})
            ).json()  # fmt: skip

            killed_at: list[float] = []

            def kill() -> int:
                pid = service_pids(tmp_path)[service]
                killed_at.append(time.time())
                os.kill(pid, signal.SIGKILL)
                return pid

            async def restarted(old: int) -> None:
                async def check() -> bool:
                    return service_pids(tmp_path)[service] != old

                await wait_for(check, 120, f"{service} restarted")

            if service == "s3":
                # a plot of a dataset, queued as S3 goes down: its prepare reads the dataset's Parquet
                # from S3 and its commit stores the image there, both into the outage
                dataset_id = await ingested_dataset(http, project["id"], headers)
                killed = kill()
                plot = await http.post(
                    f"/api/datasets/{dataset_id}/visualizations", headers=headers,
                    json={"kind": "line", "x": "a", "y": ["b"]},
                )  # fmt: skip
                assert plot.status_code == 202, plot.text
                job_id = plot.json()["job_id"]
                watcher = Watcher(http, job_id, headers)
                watching = asyncio.create_task(watcher.run())
            else:
                job_id = await queue_test_job(tmp_path, project["id"], user["id"], steps=120, delay=0.1)
                watcher = Watcher(http, job_id, headers)
                watching = asyncio.create_task(watcher.run())
                await wait_for(
                    lambda: asyncio.sleep(0, result=any(e.event == "progress" for e in watcher.events)),
                    120, "the job reports progress",
                )  # fmt: skip
                killed = kill()
            poller = Poller(http, [
                ("GET", "/ready", {}),
                ("GET", f"/api/jobs/{job_id}", {"headers": headers}),
                ("POST", "/api/auth/login", {"json": {k: account[k] for k in ("email", "password")}}),
                ("GET", f"/api/projects/{project['id']}/documents", {"headers": headers}),
                ("GET", f"/api/documents/{document['id']}/content", {"headers": headers}),
            ])  # fmt: skip
            polling = asyncio.create_task(poller.run())
            # killed three times, each time as soon as it is back: the supervisor's back-off grows
            # (0.5, 1, 2 s), so the outage lasts seconds and the job's steps run into it
            await restarted(killed)
            for _ in range(KILLS - 1):
                await restarted(kill())

            async def ready() -> bool:
                return (await http.get("/ready")).status_code == 200

            await wait_for(ready, 120, f"{service} restarted and /ready ok")
            scraped = (await http.get("/metrics", headers={"Authorization": f"Bearer {SCRAPER}"})).text
            await asyncio.wait_for(watching, 180)
            poller.stop.set()
            await polling

            final = (await http.get(f"/api/jobs/{job_id}", headers=headers)).json()
            content = await http.get(f"/api/documents/{document['id']}/content", headers=headers)
            assert content.content == b"kept through the outage"
            stored = await stored_ids(service_endpoints(tmp_path)["redis_url"], job_id)
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.wait, 60)

    assert final["status"] == "succeeded", final
    assert final["attempt"] == 1, "an outage must not cost the job an attempt"
    assert f'labhub_embedded_service_restarts{{service="{service}"}} {float(KILLS)}' in scraped
    assert f'labhub_service_up{{service="{service}"}} 1.0' in scraped
    terminal = [e for e in watcher.events if is_final(e)]
    assert [e.data["status"] for e in terminal] == ["succeeded"], "the job ended exactly once"
    assert watcher.events[-1] is terminal[0]
    statuses = [s for codes in poller.statuses.values() for s in codes]
    assert statuses, "the poller made requests"
    assert all(s < 500 or s == 503 for s in statuses)

    received = [e.id for e in watcher.events if e.id]
    assert len(received) == len(set(received)), "an event was delivered twice"
    assert received == sorted(received, key=stream_id)
    missing = [i for i in stored if i not in set(received)]
    assert not missing, "the client missed events that Redis kept"
    lost = [i for i in received if i not in set(stored)]
    if service == "redis":
        windows = [(int((t - AOF_WINDOW_S) * 1000), int(t * 1000) + 1) for t in killed_at]
        assert all(any(a <= stream_id(i)[0] <= b for a, b in windows) for i in lost), (lost, windows)
    else:
        assert not lost


async def ingested_dataset(http: httpx.AsyncClient, project_id: str, headers: dict[str, str]) -> str:
    csv = "a,b\n" + "".join(f"{i},{i * 0.5}\n" for i in range(5000))
    batch = await http.post(
        f"/api/projects/{project_id}/ingestions", headers=headers, files={"files": ("run.csv", csv.encode())}
    )
    assert batch.status_code == 202, batch.text
    job_id = batch.json()["jobs"][0]["id"]

    async def done() -> bool:
        return (await http.get(f"/api/jobs/{job_id}", headers=headers)).json()["status"] == "succeeded"

    await wait_for(done, 120, "the dataset is ingested")
    job = (await http.get(f"/api/jobs/{job_id}", headers=headers)).json()
    return str(job["result"]["dataset_id"])


async def stored_ids(redis_url: str, job_id: str) -> list[str]:
    redis = aioredis.from_url(redis_url)
    try:
        return [entry_id.decode() for entry_id, _ in await redis.xrange(f"labhub:job:{job_id}:events")]
    finally:
        await redis.aclose()
