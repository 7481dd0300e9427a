"""SQL over datasets, measured against DuckDB itself in the same run.

(1) A group-by over a 1,000,000-row dataset through POST /api/sql (JSON, end to end: HTTP, the
    statement checked, the tables resolved, the query lane) against DuckDB in this process on the same
    Parquet file (the instance's cached copy), same thread count; median of --rounds. Target <= 1.3x.
(2) Small queries (SELECT … LIMIT 10) end to end: p50 and p95 over 50. Target p50 < 50 ms.
(3) The group-by again while 10 ingestions are queued behind the jobs' pool (2 workers): median
    against (1)'s. Target <= 1.5x.
(4) The 41,723-column × 100-row CSV (IQSS/dataverse#9606's shape) ingested through the API: time, and
    the peak memory (RSS) of the worker processes while it ran. Target < 30 s.

    .venv/bin/python bench/bench_sql.py [--rows 1000000] [--rounds 5]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import duckdb  # noqa: E402
from aiohttp.test_utils import TestClient  # noqa: E402
from harness import client_sign_up, labhub_server, rows_and_rounds, wait_final  # noqa: E402

from handlers.keys import SETTINGS  # noqa: E402

GROUP_BY = ("SELECT run, avg(pressure) AS mean_pressure, max(speed) AS top_speed, count(*) AS n "
            "FROM {table} GROUP BY run ORDER BY run")  # fmt: skip
SMALL = "SELECT * FROM {table} LIMIT 10"
# the same rows, more work per row: what is left of the fixed cost per query as the work grows
HEAVIER = ("SELECT run, quantile_cont(pressure, [0.05, 0.5, 0.95]) AS pressure_quantiles, stddev(speed) AS sd, "
           "count(DISTINCT round(speed, 2)) AS speeds FROM {table} GROUP BY run ORDER BY run")  # fmt: skip


def write_csv(path: Path, rows: int, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    table = np.column_stack([
        np.arange(rows) * 0.001, rng.integers(0, 20, rows), rng.normal(10, 3, rows), rng.normal(101_325, 500, rows),
    ])  # fmt: skip
    with path.open("w") as handle:
        handle.write("time,run,speed,pressure\n")
        np.savetxt(handle, table, delimiter=",", fmt=["%.3f", "%d", "%.4f", "%.2f"])


def write_wide(path: Path, columns: int = 41_723, rows: int = 100) -> None:
    rng = np.random.default_rng(5)
    with path.open("w") as handle:
        handle.write(",".join(f"mz_{c}" for c in range(columns)) + "\n")
        for _ in range(rows):
            handle.write(",".join(f"{v:.4f}" for v in rng.random(columns)) + "\n")


async def upload(client: TestClient, headers: dict[str, str], project_id: str, path: Path, name: str) -> str:
    form = aiohttp.FormData()
    form.add_field("files", path.read_bytes(), filename=name, content_type="text/csv")
    batch = await (await client.post(f"/api/projects/{project_id}/ingestions", data=form, headers=headers)).json()
    return str(batch["jobs"][0]["id"])


async def timed_query(client: TestClient, headers: dict[str, str], sql: str) -> float:
    started = time.perf_counter()
    response = await client.post("/api/sql", json={"sql": sql}, headers=headers)
    body = await response.read()
    elapsed = time.perf_counter() - started
    assert response.status == 200, body[:300]
    return elapsed


def duckdb_alone(parquet: Path, rounds: int, threads: int, query: str = GROUP_BY) -> float:
    con = duckdb.connect(config={"threads": threads})
    sql = query.format(table=f"read_parquet('{parquet}')")
    con.execute(sql).fetchall()  # warm, like the API's first round
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        con.execute(sql).fetchall()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


class PeakRss:
    """The largest RSS any one worker process (a child of this process) reached while running."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.05):
            for child in me.children(recursive=True):
                try:
                    self.peak = max(self.peak, child.memory_info().rss)
                except psutil.Error:
                    continue

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def run(folder: Path, rows: int, rounds: int) -> None:
    big, small, wide = folder / "runs.csv", folder / "small.csv", folder / "wide.csv"
    write_csv(big, rows)
    write_csv(small, 300_000, seed=4)
    write_wide(wide)
    async with labhub_server(folder / "labhub", pool={"max_workers": 2, "min_workers": 2}) as server:
        client = TestClient(server)
        await client.start_server()
        headers, project_id = await client_sign_up(client, "sql@lab.example", "Bench")
        job = await wait_final(client, headers, await upload(client, headers, project_id, big, "runs.csv"))
        assert job["status"] == "succeeded", job
        table = "bench.runs"
        sql = GROUP_BY.format(table=table)
        await timed_query(client, headers, sql)  # the first query fetches the Parquet file into the cache
        idle = statistics.median([await timed_query(client, headers, sql) for _ in range(rounds)])
        parquet = next((folder / "labhub" / "cache").glob("*.parquet"))
        threads = server.app[SETTINGS].sql.threads
        alone = duckdb_alone(parquet, rounds, threads)
        print(f"(1) group-by over {rows:,} rows: POST /api/sql median {idle * 1000:.1f} ms, DuckDB alone on the same "
              f"Parquet {alone * 1000:.1f} ms -> {idle / alone:.2f}x (target <= 1.3x)")  # fmt: skip
        heavy = statistics.median([await timed_query(client, headers, HEAVIER.format(table=table)) for _ in range(rounds)])
        heavy_alone = duckdb_alone(parquet, rounds, threads, HEAVIER)
        print(f"    a heavier aggregate over the same rows (quantiles, distinct counts): API {heavy * 1000:.1f} ms, "
              f"DuckDB alone {heavy_alone * 1000:.1f} ms -> {heavy / heavy_alone:.2f}x")  # fmt: skip
        smalls = sorted([await timed_query(client, headers, SMALL.format(table=table)) for _ in range(50)])
        print(f"(2) SELECT * … LIMIT 10 end to end: p50 {smalls[24] * 1000:.1f} ms, p95 {smalls[47] * 1000:.1f} ms "
              "(target p50 < 50 ms)")  # fmt: skip
        queued = [await upload(client, headers, project_id, small, f"queued-{i}.csv") for i in range(10)]
        busy = []
        for _ in range(rounds):
            busy.append(await timed_query(client, headers, sql))
        states = [(await (await client.get(f"/api/jobs/{j}", headers=headers)).json())["status"] for j in queued]
        print(f"(3) the group-by with 10 ingestions queued ({states.count('running')} running, "
              f"{states.count('queued')} still queued after): median {statistics.median(busy) * 1000:.1f} ms -> "
              f"{statistics.median(busy) / idle:.2f}x its idle time (target <= 1.5x)")  # fmt: skip
        for job_id in queued:
            await wait_final(client, headers, job_id)
        with PeakRss() as peak:
            started = time.perf_counter()
            job = await wait_final(client, headers, await upload(client, headers, project_id, wide, "wide.csv"))
            took = time.perf_counter() - started
        assert job["status"] == "succeeded", job
        dataset = await (await client.get(f"/api/datasets/{job['result']['dataset_id']}", headers=headers)).json()
        print(f"(4) {len(dataset['schema']):,} columns x {dataset['row_count']} rows ({wide.stat().st_size / 2**20:.1f} MiB) "
              f"ingested with statistics for {len(dataset['stats']):,} columns in {took:.1f} s (target < 30 s); "
              f"peak worker RSS {peak.peak / 2**20:.0f} MiB")  # fmt: skip
        await client.close()


def main() -> None:
    options = rows_and_rounds(__doc__)
    with tempfile.TemporaryDirectory(prefix="labhub-sql-bench-") as tmp:
        asyncio.run(run(Path(tmp), options.rows, options.rounds))


if __name__ == "__main__":
    main()
