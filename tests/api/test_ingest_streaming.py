"""Streaming: a CSV larger than a worker's whole memory budget is ingested by a real pool worker."""

from __future__ import annotations

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from nptdms import ChannelObject, TdmsWriter

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


def ingest_in_a_worker(path, work_dir):
    """The file through a real pool worker whose address space is capped at BUDGET."""
    pool = WorkerPool(1, BUDGET)
    pool.start()
    try:
        _, future = pool.submit(
            ingest_file, "streaming-test", 1,
            {"path": str(path), "file_name": path.name, "work_dir": str(work_dir), "options": {}, "limits": None},
        )  # fmt: skip
        return future.result(timeout=900)
    finally:
        pool.shutdown()


def test_a_csv_larger_than_the_worker_budget_streams_through(tmp_path):
    path = tmp_path / "big.csv"
    rows = write_csv(path, BUDGET + 80 * 1024 * 1024)
    assert path.stat().st_size > BUDGET
    [dataset] = ingest_in_a_worker(path, tmp_path / "work")["datasets"]
    assert dataset["row_count"] == rows
    assert [c["type"] for c in dataset["schema"]] == ["integer", "number", "integer", "text"]
    assert dataset["stats"]["bucket"]["max"] == 999
    assert dataset["stats"]["sensor"]["distinct"] == 17
    assert pq.ParquetFile(dataset["parquet_path"]).metadata.num_rows == rows


def write_hdf5(path, target_bytes: int) -> int:
    rows = target_bytes // 16
    with h5py.File(path, "w") as handle:
        time = handle.create_dataset("probe/time", shape=(rows,), dtype="f8", chunks=(1 << 16,))
        speed = handle.create_dataset("probe/u", shape=(rows,), dtype="f8", chunks=(1 << 16,))
        speed.attrs["units"] = "m/s"
        step = 1 << 22
        for start in range(0, rows, step):
            stop = min(rows, start + step)
            time[start:stop] = np.arange(start, stop) * 1e-3
            speed[start:stop] = np.sin(np.arange(start, stop) * 1e-4)
    return rows


def write_tdms(path, target_bytes: int) -> int:
    per_segment = 1 << 21  # a DAQ writes a segment every so often
    segments = target_bytes // (per_segment * 16) + 1
    with TdmsWriter(path) as writer:
        for segment in range(segments):
            values = np.arange(segment * per_segment, (segment + 1) * per_segment, dtype=np.float64)
            writer.write_segment([
                ChannelObject("DAQ", "strain", values, properties={"unit_string": "ue", "wf_increment": 1e-4}),
                ChannelObject("DAQ", "load", values * 0.5, properties={"unit_string": "kN", "wf_increment": 1e-4}),
            ])  # fmt: skip
    return segments * per_segment


@pytest.mark.parametrize(("name", "write", "columns"), [
    ("big.h5", write_hdf5, ["time", "u"]),
    ("big.tdms", write_tdms, ["time", "strain", "load"]),
])  # fmt: skip
def test_array_files_larger_than_the_worker_budget_stream_through(tmp_path, name, write, columns):
    path = tmp_path / name
    rows = write(path, BUDGET + 80 * 1024 * 1024)
    assert path.stat().st_size > BUDGET
    [dataset] = ingest_in_a_worker(path, tmp_path / "work")["datasets"]
    assert [c["name"] for c in dataset["schema"]] == columns
    assert dataset["row_count"] == rows
    assert pq.ParquetFile(dataset["parquet_path"]).metadata.num_rows == rows
