"""Backup, verify and restore of a populated LabHub, as ratios to copying the same objects by hand.

Starts the real server (embedded services, a temporary data dir), stores SIZE MiB of documents and a
few thousand records through the API, then per round:
  direct   - every object in the bucket read from S3 into files, then put into another bucket
  backup   - ops.backup.backup into a directory (what `./labhub backup` runs), the server running
  verify   - ops.backup.verify: every file hashed again
  restore  - ops.backup.restore into another database and bucket of the same services
and prints MB/s and backup/direct-read, restore/direct-put (1.0 = no overhead; lower is better).

    ./labhub bench
    .venv/bin/python bench/bench_backup.py --size-mib 256 --rounds 3
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
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

from domain import __version__  # noqa: E402
from domain.infra.mongo import open_mongo  # noqa: E402
from domain.infra.objects import ObjectStore, open_objects  # noqa: E402
from ops.archive import ArchiveReader, ArchiveWriter  # noqa: E402
from ops.backup import backup, restore, verify  # noqa: E402
from ops.children import free_port  # noqa: E402

DOCUMENTS = 16
RECORDS = 2000
PART = 8 * 1024 * 1024


async def populate(base: str, size: int) -> None:
    async with aiohttp.ClientSession() as session:
        token, project = await sign_up(session, base)
        headers = {"Authorization": f"Bearer {token}"}
        for i in range(DOCUMENTS):
            form = aiohttp.FormData()
            form.add_field("file", os.urandom(size // DOCUMENTS), filename=f"scan-{i}.bin")
            async with session.post(
                f"{base}/api/projects/{project}/documents", data=form, headers=headers
            ) as r:
                assert r.status == 201, await r.text()
        for i in range(RECORDS):
            body = {"kind": "measurement", "title": f"run {i}", "data": {"rpm": i, "note": "x" * 200}}
            async with session.post(
                f"{base}/api/projects/{project}/records", json=body, headers=headers
            ) as r:
                assert r.status == 201, await r.text()


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            yield chunk


async def direct_round(source: ObjectStore, target: ObjectStore, work: Path) -> tuple[float, float, int]:
    keys = await source.keys()
    started, total = time.perf_counter(), 0
    for i, key in enumerate(keys):
        async with source.open_read(key) as reader:
            with (work / str(i)).open("wb") as handle:
                async for chunk in reader.chunks(1 << 20):
                    handle.write(chunk)
                    total += len(chunk)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    for i, key in enumerate(keys):
        await target.put_stream(key, file_chunks(work / str(i)), max_bytes=2**62, part_size=PART)
    return read_s, time.perf_counter() - started, total


async def rounds(data_dir: Path, work: Path, count: int) -> None:
    state = json.loads((data_dir / "services.json").read_text())
    secret = (data_dir / "secrets" / "s3_secret").read_text().strip()
    s3 = (state["s3_endpoint_url"], "labhub-local", secret)
    async with (
        open_mongo(state["mongo_uri"], "labhub") as db,
        open_objects(*s3, "labhub", "us-east-1") as objects,
    ):
        for n in range(count):
            scratch = work / f"direct-{n}"
            scratch.mkdir()
            async with open_objects(*s3, f"bench-direct-{n}", "us-east-1") as target:
                read_s, put_s, size = await direct_round(objects, target, scratch)
            shutil.rmtree(scratch)
            archive = work / f"backup-{n}"
            writer = ArchiveWriter(archive)
            started = time.perf_counter()
            manifest = await backup(db, objects, writer, version=__version__)
            writer.close()
            backup_s = time.perf_counter() - started
            reader = ArchiveReader(archive)
            started = time.perf_counter()
            assert not verify(reader)[1]
            verify_s = time.perf_counter() - started
            async with (
                open_mongo(state["mongo_uri"], f"bench_restore_{n}") as target_db,
                open_objects(*s3, f"bench-restore-{n}", "us-east-1") as target,
            ):
                started = time.perf_counter()
                await restore(reader, target_db, target, force=False, part_size=PART)
                restore_s = time.perf_counter() - started
            shutil.rmtree(archive)
            mb = size / 1e6
            counts = manifest["counts"]
            print(json.dumps({
                "round": n + 1, "objects": counts["objects"], "documents": counts["documents"], "mb": round(mb, 1),
                "direct_read_mb_s": round(mb / read_s, 1), "direct_put_mb_s": round(mb / put_s, 1),
                "backup_mb_s": round(mb / backup_s, 1), "verify_mb_s": round(mb / verify_s, 1),
                "restore_mb_s": round(mb / restore_s, 1),
                "backup_vs_direct_read": round(backup_s / read_s, 2),
                "restore_vs_direct_put": round(restore_s / put_s, 2),
            }), flush=True)  # fmt: skip


async def main() -> None:
    args = size_and_rounds(__doc__)
    with tempfile.TemporaryDirectory(prefix="labhub-bench-backup-") as tmp:
        data_dir, port = Path(tmp) / "data", free_port()
        server = start_server(data_dir, port)
        try:
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as session:
                await wait_ready(session, base)
            await populate(base, args.size_mib * 1024 * 1024)
            await rounds(data_dir, Path(tmp), args.rounds)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(60)


if __name__ == "__main__":
    asyncio.run(main())
