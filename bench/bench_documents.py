"""Upload and download a large file through LabHub, as a ratio to a direct S3 put/get of the same bytes.

Starts the real server (embedded services, a temporary data dir), then per round:
  direct  - multipart put and streamed get of SIZE bytes straight to the embedded S3 (rclone)
  labhub  - POST /api/projects/{pid}/documents and GET /api/documents/{id}/content of the same bytes
and prints MB/s for both and labhub/direct (1.0 = no overhead; higher is better for throughput).

    ./labhub bench                       # 1 GiB, 1 round
    .venv/bin/python bench/bench_documents.py --size-mib 256 --rounds 3
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import sign_up, size_and_rounds, start_server, wait_ready  # noqa: E402

from domain.infra.objects import open_objects  # noqa: E402
from ops.children import free_port  # noqa: E402

BLOCK = 1024 * 1024
PART = 8 * 1024 * 1024


async def blocks(block: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield block


async def direct_round(data_dir: Path, block: bytes, count: int) -> tuple[float, float]:
    state = json.loads((data_dir / "services.json").read_text())
    secret = (data_dir / "secrets" / "s3_secret").read_text().strip()
    async with open_objects(
        state["s3_endpoint_url"], "labhub-local", secret, "bench-direct", "us-east-1"
    ) as store:
        started = time.perf_counter()
        stored = await store.put_stream(
            "bench/object", blocks(block, count), max_bytes=count * len(block), part_size=PART
        )
        put_s = time.perf_counter() - started
        started = time.perf_counter()
        digest = hashlib.sha256()
        async with store.open_read("bench/object") as reader:
            async for chunk in reader.chunks():
                digest.update(chunk)
        get_s = time.perf_counter() - started
        assert digest.hexdigest() == stored.sha256
        await store.delete(["bench/object"])
    return put_s, get_s


async def labhub_round(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], pid: str, block: bytes, count: int
) -> tuple[float, float]:
    form = aiohttp.FormData()
    form.add_field(
        "file", blocks(block, count), filename="bench.bin", content_type="application/octet-stream"
    )
    started = time.perf_counter()
    async with session.post(f"{base}/api/projects/{pid}/documents", data=form, headers=headers) as response:
        document = await response.json()
        assert response.status == 201, document
    put_s = time.perf_counter() - started
    started = time.perf_counter()
    digest = hashlib.sha256()
    async with session.get(f"{base}/api/documents/{document['id']}/content", headers=headers) as response:
        async for chunk in response.content.iter_chunked(BLOCK):
            digest.update(chunk)
    get_s = time.perf_counter() - started
    assert digest.hexdigest() == document["sha256"]
    async with session.delete(f"{base}/api/documents/{document['id']}", headers=headers) as response:
        assert response.status == 204
    return put_s, get_s


async def main(size_mib: int, rounds: int) -> None:
    count = size_mib
    block = os.urandom(BLOCK)
    megabytes = count * BLOCK / 1e6
    with tempfile.TemporaryDirectory(prefix="labhub-bench-") as tmp:
        data_dir = Path(tmp)
        port = free_port()
        server = start_server(data_dir, port)
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
                await wait_ready(session, base)
                token, project_id = await sign_up(session, base)
                headers = {"Authorization": f"Bearer {token}"}
                print(f"{size_mib} MiB per transfer, {rounds} round(s), part size {PART // 2**20} MiB")
                print(
                    f"{'round':>5} {'direct put':>11} {'labhub put':>11} {'ratio':>6} {'direct get':>11} {'labhub get':>11} {'ratio':>6}"
                )
                ratios: list[tuple[float, float]] = []
                for n in range(1, rounds + 1):
                    d_put, d_get = await direct_round(data_dir, block, count)
                    l_put, l_get = await labhub_round(session, base, headers, project_id, block, count)
                    put_ratio, get_ratio = d_put / l_put, d_get / l_get
                    ratios.append((put_ratio, get_ratio))
                    print(
                        f"{n:>5} {megabytes / d_put:>7.0f} MB/s {megabytes / l_put:>7.0f} MB/s {put_ratio:>6.2f}"
                        f" {megabytes / d_get:>7.0f} MB/s {megabytes / l_get:>7.0f} MB/s {get_ratio:>6.2f}"
                    )
                best_put = max(r[0] for r in ratios)
                best_get = max(r[1] for r in ratios)
                print(
                    f"labhub/direct throughput (best round): upload {best_put:.2f}x, download {best_get:.2f}x"
                )
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


if __name__ == "__main__":
    options = size_and_rounds(__doc__)
    asyncio.run(main(options.size_mib, options.rounds))
