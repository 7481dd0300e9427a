"""Ingestion benchmarks, each against a baseline measured in the same run.

1. A ~200 MB numeric CSV through LabHub end to end (POST -> job succeeded: upload, spool, raw
   object, parse, statistics, Parquet, commit) vs two floors measured in the same run:
   pyarrow.csv.read_csv + pyarrow.parquet.write_table of the same file in this process (target: at
   most 2.0x), and the same plus putting the raw file and the Parquet file into an embedded S3
   (rclone, LabHub's own S3 client settings and part size; target: at most 1.3x). Meanwhile the peak PSS of LabHub's
   processes (server, forkserver, pool workers; target at most 600 MB), each process kind's peak
   beside it (the embedded MongoDB, Redis and S3 included).
2. A 100,000-row, 5-column workbook through LabHub end to end vs the floor: fastexcel reading the
   sheet into Arrow + pyarrow.parquet.write_table, in this process. Target: at most 2.0x.
5. Many small files: 120 CSVs of ~50 KB posted by 24 concurrent clients until every job is done
   (files/s), each client watching its job over SSE as a frontend does, then again polling
   GET /api/jobs/{id} five times a second; with the CPU seconds each process of the server's tree
   spent (where a job's fixed cost goes: the server's loop, the embedded MongoDB/Redis/S3, the pool
   workers), and per file the server's MongoDB commands, Redis round trips, S3 requests and pool
   tasks (its labhub_backend_calls and labhub_pool_tasks metrics; target at most 6 MongoDB commands).
3. Worker peak memory while a pool worker ingests a CSV twice its memory budget.
4. HDF5 and TDMS files twice a worker's memory budget through a pool worker (time and peak memory)
   vs the floor: h5py / npTDMS reading every column whole + pyarrow.parquet.write_table, in this
   process (which needs the whole file in memory; the worker must not).

    ./labhub bench
    .venv/bin/python bench/bench_ingest.py --csv-mib 200 --xlsx-rows 100000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import S3_KEY, S3_SECRET, backend_calls, calls_between, start_server, wait_ready  # noqa: E402

from ops.children import free_port  # noqa: E402
from workers.ingest.run import ingest_file  # noqa: E402
from workers.pool import WorkerPool  # noqa: E402


def numeric_csv(path: Path, target_mib: int) -> int:
    import numpy as np

    rng = np.random.default_rng(7)
    block = rng.normal(size=(100_000, 8))
    text = "\n".join(",".join(f"{v:.6f}" for v in row) for row in block).encode() + b"\n"
    rows = 0
    with path.open("wb") as handle:
        handle.write(("time," + ",".join(f"sensor_{i}" for i in range(7)) + "\n").encode())
        while handle.tell() < target_mib * 1024 * 1024:
            handle.write(text)
            rows += 100_000
    return rows


def workbook(path: Path, rows: int) -> None:
    import datetime as dt

    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("data")
    sheet.append(["time", "speed", "pressure", "temperature", "label"])
    start = dt.datetime(2024, 1, 1)  # noqa: DTZ001 - Excel has no time zones
    for i in range(rows):
        sheet.append(
            [start + dt.timedelta(seconds=i), i * 0.5, 1013 - i * 0.001, 20 + (i % 100) * 0.1, f"run-{i % 7}"]
        )
    book.save(path)


def baseline_csv(path: Path, out: Path) -> float:
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    started = time.perf_counter()
    pq.write_table(pacsv.read_csv(path), out)
    return time.perf_counter() - started


async def baseline_csv_stored(path: Path, out: Path, data_dir: Path) -> float:
    """The floor with storage: put the raw file into the embedded S3, pyarrow read_csv +
    write_table, put the Parquet file into the same S3 (LabHub's own ObjectStore with its client
    settings and part size, no hashing), one after the other as LabHub does them."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from domain.core.settings import S3Settings, UploadSettings
    from domain.infra.localfiles import file_chunks
    from domain.infra.objects import open_objects
    from ops.embedded import EmbeddedServices

    services = EmbeddedServices(data_dir, s3_access_key=S3_KEY, s3_secret_key=S3_SECRET)
    services.spawn()
    try:
        endpoints = await asyncio.to_thread(services.wait_ready)
        part, region = UploadSettings().part_size_bytes, S3Settings().region
        async with open_objects(endpoints.s3_endpoint_url, S3_KEY, S3_SECRET, "floor", region) as store:

            async def put(key: str, source: Path) -> None:
                await store.put_stream(
                    key, file_chunks(source), max_bytes=1 << 40, part_size=part, known_sha256="-"
                )

            started = time.perf_counter()
            await put("raw/numbers.csv", path)
            await asyncio.to_thread(lambda: pq.write_table(pacsv.read_csv(path), out))
            await put("datasets/numbers.parquet", out)
            return time.perf_counter() - started
    finally:
        services.stop()


