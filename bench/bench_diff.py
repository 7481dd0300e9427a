"""Two versions of a 1,000,000-row dataset compared, measured against the same work in this process.

A CSV of --rows rows (id, time, run, speed, pressure) is ingested, then a second file as its new
version: 0.5 % of the rows removed, as many new ones added, 1 % of the speeds changed, one column
more. With `id` declared as the key, GET /api/datasets/{id}/diff (end to end: HTTP, both versions
read, schema and statistics compared, the keyed row comparison in the query lane) is timed, median
of --rounds, against the row comparison alone (workers/diff.py on a DuckDB connection in this process,
over the same cached Parquet files, same threads). Target: under 5 s for 1,000,000 rows here.

    .venv/bin/python bench/bench_diff.py [--rows 1000000] [--rounds 5]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp.test_utils import TestClient  # noqa: E402
from harness import client_sign_up, labhub_server, rows_and_rounds, wait_final  # noqa: E402

from handlers.keys import SETTINGS  # noqa: E402
from workers.diff import diff_rows  # noqa: E402


def write_versions(first: Path, second: Path, rows: int) -> None:
    rng = np.random.default_rng(11)
    ids = np.arange(rows)
    speed = rng.normal(10, 3, rows).round(4)
    pressure = rng.normal(101_325, 500, rows).round(2)
    run = ids // 50_000
    columns = [ids * 0.001, run, speed, pressure]
    with first.open("w") as handle:
        handle.write("id,time,run,speed,pressure\n")
        np.savetxt(handle, np.column_stack([ids, *columns]), delimiter=",", fmt=["%d", "%.3f", "%d", "%.4f", "%.2f"])
    gone = rows // 200
    changed = rng.choice(np.arange(gone, rows), rows // 100, replace=False)
    speed2 = speed.copy()
    speed2[changed] += 1.0
    ids2 = np.arange(gone, rows + gone)
    keep = slice(gone, rows)
    new = np.arange(rows, rows + gone)
    table = np.column_stack([
        ids2, np.concatenate([ids[keep], new]) * 0.001, np.concatenate([run[keep], new // 50_000]),
        np.concatenate([speed2[keep], rng.normal(10, 3, gone).round(4)]),
        np.concatenate([pressure[keep], rng.normal(101_325, 500, gone).round(2)]), rng.integers(0, 5, rows),
    ])  # fmt: skip
    with second.open("w") as handle:
        handle.write("id,time,run,speed,pressure,gust\n")
        np.savetxt(handle, table, delimiter=",", fmt=["%d", "%.3f", "%d", "%.4f", "%.2f", "%d"])


async def ingest(client: TestClient, headers: dict[str, str], project_id: str, path: Path, **fields: str) -> dict:
    form = aiohttp.FormData()
    for name, value in fields.items():
        form.add_field(name, value)
    form.add_field("files", path.read_bytes(), filename=path.name, content_type="text/csv")
    batch = await (await client.post(f"/api/projects/{project_id}/ingestions", data=form, headers=headers)).json()
    job = await wait_final(client, headers, batch["jobs"][0]["id"])
    assert job["status"] == "succeeded", job
    return job


async def run(folder: Path, rows: int, rounds: int) -> None:
    first, second = folder / "runs.csv", folder / "runs-v2.csv"
    write_versions(first, second, rows)
    async with labhub_server(folder / "labhub", pool={"max_workers": 2, "min_workers": 2}) as server:
        client = TestClient(server)
        await client.start_server()
        headers, project_id = await client_sign_up(client, "diff@lab.example", "Bench")
        dataset_id = (await ingest(client, headers, project_id, first))["result"]["dataset_id"]
        await ingest(client, headers, project_id, second, version_of=dataset_id)
        changed = await client.patch(f"/api/datasets/{dataset_id}", json={"key_columns": ["id"]}, headers=headers)
        assert changed.status == 200, await changed.text()

        async def timed() -> tuple[float, dict]:
            started = time.perf_counter()
            response = await client.get(f"/api/datasets/{dataset_id}/diff", headers=headers)
            body = await response.json()
            assert response.status == 200, body
            return time.perf_counter() - started, body

        first_time, body = await timed()  # fetches both Parquet files into the instance's cache
        api = statistics.median([(await timed())[0] for _ in range(rounds)])
        keyed = body["rows"]
        settings = server.app[SETTINGS].sql
        versions = (await (await client.get(f"/api/datasets/{dataset_id}/versions", headers=headers)).json())
        cache = folder / "labhub" / "cache"
        paths = [next(cache.glob(f"{v['version_id']}-*.parquet")) for v in versions]
        request = {
            "views": [{"name": "old", "path": str(paths[0])}, {"name": "new", "path": str(paths[1])}],
            "keys": [{"name": "id", "cast": None}],
            "columns": [{"name": c, "cast": None} for c in ("time", "run", "speed", "pressure")],
            "limit": 100, "threads": settings.threads, "memory_bytes": settings.memory_bytes, "timeout_s": 600,
        }  # fmt: skip
        alone_runs = []
        for _ in range(rounds):
            started = time.perf_counter()
            alone_answer = diff_rows(request)
            alone_runs.append(time.perf_counter() - started)
        alone = statistics.median(alone_runs)
        assert alone_answer["changed"]["count"] == keyed["changed"]["count"]
        print(f"diff of {rows:,} rows (key id): {keyed['added']['count']:,} added, {keyed['removed']['count']:,} "
              f"removed, {keyed['changed']['count']:,} changed; 1 column added")  # fmt: skip
        print(f"GET /api/datasets/{{id}}/diff median {api:.2f} s (first, fetching both files: {first_time:.2f} s); "
              f"the row comparison alone in this process {alone:.2f} s -> {api / alone:.2f}x (target: under 5 s)")
        await client.close()


def main() -> None:
    options = rows_and_rounds(__doc__)
    with tempfile.TemporaryDirectory(prefix="labhub-diff-bench-") as tmp:
        asyncio.run(run(Path(tmp), options.rows, options.rounds))


if __name__ == "__main__":
    main()
