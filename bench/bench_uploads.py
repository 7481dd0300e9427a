"""Resumable uploads (tus) against the plain multipart route and a direct S3 multipart put, and what an
interruption half-way costs.

Starts the real server (embedded services, a temporary data dir, 8 MiB parts), then per round sends
SIZE random bytes:
  direct     - a multipart put straight to the embedded S3 (rclone), 8 MiB parts: the floor
  multipart  - POST /api/projects/{pid}/documents with a multipart body (one request)
  tus        - labhub-client's upload (tuspy, 64 MiB PATCHes; the server stores 8 MiB parts), then
  tus+use    - ... plus POST /api/projects/{pid}/documents {upload_id}: the parts moved into place
and prints MB/s and each as a ratio of the direct put (1.0 = as fast as S3 alone; higher is better).
Then one resume: a single PATCH of the whole file cut off at 50 %, HEAD, and the rest sent; it
prints the offset the server kept and the bytes sent twice.

    ./labhub bench                                       # every bench; this one with 1 GiB
    .venv/bin/python bench/bench_uploads.py --size-mib 256 --rounds 3
"""

from __future__ import annotations

import asyncio
import contextlib
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
sys.path.insert(0, str(ROOT / "client"))

from harness import sign_up, size_and_rounds, start_server, wait_ready  # noqa: E402
from labhub_client import LabHub  # noqa: E402

from domain.infra.objects import open_objects  # noqa: E402
from ops.children import free_port  # noqa: E402

BLOCK = 1024 * 1024
PART = 8 * 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}


async def file_blocks(path: Path, *, start: int = 0, stop: int | None = None) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        left = (stop if stop is not None else path.stat().st_size) - start
        while left > 0 and (chunk := handle.read(min(BLOCK, left))):
            left -= len(chunk)
            yield chunk


async def direct(data_dir: Path, path: Path) -> float:
    state = json.loads((data_dir / "services.json").read_text())
    secret = (data_dir / "secrets" / "s3_secret").read_text().strip()
    async with open_objects(
        state["s3_endpoint_url"], "labhub-local", secret, "bench-direct", "us-east-1"
    ) as store:
        started = time.perf_counter()
        await store.put_stream(
            "bench/object", file_blocks(path), max_bytes=path.stat().st_size, part_size=PART
        )
        seconds = time.perf_counter() - started
        await store.delete(["bench/object"])
    return seconds


async def multipart(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], pid: str, path: Path
) -> float:
    form = aiohttp.FormData()
    form.add_field("file", file_blocks(path), filename=path.name, content_type="application/octet-stream")
    started = time.perf_counter()
    async with session.post(f"{base}/api/projects/{pid}/documents", data=form, headers=headers) as response:
        document = await response.json()
        assert response.status == 201, document
    seconds = time.perf_counter() - started
    await session.delete(f"{base}/api/documents/{document['id']}", headers=headers)
    return seconds


async def tus_and_use(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], token: str, pid: str, path: Path
) -> tuple[float, float]:
    def upload() -> str:
        with LabHub(base, token) as hub:  # as labhub-client sends: 64 MiB PATCHes
            upload_id = hub.create_upload(path)
            hub.upload(path, upload_id)
            return upload_id

    started = time.perf_counter()
    upload_id = await asyncio.to_thread(upload)
    sent = time.perf_counter() - started
    async with session.post(
        f"{base}/api/projects/{pid}/documents", json={"upload_id": upload_id}, headers=headers
    ) as response:
        document = await response.json()
        assert response.status == 201, document
    used = time.perf_counter() - started
    await session.delete(f"{base}/api/documents/{document['id']}", headers=headers)
    return sent, used


class Cut(Exception):
    pass


async def resume_half_way(
    session: aiohttp.ClientSession, base: str, headers: dict[str, str], path: Path
) -> None:
    size = path.stat().st_size
    async with session.post(
        f"{base}/api/uploads", headers={**headers, **TUS, "Upload-Length": str(size)}
    ) as response:
        url = response.headers["Location"]
    patch = {**headers, **TUS, "Content-Type": "application/offset+octet-stream"}
    cut_at = size // 2 + PART // 2  # half-way, and in the middle of a part

    async def half() -> AsyncIterator[bytes]:
        async for chunk in file_blocks(path, stop=cut_at):
            yield chunk
        raise Cut  # the connection drops here

    started = time.perf_counter()
    with contextlib.suppress(Cut, aiohttp.ClientError):
        await session.patch(url, data=half(), headers={**patch, "Upload-Offset": "0"})
    kept = None
    while True:  # as tus clients do: ask for the offset, send from there; a 409 (the cut request was
        # still committing its last part when HEAD asked) means ask again
        async with session.head(url, headers={**headers, **TUS}) as response:
            offset = int(response.headers["Upload-Offset"])
        kept = offset if kept is None else kept
        rest = file_blocks(path, start=offset)
        async with session.patch(url, data=rest, headers={**patch, "Upload-Offset": str(offset)}) as response:
            if response.status == 204:
                break
            assert response.status == 409, await response.text()
    offset = max(kept, offset)
    seconds = time.perf_counter() - started
    resent = cut_at - offset
    print(f"resume after a cut at 50 % ({cut_at} bytes sent): the server kept {offset} bytes; "
          f"{resent} bytes ({resent / 2**20:.1f} MiB, {resent / size:.1%} of the file) were sent twice; "
          f"whole transfer {size / 1e6 / seconds:.0f} MB/s")  # fmt: skip
    await session.delete(url, headers={**headers, **TUS})


async def main(size_mib: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="labhub-bench-") as tmp:
        data_dir = Path(tmp)
        path = data_dir / "capture.bin"
        with path.open("wb") as out:
            for _ in range(size_mib):
                out.write(os.urandom(BLOCK))
        megabytes = size_mib * BLOCK / 1e6
        port = free_port()
        server = start_server(data_dir, port, LABHUB_UPLOADS_PART_SIZE_BYTES=str(PART))
        base = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
                await wait_ready(session, base)
                token, project_id = await sign_up(session, base)
                headers = {"Authorization": f"Bearer {token}"}
                print(
                    f"{size_mib} MiB per transfer, {rounds} round(s), part size {PART // 2**20} MiB; MB/s (ratio to direct)"
                )
                print(f"{'round':>5} {'direct':>8} {'multipart':>16} {'tus':>16} {'tus+use':>16}")
                best: dict[str, float] = {}
                for n in range(1, rounds + 1):
                    d = await direct(data_dir, path)
                    m = await multipart(session, base, headers, project_id, path)
                    t, u = await tus_and_use(session, base, headers, token, project_id, path)
                    row = {"multipart": d / m, "tus": d / t, "tus+use": d / u}
                    for key, ratio in row.items():
                        best[key] = max(best.get(key, 0.0), ratio)
                    print(f"{n:>5} {megabytes / d:>8.0f} " + " ".join(
                        f"{megabytes / s:>8.0f} ({row[k]:.2f}x)" for k, s in (("multipart", m), ("tus", t), ("tus+use", u))
                    ))  # fmt: skip
                print(
                    "best round, ratio to a direct S3 put: "
                    + ", ".join(f"{k} {v:.2f}x" for k, v in best.items())
                )
                await resume_half_way(session, base, headers, path)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)


if __name__ == "__main__":
    options = size_and_rounds(__doc__)
    asyncio.run(main(options.size_mib, options.rounds))