def baseline_excel(path: Path, out: Path) -> float:
    import fastexcel
    import pyarrow as pa
    import pyarrow.parquet as pq

    started = time.perf_counter()
    sheet = fastexcel.read_excel(path).load_sheet(0)
    pq.write_table(pa.Table.from_batches([sheet.to_arrow()]), out)
    return time.perf_counter() - started


async def labhub_ingest(
    base: str,
    headers: dict[str, str],
    project_id: str,
    path: Path,
    http: aiohttp.ClientSession,
    poll_s: float = 0.02,
    watch: str = "poll",
) -> float:
    started = time.perf_counter()
    form = aiohttp.FormData()
    with path.open("rb") as handle:
        form.add_field("files", handle, filename=path.name, content_type="application/octet-stream")
        async with http.post(
            f"{base}/api/projects/{project_id}/ingestions", data=form, headers=headers
        ) as response:
            batch = await response.json()
            assert response.status == 202, batch
    job_id = batch["jobs"][0]["id"]
    if watch == "sse":  # as a frontend does: the job's event stream, which ends after the job does
        async with http.get(f"{base}/api/jobs/{job_id}/events", headers=headers) as response:
            assert response.status in (200, 204), response.status
            await response.read()
    while True:
        async with http.get(f"{base}/api/jobs/{job_id}", headers=headers) as response:
            job = await response.json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        await asyncio.sleep(poll_s)
    assert job["status"] == "succeeded", job
    return time.perf_counter() - started


async def run_labhub(data_dir: Path, files: list[Path]) -> list[tuple[float, str]]:
    """Per file: seconds end to end, and the memory report while it was ingested."""
    timings = []
    async with labhub_session(data_dir) as (base, headers, project_id, http, server):
        for path in files:
            with MemorySampler(server.pid) as memory:
                seconds = await labhub_ingest(base, headers, project_id, path, http)
            timings.append((seconds, memory.report()))
    return timings


async def run_small_files(
    data_dir: Path, files: list[Path], clients: int, watch: str
) -> tuple[float, dict[str, float], str]:
    """Seconds until every file's job is done, CPU seconds per process kind meanwhile, and the
    server's calls to its services per file (the clients' own requests included)."""
    async with labhub_session(data_dir) as (base, headers, project_id, http, server):
        tree = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
        calls = await backend_calls(http, base)
        before = {p.pid: _cpu(p) for p in tree}
        queue: asyncio.Queue[Path] = asyncio.Queue()
        for path in files:
            queue.put_nowait(path)

        async def client() -> None:
            while not queue.empty():
                # polled 5 times a second (24 clients asking 50 times a second would be most of the
                # load), or watched over SSE as a frontend does
                await labhub_ingest(
                    base, headers, project_id, queue.get_nowait(), http, poll_s=0.2, watch=watch
                )

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        elapsed = time.perf_counter() - started
        spent: dict[str, float] = {}
        for process in [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]:
            kind = _kind(process)
            spent[kind] = spent.get(kind, 0.0) + _cpu(process) - before.get(process.pid, 0.0)
        return elapsed, spent, calls_between(calls, await backend_calls(http, base), len(files))


