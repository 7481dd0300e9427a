"""Uploads and downloads stream: a 200 MB file moves through the real server with flat memory."""

from __future__ import annotations

import hashlib
import threading
import time

import aiohttp
import psutil
import pytest

pytestmark = pytest.mark.system

SIZE = 200 * 1024 * 1024
BLOCK = 1024 * 1024
# one 8 MiB part being assembled, one being sent, read buffers and allocator slack
RSS_GROWTH_LIMIT = 96 * 1024 * 1024


class PeakRss:
    """Samples a process's resident memory every few milliseconds while in use."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self._stop = threading.Event()
        self.baseline = self._process.memory_info().rss
        self.peak = self.baseline
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.baseline


async def test_200_mb_upload_and_download_keep_server_memory_flat(server):
    process, port, _ = server
    base = f"http://127.0.0.1:{port}"
    block = bytes(range(256)) * (BLOCK // 256)
    expected = hashlib.sha256()
    for _ in range(SIZE // BLOCK):
        expected.update(block)

    async def chunks():
        for _ in range(SIZE // BLOCK):
            yield block

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        account = {"email": "big@lab.example", "password": "big upload password", "name": "Big"}
        await session.post(f"{base}/api/auth/register", json=account)
        login = await session.post(
            f"{base}/api/auth/login", json={"email": account["email"], "password": account["password"]}
        )
        headers = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
        project = await (
            await session.post(f"{base}/api/projects", json={"name": "Big files"}, headers=headers)
        ).json()
        # warm up the upload path once so that lazy imports and pools do not count as growth
        form = aiohttp.FormData()
        form.add_field("file", b"warm-up", filename="w.txt")
        await session.post(f"{base}/api/projects/{project['id']}/documents", data=form, headers=headers)

        form = aiohttp.FormData()
        form.add_field("file", chunks(), filename="big.bin", content_type="application/octet-stream")
        with PeakRss(process.pid) as upload_rss:
            response = await session.post(
                f"{base}/api/projects/{project['id']}/documents", data=form, headers=headers
            )
            document = await response.json()
        assert response.status == 201, document
        assert document["size"] == SIZE
        assert document["sha256"] == expected.hexdigest()

        received = hashlib.sha256()
        with PeakRss(process.pid) as download_rss:
            async with session.get(
                f"{base}/api/documents/{document['id']}/content", headers=headers
            ) as download:
                assert download.status == 200
                async for piece in download.content.iter_chunked(BLOCK):
                    received.update(piece)
        assert received.hexdigest() == expected.hexdigest()

    print(
        f"server RSS growth: upload {upload_rss.growth / 2**20:.1f} MiB, download {download_rss.growth / 2**20:.1f} MiB"
    )
    assert upload_rss.growth < RSS_GROWTH_LIMIT, (
        f"upload grew the server by {upload_rss.growth / 2**20:.0f} MiB"
    )
    assert download_rss.growth < RSS_GROWTH_LIMIT, (
        f"download grew the server by {download_rss.growth / 2**20:.0f} MiB"
    )
