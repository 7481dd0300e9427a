"""Streaming: a CSV larger than a worker's whole memory budget is ingested by a real pool worker."""

from __future__ import annotations

import pyarrow.parquet as pq

from workers.ingest.run import ingest_file
from workers.pool import WorkerPool

BUDGET = 768 * 1024 * 1024  # RLIMIT_AS of the worker: address space, so every byte it maps counts


def write_csv(path, target_bytes: int) -> int:
    block = "".join(
        f"{i},{i * 0.25:.2f},{(i * 7919) % 1000},sensor-{i % 17}\n" for i in range(100_000)
    ).encode()
    rows = 0
    with path.open("wb") as handle:
        handle.write(b"n,value,bucket,sensor\n")
        while handle.tell() < target_bytes:
            handle.write(block)
            rows += 100_000
    return rows


def test_a_csv_larger_than_the_worker_budget_streams_through(tmp_path):
    path = tmp_path / "big.csv"
    rows = write_csv(path, BUDGET + 80 * 1024 * 1024)
    assert path.stat().st_size > BUDGET
    pool = WorkerPool(1, BUDGET)
    pool.start()
    try:
        _, future = pool.submit(
            ingest_file, "streaming-test", 1,
            {"path": str(path), "file_name": "big.csv", "work_dir": str(tmp_path / "work"), "options": {}, "limits": None},
        )  # fmt: skip
        result = future.result(timeout=600)
    finally:
        pool.shutdown()
    [dataset] = result["datasets"]
    assert dataset["row_count"] == rows
    assert [c["type"] for c in dataset["schema"]] == ["integer", "number", "integer", "text"]
    assert dataset["stats"]["bucket"]["max"] == 999
    assert dataset["stats"]["sensor"]["distinct"] == 17
    assert pq.ParquetFile(dataset["parquet_path"]).metadata.num_rows == rows
