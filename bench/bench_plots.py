"""A 5-million-point line plot through LabHub end to end vs a plain matplotlib render of the same array.

In the same run: (1) POST /api/datasets/{id}/visualizations -> job succeeded, median of 3, against
a default `ax.plot(x, y)` + `savefig` of the same 5M points; target at most 0.15x (the plot is drawn
from the dataset's summary, workers/series.py).
(2) The share of pixels that differ between LabHub's decimated image and an exact render of all
5M points with the same figure (target under 1 %).

    .venv/bin/python bench/bench_plots.py
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from aiohttp.test_utils import TestClient  # noqa: E402
from harness import client_sign_up, labhub_server, wait_final  # noqa: E402
from PIL import Image  # noqa: E402

from workers import plots  # noqa: E402
from workers.worker import Reporter  # noqa: E402

SPEC = {"kind": "line", "x": "t", "y": ["v"], "width": 1000, "height": 600, "dpi": 100, "format": "png"}


def series(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return np.arange(n, dtype=np.float64), np.cumsum(rng.normal(size=n))


def plain_matplotlib(x: np.ndarray, y: np.ndarray, out: Path) -> float:
    started = time.perf_counter()
    figure, axes = plt.subplots(figsize=(10, 6), dpi=100)
    axes.plot(x, y)
    figure.savefig(out)
    plt.close(figure)
    return time.perf_counter() - started


async def labhub(csv: Path, data_dir: Path, rounds: int) -> tuple[list[float], bytes, Path]:
    async with labhub_server(data_dir) as server:
        client = TestClient(server)
        await client.start_server()
        headers, project_id = await client_sign_up(client, "plots@lab.example", "plots")
        import aiohttp

        form = aiohttp.FormData()
        form.add_field("files", csv.read_bytes(), filename="walk.csv", content_type="text/csv")
        batch = await (
            await client.post(f"/api/projects/{project_id}/ingestions", data=form, headers=headers)
        ).json()
        ingested = await wait_final(client, headers, batch["jobs"][0]["id"])
        dataset_id = ingested["result"]["dataset_id"]
        timings, image = [], b""
        for _ in range(rounds + 1):  # the first round fills the local Parquet cache
            started = time.perf_counter()
            created = await (
                await client.post(f"/api/datasets/{dataset_id}/visualizations", json=SPEC, headers=headers)
            ).json()
            job = await wait_final(client, headers, created["job_id"])
            timings.append(time.perf_counter() - started)
            assert job["status"] == "succeeded", job
            image = await (
                await client.get(f"/api/visualizations/{created['id']}/image", headers=headers)
            ).read()
        parquet = next(p for p in (data_dir / "cache").glob("*.parquet") if not p.name.endswith(".summary.parquet"))
        copy = data_dir / "walk.parquet"
        copy.write_bytes(parquet.read_bytes())
        await client.close()
        return timings[1:], image, copy


def pixel_difference(ours: bytes, parquet: Path, work: Path) -> float:
    exact_decimate = plots.decimate
    plots.decimate = lambda x, y, columns: np.arange(len(x))  # type: ignore[assignment]
    try:
        exact = plots.render_plot({"parquet_path": str(parquet), "spec": {**SPEC, "bins": 50}, "out_dir": str(work)},
                                  Reporter("bench", 1))  # fmt: skip
    finally:
        plots.decimate = exact_decimate
    a = np.asarray(Image.open(__import__("io").BytesIO(ours)).convert("RGB"), dtype=np.int16)
    b = np.asarray(Image.open(exact["path"]).convert("RGB"), dtype=np.int16)
    return float(np.any(np.abs(a - b) > 0, axis=2).mean())


def main(points: int, rounds: int) -> None:
    x, y = series(points)
    with tempfile.TemporaryDirectory(prefix="labhub-plot-bench-") as tmp:
        folder = Path(tmp)
        csv = folder / "walk.csv"
        with csv.open("w") as handle:
            handle.write("t,v\n")
            np.savetxt(handle, np.column_stack([x, y]), delimiter=",", fmt=["%d", "%.6f"])
        baseline = statistics.median(plain_matplotlib(x, y, folder / f"plain-{i}.png") for i in range(rounds))
        ours, image, parquet = asyncio.run(labhub(csv, folder / "labhub", rounds))
        difference = pixel_difference(image, parquet, folder / "exact")
    median = statistics.median(ours)
    print(f"{points} points, line plot 1000x600 px: labhub end to end (POST -> job succeeded) median {median:.2f} s "
          f"(runs {', '.join(f'{t:.2f}' for t in ours)}), plain matplotlib {baseline:.2f} s -> {median / baseline:.2f}x "
          f"(target <= 0.15x: long line plots are drawn from the summary kept at ingestion)")  # fmt: skip
    print(
        f"pixels differing from an exact render of all {points} points: {100 * difference:.2f} % (target < 1 %)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--points", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    main(options.points, options.rounds)
