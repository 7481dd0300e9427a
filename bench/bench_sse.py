"""5,000 SSE subscribers on one LabHub process while jobs emit 10 events/s each.

Measured in the same run against two baselines, bare broadcast loops that write the same
pre-encoded frames to the same number of sockets at the same rate: one on raw asyncio
protocols, one on plain aiohttp (one StreamResponse per client, one loop writing to all). For each, prints delivery lag
p50/p99 (producer timestamp -> client receipt), server CPU (% of one core, from the process's CPU
time over a steady window) and server memory per connection (RSS growth / connections), then the
LabHub/bare ratios.

    ./labhub bench                                    # runs every bench, this one included
    .venv/bin/python bench/bench_sse.py --clients 5000 --jobs 100 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import start_server, wait_ready  # noqa: E402

from ops.children import free_port  # noqa: E402

SENT = re.compile(rb'"sent":([0-9.]+)')
RATE_HZ = 10


# -- load generator: raw asyncio SSE clients in their own processes ------------------------------


class SseClient(asyncio.Protocol):
    def __init__(
        self, request: bytes, lags: list[float], connected: asyncio.Event, counter: list[int]
    ) -> None:
        self.request = request
        self.lags = lags
        self.connected = connected
        self.counter = counter
        self.headers_done = False
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.headers_done:
            if b"\r\n\r\n" not in data:
                return
            self.headers_done = True
            self.counter[0] += 1
            if self.counter[0] >= self.counter[1]:
                self.connected.set()
        chunk = self.tail + data
        cut = chunk.rfind(b"\n\n")
        self.tail = chunk[cut + 2 :] if cut >= 0 else chunk
        for match in SENT.finditer(chunk[: cut + 2] if cut >= 0 else b""):
            self.lags.append(now - float(match.group(1)))


async def _clients(port: int, paths: list[str], token: str, ready, start_measure, stop, results) -> None:
    loop = asyncio.get_running_loop()
    lags: list[float] = []
    connected = asyncio.Event()
    counter = [0, len(paths)]
    semaphore = asyncio.Semaphore(100)

    async def connect(path: str) -> None:
        request = (f"GET {path} HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n"
                   f"Authorization: Bearer {token}\r\n\r\n").encode()  # fmt: skip
        async with semaphore:
            await loop.create_connection(
                lambda: SseClient(request, lags, connected, counter), "127.0.0.1", port
            )

    await asyncio.gather(*(connect(p) for p in paths))
    await connected.wait()
    ready.set()
    await loop.run_in_executor(None, start_measure.wait)
    lags.clear()
    await loop.run_in_executor(None, stop.wait)
    results.put(lags)


def client_process(port: int, paths: list[str], token: str, ready, start_measure, stop, results) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    asyncio.run(_clients(port, paths, token, ready, start_measure, stop, results))


def run_load(
    port: int,
    paths: list[str],
    token: str,
    server_pid: int,
    seconds: float,
    on_connected=None,
    processes: int = 2,
) -> dict[str, float]:
    """Connect every path, wait until all stream, start the events, then measure for `seconds`."""
    server = psutil.Process(server_pid)
    rss_before = server.memory_info().rss
    ctx = multiprocessing.get_context("spawn")
    ready = [ctx.Event() for _ in range(processes)]
    start_measure, stop = ctx.Event(), ctx.Event()
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=client_process,
            args=(port, paths[i::processes], token, ready[i], start_measure, stop, results),
        )
        for i in range(processes)
    ]
    started = time.monotonic()
    for worker in workers:
        worker.start()
    for event in ready:
        event.wait(timeout=600)
    connect_s = time.monotonic() - started
    rss_idle = server.memory_info().rss
    if on_connected is not None:
        on_connected()
    time.sleep(3)  # settle into the steady state
    cpu_before = sum(server.cpu_times()[:2])
    start_measure.set()
    if os.environ.get("BENCH_PROFILE"):
        subprocess.Popen([os.environ["BENCH_PROFILE"], "record", "-p", str(server_pid), "-d", str(int(seconds) - 1),  # noqa: S603
                          "-o", "sse-profile.txt", "-f", "raw", "--nonblocking"])  # fmt: skip
    time.sleep(seconds)
    cpu_used = sum(server.cpu_times()[:2]) - cpu_before
    rss_connected = server.memory_info().rss  # connections plus their buffers, at the steady state
    stop.set()
    lags = [lag for _ in workers for lag in results.get(timeout=60)]
    for worker in workers:
        worker.join(timeout=30)
    lags.sort()
    return {
        "connect_s": connect_s,
        "events": len(lags),
        "p50_ms": 1000 * lags[len(lags) // 2] if lags else float("nan"),
        "p99_ms": 1000 * lags[int(len(lags) * 0.99)] if lags else float("nan"),
        "cpu_pct": 100 * cpu_used / seconds,
        "kib_per_conn": (rss_connected - rss_before) / len(paths) / 1024,
        "kib_idle": (rss_idle - rss_before) / len(paths) / 1024,
    }


# -- baselines: bare broadcast loops, raw asyncio and plain aiohttp ---------------------------------


def _frames(jobs: int, sequence: int, now: float) -> list[bytes]:
    frames = []
    for job in range(jobs):
        body = f'id: {sequence + job}-0\nevent: progress\ndata: {{"stage":"bench","done":1,"total":2,"sent":{now}}}\n\n'.encode()
        frames.append(b"%x\r\n%s\r\n" % (len(body), body))
    return frames


async def broadcast_forever(subscribers: dict[int, list[asyncio.Transport]], jobs: int) -> None:
    """10 events/s per job on an absolute schedule: each event is written to each of its job's sockets."""
    loop = asyncio.get_running_loop()
    tick = loop.time()
    sequence = 0
    while True:
        tick += 1 / RATE_HZ
        await asyncio.sleep(max(0.0, tick - loop.time()))
        frames = _frames(jobs, sequence, time.time())
        sequence += jobs
        for job, frame in enumerate(frames):
            for transport in subscribers.get(job, ()):
                if not transport.is_closing():
                    transport.write(frame)


