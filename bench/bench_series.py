"""Charts over millions of rows: the series route's answer time, and what summaries cost at ingestion.

1. Series answer time at 1M, 10M and 100M rows (generated here, written as Parquet with their summary
   in one streaming pass, never committed): whole views and zooms of 10 %, 1 %, 0.1 % and 0.001 % of
   the range at random places (1,000 points, the JSON encoding included), p50 and p95 per size; the
   baseline in the same run is what a server without summaries would do for a whole view: read the
   y and x columns of the Parquet file and reduce them to the same 1,000 groups. Target: p95 under
   50 ms at 100M rows, and no growth with size.
2. Summary cost at ingestion: the ~200 MB numeric CSV of bench_ingest.py through the CSV ingestion
   worker function, with summaries and with the summary builder replaced by one that does nothing,
   alternating, each run in a fresh process (time and peak RSS). Target: at most 10 % more time,
   peak memory unchanged.

    .venv/bin/python bench/bench_series.py                 # both; 100M rows take a few minutes
    .venv/bin/python bench/bench_series.py --sizes 1000000,10000000 --skip cost
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_ingest import numeric_csv  # noqa: E402

from workers.series import SeriesSource, json_values  # noqa: E402
from workers.summary import SummaryBuilder, reduce_rows  # noqa: E402

CHUNK = 1_000_000
ROW_GROUP = 65_536  # row groups as ingestion writes them (its batches: 27,000-65,000 rows of a CSV)
POINTS = 1000


def generate(folder: Path, rows: int) -> tuple[Path, Path, float]:
    """A sorted time in seconds and a noisy sine with spikes, written in chunks with its summary."""
    rng = np.random.default_rng(rows)
    schema = pa.schema([("t", pa.float64()), ("v", pa.float64())])
    parquet = folder / f"series-{rows}.parquet"
    builder = SummaryBuilder(schema)
    summary_s = 0.0
    with pq.ParquetWriter(str(parquet), schema, compression="zstd", compression_level=1) as writer:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            t = (start + np.arange(n)) * 0.001
            v = np.sin(t / 60) * 10 + rng.normal(scale=0.5, size=n)
            v[rng.integers(0, n, 3)] = rng.choice([-500.0, 500.0], 3)
            batch = pa.record_batch([t, v], schema=schema)
            writer.write_batch(batch, row_group_size=ROW_GROUP)
            began = time.perf_counter()
            builder.add(batch)
            summary_s += time.perf_counter() - began
    began = time.perf_counter()
    table = builder.finish()
    summary_s += time.perf_counter() - began
    summary = folder / f"series-{rows}.summary.parquet"
    pq.write_table(table, str(summary), compression="zstd")
    return parquet, summary, summary_s


def answer_ms(source: SeriesSource, low: float | None, high: float | None) -> float:
    began = time.perf_counter()
    answer = source.answer("t", ["v"], low, high, POINTS, {"t", "v"})
    field = source.schema.field("v")
    json.dumps([{"x": json_values(s["x"], None), "y": json_values(s["y"], field)} for s in answer["series"]])
    return (time.perf_counter() - began) * 1000


def whole_without_summary_ms(parquet: Path) -> float:
    """A whole view without a summary: read both columns and reduce them to POINTS groups."""
    began = time.perf_counter()
    table = pq.read_table(str(parquet), columns=["t", "v"])
    v = table.column("v").to_numpy()
    begins = np.linspace(0, len(v), POINTS, endpoint=False).astype(np.int64)
    reduce_rows(v, begins, np.diff(np.append(begins, len(v))), 0)
    return (time.perf_counter() - began) * 1000


def series_part(sizes: list[int]) -> None:
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory(prefix="labhub-series-bench-") as tmp:
        for rows in sizes:
            parquet, summary, summary_s = generate(Path(tmp), rows)
            source = SeriesSource(summary, parquet)
            end = (rows - 1) * 0.001
            answer_ms(source, None, None)  # the first answer reads the summary's columns
            whole = [answer_ms(source, None, None) for _ in range(20)]
            zooms = []
            for share in (0.1, 0.01, 0.001, 0.00001):
                for _ in range(20):
                    low = rng.uniform(0, end * (1 - share))
                    zooms.append(answer_ms(source, low, low + end * share))
            every = whole + zooms
            baseline = statistics.median(whole_without_summary_ms(parquet) for _ in range(3))
            p50, p95 = np.percentile(every, 50), np.percentile(every, 95)
            print(f"{rows:>11,} rows: series p50 {p50:.1f} ms, p95 {p95:.1f} ms (whole view p50 "
                  f"{statistics.median(whole):.1f} ms, zooms p95 {np.percentile(zooms, 95):.1f} ms); "
                  f"without a summary a whole view takes {baseline:.0f} ms -> {statistics.median(whole) / baseline:.4f}x; "
                  f"summary {summary.stat().st_size / 1024**2:.1f} MiB, built in {summary_s:.2f} s "
                  f"(target p95 < 50 ms at 100M)", flush=True)  # fmt: skip
            parquet.unlink()
            summary.unlink()


def _ingest(path: str, work: str, summaries: bool, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    from workers.ingest import common
    from workers.ingest.run import ingest_file
    from workers.worker import Reporter

    if not summaries:

        class NoSummary(SummaryBuilder):
            def add(self, batch: pa.RecordBatch) -> None:
                return None

        common.SummaryBuilder = NoSummary  # type: ignore[misc]
    began = time.perf_counter()
    ingest_file({"path": path, "file_name": "numbers.csv", "work_dir": work, "options": {}, "limits": None},
                Reporter("bench", 1))  # fmt: skip
    took = time.perf_counter() - began
    out.put((took, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024))


def cost_part(csv_mib: int, rounds: int) -> None:
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="labhub-summary-cost-") as tmp:
        folder = Path(tmp)
        csv = folder / "numbers.csv"
        rows = numeric_csv(csv, csv_mib)
        results: dict[bool, list[tuple[float, int]]] = {True: [], False: []}
        for round_ in range(rounds):
            for summaries in (True, False) if round_ % 2 == 0 else (False, True):
                work = folder / f"work-{round_}-{summaries}"
                work.mkdir()
                queue = context.Queue()
                process = context.Process(target=_ingest, args=(str(csv), str(work), summaries, queue))
                process.start()
                results[summaries].append(queue.get())
                process.join()
        with_s = statistics.median(t for t, _ in results[True])
        without_s = statistics.median(t for t, _ in results[False])
        peak_with = max(m for _, m in results[True]) / 1024**2
        peak_without = max(m for _, m in results[False]) / 1024**2
        print(f"{csv.stat().st_size / 1024**2:.0f} MB CSV, {rows:,} rows x 8 columns: ingestion with summaries median "
              f"{with_s:.2f} s, without {without_s:.2f} s -> {with_s / without_s:.3f}x (target <= 1.10x); "
              f"peak RSS {peak_with:.0f} MiB with, {peak_without:.0f} MiB without "
              f"(runs with: {', '.join(f'{t:.2f}' for t, _ in results[True])}; "
              f"without: {', '.join(f'{t:.2f}' for t, _ in results[False])})", flush=True)  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000,100000000")
    parser.add_argument("--csv-mib", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--skip", default="", help="comma-separated: series, cost")
    arguments = parser.parse_args()
    skip = set(filter(None, arguments.skip.split(",")))
    if "series" not in skip:
        series_part([int(size) for size in arguments.sizes.split(",")])
    if "cost" not in skip:
        cost_part(arguments.csv_mib, arguments.rounds)