def _cpu(process: psutil.Process) -> float:
    try:
        times = process.cpu_times()
    except psutil.Error:
        return 0.0
    return times.user + times.system


def _kind(process: psutil.Process) -> str:
    try:
        command = " ".join(process.cmdline())
        parent = " ".join(process.parent().cmdline()) if process.parent() else ""
    except psutil.Error:
        return "gone"
    if "forkserver" in command:
        return "pool workers" if "forkserver" in parent else "forkserver"
    for needle, kind in (("server.py", "server"), ("secantus", "mongodb (secantusdb)"), ("redis", "redis"),
                         ("rclone", "s3 (rclone)"), ("resource_tracker", "resource tracker")):  # fmt: skip
        if needle in command:
            return kind
    return command[:40]


LABHUB_PROCESSES = {"server", "forkserver", "pool workers"}  # LabHub's own; the embedded services beside


class MemorySampler:
    """Peak PSS (proportional set size: a page shared by n processes counts 1/n in each, so shared
    pages count once in a sum) of the server's process tree, sampled every 0.1 s in a thread: the
    peak of LabHub's own processes summed, and each kind's peak."""

    def __init__(self, pid: int) -> None:
        self._root = psutil.Process(pid)
        self.peak_total = 0
        self.peak_by_kind: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._cpu_before = {p.pid: _cpu(p) for p in [self._root, *self._root.children(recursive=True)]}
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_by_kind: dict[str, float] = {}
        for process in [self._root, *self._root.children(recursive=True)]:
            kind = _kind(process)
            spent = _cpu(process) - self._cpu_before.get(process.pid, 0.0)
            self.cpu_by_kind[kind] = self.cpu_by_kind.get(kind, 0.0) + spent

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            by_kind: dict[str, int] = {}
            for process in [self._root, *self._root.children(recursive=True)]:
                try:
                    pss = process.memory_full_info().pss
                except psutil.Error:
                    continue
                kind = _kind(process)
                by_kind[kind] = by_kind.get(kind, 0) + pss
            total = sum(v for k, v in by_kind.items() if k in LABHUB_PROCESSES)
            self.peak_total = max(self.peak_total, total)
            for kind, pss in by_kind.items():
                self.peak_by_kind[kind] = max(self.peak_by_kind.get(kind, 0), pss)

    def report(self) -> str:
        kinds = sorted(self.peak_by_kind.items(), key=lambda kv: -kv[1])
        return (f"peak PSS of LabHub (server + forkserver + pool workers) {self.peak_total / 1e6:.0f} MB (target <= 600 MB); "
                "each kind's peak: " + ", ".join(f"{k} {v / 1e6:.0f} MB" for k, v in kinds) + "; CPU s: "
                + ", ".join(f"{k} {v:.1f}" for k, v in sorted(self.cpu_by_kind.items(), key=lambda kv: -kv[1])))  # fmt: skip


@asynccontextmanager
async def labhub_session(
    data_dir: Path,
) -> AsyncIterator[tuple[str, dict[str, str], str, aiohttp.ClientSession, Any]]:
    port = free_port()
    server = start_server(data_dir, port, LABHUB_AUTH_ARGON2_MEMORY_KIB="8192")
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as http:
            await wait_ready(http, base)
            account = {
                "email": "ingest-bench@lab.example",
                "password": "ingest bench password",
                "name": "Bench",
            }
            await http.post(f"{base}/api/auth/register", json=account)
            login = await http.post(
                f"{base}/api/auth/login", json={k: account[k] for k in ("email", "password")}
            )
            headers = {"Authorization": f"Bearer {(await login.json())['access_token']}"}
            project = await (
                await http.post(f"{base}/api/projects", json={"name": "bench"}, headers=headers)
            ).json()
            yield base, headers, project["id"], http, server
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)