def _job_of(path: bytes | str, jobs: int) -> int:
    text = path.decode() if isinstance(path, bytes) else path
    return int(text.rstrip("/").split("/")[-2]) % jobs


class BareStream(asyncio.Protocol):
    def __init__(self, subscribers: dict[int, list[asyncio.Transport]], jobs: int) -> None:
        self.subscribers = subscribers
        self.jobs = jobs
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if b"\r\n\r\n" not in self.buffer:
            return
        job = _job_of(self.buffer.split(b" ", 2)[1], self.jobs)
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )  # type: ignore[attr-defined]
        self.subscribers.setdefault(job, []).append(self.transport)  # type: ignore[arg-type]


async def raw_server(port: int, jobs: int) -> None:
    subscribers: dict[int, list[asyncio.Transport]] = {}
    await asyncio.get_running_loop().create_server(
        lambda: BareStream(subscribers, jobs), "127.0.0.1", port, backlog=4096
    )
    await broadcast_forever(subscribers, jobs)


async def aiohttp_server(port: int, jobs: int) -> None:
    from aiohttp import web

    subscribers: dict[int, list[asyncio.Transport]] = {}

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        subscribers.setdefault(_job_of(request.path, jobs), []).append(request.transport)  # type: ignore[arg-type]
        await asyncio.get_running_loop().create_future()  # held open; the broadcast loop writes
        return response

    app = web.Application()
    app.router.add_get("/api/jobs/{job}/events", events)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    await broadcast_forever(subscribers, jobs)


def run_baseline(kind: str, port: int, jobs: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    asyncio.run(raw_server(port, jobs) if kind == "raw" else aiohttp_server(port, jobs))


# -- LabHub ------------------------------------------------------------------------------------------


async def labhub_setup(base: str, data_dir: Path, jobs: int) -> tuple[str, list[str], str]:
    import aiohttp
    import redis.asyncio as aioredis
    from pymongo import AsyncMongoClient

    from domain.core.clock import utcnow
    from domain.jobs.models import job_snapshot
    from domain.jobs.store import JobStore

    async with aiohttp.ClientSession() as http:
        await wait_ready(http, base)
        account = {"email": "sse-bench@lab.example", "password": "sse bench password", "name": "Bench"}
        user = await (await http.post(f"{base}/api/auth/register", json=account)).json()
        login = await http.post(
            f"{base}/api/auth/login", json={"email": account["email"], "password": account["password"]}
        )
        token = (await login.json())["access_token"]
        project = await (await http.post(f"{base}/api/projects", json={"name": "bench"},
                                         headers={"Authorization": f"Bearer {token}"})).json()  # fmt: skip
    state = json.loads((data_dir / "services.json").read_text())
    mongo = AsyncMongoClient(state["mongo_uri"], tz_aware=True)
    store = JobStore(mongo["labhub"])
    ids = []
    live = aioredis.from_url(state["redis_url"])
    for _ in range(jobs):
        # a running job of a kind no server runs, leased for an hour: only the bench writes its events
        job = await store.insert(
            kind="bench.fake", project_id=project["id"], owner_id=user["id"], params={}, max_attempts=1
        )
        await mongo["labhub"]["jobs"].update_one(
            {"_id": __import__("bson").ObjectId(job.id)},
            {
                "$set": {
                    "status": "running",
                    "lease": {"owner": "bench", "expires_at": utcnow().replace(year=2100)},
                }
            },
        )
        ids.append(job.id)
        running = await store.get(job.id)
        assert running is not None
        await live.set(
            f"labhub:job:{job.id}", json.dumps(job_snapshot(running), default=str)
        )  # as the scheduler would
    await live.aclose()
    await mongo.close()
    return token, ids, state["redis_url"]


async def produce(redis_url: str, job_ids: list[str], stop_at: float) -> None:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url)
    while time.time() < stop_at:
        pipe = client.pipeline(transaction=False)
        now = time.time()
        for job_id in job_ids:
            data = json.dumps({"stage": "bench", "done": 1, "total": 2, "sent": now})
            pipe.xadd(
                f"labhub:job:{job_id}:events",
                {"event": "progress", "data": data},
                maxlen=100,
                approximate=True,
            )
        await pipe.execute()
        await asyncio.sleep(max(0.0, 1 / RATE_HZ - (time.time() - now)))
    await client.aclose()


