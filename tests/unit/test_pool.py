"""Pool sizing from the host, and the rate limit on progress events."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from workers import worker
from workers.pool import choose_size
from workers.worker import JobCancelled, Reporter

GIB = 1024**3


@pytest.mark.parametrize(
    ("cpus", "available", "expected"),
    [
        (2, 24 * GIB, 2),  # this machine: the CPUs are the limit
        (16, 24 * GIB, 8),  # capped by max_workers
        (16, 6 * GIB, 3),  # floor(6 GiB * 0.5 / 1 GiB): memory is the limit
        (4, 1 * GIB, 1),  # never below min_workers, even when memory says 0
    ],
)
def test_pool_size_is_clamped_min_of_cpus_and_memory(cpus, available, expected):
    sizing = choose_size(
        cpu_count=cpus, available_bytes=available, ram_fraction=0.5, worker_memory_bytes=GIB,
        min_workers=1, max_workers=8,
    )  # fmt: skip
    assert sizing.size == expected
    assert sizing.cpu_count == cpus
    assert sizing.available_bytes == available


def test_reporter_rate_limits_and_always_reports_stage_changes_and_the_end(monkeypatch, tmp_path):
    sent = []
    monkeypatch.setattr(worker, "_send", sent.append)
    monkeypatch.setattr(worker, "_control_dir", tmp_path)
    reporter = Reporter("job1", 1)
    for i in range(1000):
        reporter.progress("parse", i, 1000)
    reporter.progress("parse", 1000, 1000)
    reporter.progress("stats", 0, 10)
    stages = [event[3]["stage"] for event in sent]
    assert len(sent) <= 5
    assert sent[0][3]["done"] == 0
    assert sent[-2][3]["done"] == 1000
    assert stages[-1] == "stats"


def test_reporter_stops_a_cancelled_job(monkeypatch, tmp_path):
    monkeypatch.setattr(worker, "_send", lambda _event: None)
    monkeypatch.setattr(worker, "_control_dir", tmp_path)
    reporter = Reporter("job2", 1)
    reporter.progress("parse", 1, 10)
    (tmp_path / "job2").touch()
    with pytest.raises(JobCancelled):
        reporter.progress("parse", 2, 10)


def test_the_server_leaves_worker_only_libraries_to_the_workers():
    # jobs name their functions ("module:function"); a worker imports them when it runs one
    probe = "import sys, server; print(sorted(m for m in WORKER_ONLY if m in sys.modules))"
    worker_only = ["matplotlib", "scipy", "h5py", "fastexcel", "python_calamine", "workers.plots"]
    done = subprocess.run(
        [sys.executable, "-c", f"WORKER_ONLY = {worker_only!r}\n{probe}"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    assert worker.resolve("workers.plots:render_plot").__name__ == "render_plot"
    assert worker.resolve(choose_size) is choose_size


MAIN_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
import aiohttp  # the program's own import: its workers must not repeat it
from workers.pool import WorkerPool

if __name__ == "__main__":
    pool = WorkerPool(1, 1024**3)
    pool.start()
    _, future = pool.submit("tests.jobkinds:loaded_modules", "job", 1, {{"names": ["aiohttp", "workers.plots"]}})
    print(json.dumps(future.result()))
    pool.shutdown()
"""


def test_workers_do_not_run_the_program_that_started_the_pool(tmp_path):
    # multiprocessing re-runs a main script in every worker (server.py: ~55 MB each) unless told not to
    script = tmp_path / "program.py"
    script.write_text(MAIN_SCRIPT.format(root=str(Path(__file__).resolve().parents[2])))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=300
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"aiohttp": False, "workers.plots": True}