def worker_peak(path: Path, work: Path, budget: int) -> tuple[float, int, int]:
    pool = WorkerPool(1, budget)
    pool.start()
    peak_rss, peak_vms = 0, 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_rss, peak_vms
        while not stop.is_set():
            for pid in pool.worker_pids():
                try:
                    info = psutil.Process(pid).memory_info()
                except psutil.NoSuchProcess:
                    continue
                peak_rss, peak_vms = max(peak_rss, info.rss), max(peak_vms, info.vms)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        _, future = pool.submit(ingest_file, "bench", 1, {"path": str(path), "file_name": path.name, "work_dir": str(work),
                                                           "options": {}, "limits": None})  # fmt: skip
        future.result()
    finally:
        stop.set()
        sampler.join()
        pool.shutdown()
    return time.perf_counter() - started, peak_rss, peak_vms


ARRAY_COLUMNS = ("time", "u", "v", "p")


def array_files(folder: Path, target_mib: int) -> tuple[Path, Path, int]:
    """An HDF5 file (a group of 4 float64 arrays) and a TDMS file (a group of 4 waveform channels
    written as a DAQ does, a segment every 2M samples), each about target_mib."""
    import h5py
    import numpy as np
    from nptdms import ChannelObject, TdmsWriter

    per_segment = 1 << 21
    segments = max(1, target_mib * 1024 * 1024 // (per_segment * 8 * len(ARRAY_COLUMNS)))
    rows = segments * per_segment
    h5_path, tdms_path = folder / "probes.h5", folder / "daq.tdms"
    with h5py.File(h5_path, "w") as h5, TdmsWriter(tdms_path) as tdms:
        columns = {
            n: h5.create_dataset(f"probe/{n}", shape=(rows,), dtype="f8", chunks=(1 << 16,))
            for n in ARRAY_COLUMNS
        }
        for segment in range(segments):
            start = segment * per_segment
            values = np.arange(start, start + per_segment, dtype=np.float64)
            block = {n: np.sin(values * (i + 1) * 1e-5) for i, n in enumerate(ARRAY_COLUMNS)}
            for name, data in block.items():
                columns[name][start : start + per_segment] = data
            tdms.write_segment(
                [ChannelObject("DAQ", n, d, properties={"wf_increment": 1e-4}) for n, d in block.items()]
            )
    return h5_path, tdms_path, rows


def baseline_arrays(path: Path, out: Path) -> float:
    import h5py
    import pyarrow as pa
    import pyarrow.parquet as pq
    from nptdms import TdmsFile

    started = time.perf_counter()
    if path.suffix == ".h5":
        with h5py.File(path) as h5:
            table = pa.table({n: h5[f"probe/{n}"][()] for n in ARRAY_COLUMNS})
    else:
        group = TdmsFile.read(path)["DAQ"]
        table = pa.table({c.name: c[:] for c in group.channels()})
    pq.write_table(table, out)
    return time.perf_counter() - started


def main(csv_mib: int, xlsx_rows: int, budget_mib: int, skip: set[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="labhub-ingest-bench-") as tmp:
        folder = Path(tmp)
        csv_path, xlsx_path = folder / "numbers.csv", folder / "book.xlsx"
        files = []
        if "csv" not in skip:
            rows = numeric_csv(csv_path, csv_mib)
            files.append(csv_path)
        if "excel" not in skip:
            workbook(xlsx_path, xlsx_rows)
            files += [xlsx_path] * 3  # best of 3, as the floor
        timings: dict[str, list[tuple[float, str]]] = {}
        if files:
            for path, timing in zip(files, asyncio.run(run_labhub(folder / "labhub", files)), strict=True):
                timings.setdefault(path.name, []).append(timing)
        if "csv" not in skip:
            base = baseline_csv(csv_path, folder / "baseline.parquet")
            stored = asyncio.run(baseline_csv_stored(csv_path, folder / "stored.parquet", folder / "floor-services"))
            ours, memory = timings[csv_path.name][0]
            size = csv_path.stat().st_size / 1e6
            print(f"1. CSV {size:.0f} MB ({rows} rows × 8 columns): labhub end to end {ours:.2f} s ({size / ours:.0f} MB/s); "
                  f"pyarrow read_csv + write_table {base:.2f} s -> {ours / base:.2f}x (target <= 2.0x); "
                  f"the same with the raw file and the Parquet put into the embedded S3 {stored:.2f} s -> "
                  f"{ours / stored:.2f}x (target <= 1.3x)")  # fmt: skip
            print(f"1m. memory while ingesting it: {memory}")
        if "excel" not in skip:
            base = min(baseline_excel(xlsx_path, folder / "floor.parquet") for _ in range(3))
            ours = min(seconds for seconds, _memory in timings[xlsx_path.name])
            print(f"2. workbook {xlsx_rows} rows × 5 columns: labhub end to end (best of 3) {ours:.2f} s ({xlsx_rows / ours:.0f} rows/s), "
                  f"floor (fastexcel + write_table, best of 3) {base:.2f} s -> {ours / base:.2f}x (target <= 2.0x)")  # fmt: skip
        if "memory" not in skip:
            budget = budget_mib * 1024 * 1024
            big = folder / "twice.csv"
            numeric_csv(big, 2 * budget_mib)
            csv_path.unlink(missing_ok=True)
            seconds, rss, vms = worker_peak(big, folder / "work", budget)
            print(f"3. CSV of {big.stat().st_size / 2**20:.0f} MiB in a worker with a {budget_mib} MiB budget: done in "
                  f"{seconds:.1f} s, peak RSS {rss / 2**20:.0f} MiB ({rss / budget:.2f} of the budget), "
                  f"peak address space {vms / 2**20:.0f} MiB")  # fmt: skip
        if "arrays" not in skip:
            budget = budget_mib * 1024 * 1024
            for path in array_files(folder, 2 * budget_mib)[:2]:
                seconds, rss, _ = worker_peak(path, folder / f"work-{path.suffix[1:]}", budget)
                base = baseline_arrays(path, folder / "baseline.parquet")
                print(f"4. {path.suffix[1:].upper()} of {path.stat().st_size / 2**20:.0f} MiB in a worker with a {budget_mib} MiB "
                      f"budget: {seconds:.1f} s, peak RSS {rss / 2**20:.0f} MiB ({rss / budget:.2f} of the budget); floor "
                      f"(read whole + write_table) {base:.1f} s -> {seconds / base:.2f}x")  # fmt: skip
                path.unlink()
        if "small" not in skip:
            small = []
            for i in range(120):
                path = folder / "small" / f"run-{i:03d}.csv"
                path.parent.mkdir(exist_ok=True)
                path.write_text(
                    "t,u,v\n"
                    + "".join(
                        f"{j * 0.01:.2f},{j * 0.5 + i:.3f},{(j * 7919) % 1000 / 7:.5f}\n" for j in range(2200)
                    )
                )
            size = sum(p.stat().st_size for p in small or (folder / "small").iterdir()) / 120 / 1000
            for watch, how in (
                ("sse", "each watching its job over SSE"),
                ("poll", "each polling its job 5x/s"),
            ):
                seconds, spent, calls = asyncio.run(
                    run_small_files(
                        folder / f"labhub-small-{watch}", sorted((folder / "small").iterdir()), 24, watch
                    )
                )
                print(f"5. 120 CSVs of {size:.0f} KB, 24 concurrent clients {how}: {seconds:.1f} s, {120 / seconds:.1f} files/s (target >= 20); "
                      "CPU s per process: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(spent.items(), key=lambda kv: -kv[1])))  # fmt: skip
                print(f"5c. per file: {calls}")
        print(json.dumps({"csv_mib": csv_mib, "xlsx_rows": xlsx_rows, "budget_mib": budget_mib}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--csv-mib", type=int, default=200)
    parser.add_argument("--xlsx-rows", type=int, default=100_000)
    parser.add_argument("--budget-mib", type=int, default=1024)
    parser.add_argument(
        "--skip", action="append", default=[], choices=["csv", "excel", "memory", "arrays", "small"]
    )
    options = parser.parse_args()
    main(options.csv_mib, options.xlsx_rows, options.budget_mib, set(options.skip))