def report(name: str, figures: dict[str, float]) -> None:
    print(
        f"{name:>8}: connected in {figures['connect_s']:.1f} s, {figures['events']} events received, "
        f"lag p50 {figures['p50_ms']:.1f} ms p99 {figures['p99_ms']:.1f} ms, "
        f"server CPU {figures['cpu_pct']:.0f}% of one core, {figures['kib_per_conn']:.1f} KiB per connection "
        f"({figures['kib_idle']:.1f} KiB once connected, before events)"
    )


def main(clients: int, jobs: int, seconds: float, *, skip_baselines: bool = False) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    print(f"{clients} SSE clients over {jobs} jobs, {RATE_HZ} events/s per job "
          f"({clients * RATE_HZ} deliveries/s), {seconds:.0f} s measured")  # fmt: skip

    baselines = {}
    for kind in () if skip_baselines else ("raw", "aiohttp"):
        port = free_port()
        bare = multiprocessing.get_context("spawn").Process(target=run_baseline, args=(kind, port, jobs))
        bare.start()
        time.sleep(2)
        paths = [f"/api/jobs/{i % jobs}/events" for i in range(clients)]
        baselines[kind] = run_load(port, paths, "none", bare.pid, seconds)
        bare.terminate()
        bare.join()
        report(kind, baselines[kind])

    with tempfile.TemporaryDirectory(prefix="labhub-sse-bench-") as tmp:
        data_dir = Path(tmp)
        port = free_port()
        overrides = {"LABHUB_POOL_MAX_WORKERS": "1"}
        for assignment in filter(None, os.environ.get("BENCH_SERVER_ENV", "").split(",")):
            name, _, value = assignment.partition("=")
            overrides[name] = value
        server = start_server(data_dir, port, **overrides)
        try:
            token, job_ids, redis_url = asyncio.run(labhub_setup(f"http://127.0.0.1:{port}", data_dir, jobs))
            paths = [f"/api/jobs/{job_ids[i % jobs]}/events" for i in range(clients)]
            producer = multiprocessing.get_context("spawn").Process(
                target=_produce_process, args=(redis_url, job_ids, time.time() + 3600)
            )
            labhub = run_load(port, paths, token, server.pid, seconds, on_connected=producer.start)
            producer.terminate()
            producer.join()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)
    report("labhub", labhub)
    for kind, baseline in baselines.items():
        print(
            f"labhub/{kind}: CPU {labhub['cpu_pct'] / baseline['cpu_pct']:.2f}x, "
            f"memory per connection {labhub['kib_per_conn'] / baseline['kib_per_conn']:.2f}x, "
            f"lag p50 {labhub['p50_ms'] / baseline['p50_ms']:.2f}x, p99 {labhub['p99_ms'] / baseline['p99_ms']:.2f}x"
        )


def _produce_process(redis_url: str, job_ids: list[str], stop_at: float) -> None:
    asyncio.run(produce(redis_url, job_ids, stop_at))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--skip-baselines", action="store_true", help="measure LabHub only (quick checks)")
    options = parser.parse_args()
    main(options.clients, options.jobs, options.seconds, skip_baselines=options.skip_baselines)
