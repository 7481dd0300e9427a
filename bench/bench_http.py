"""The request path under load: wrk against LabHub and against a bare aiohttp app, in the same run.

For each route, wrk (1 thread, 32 connections) first hits the real server (`./labhub serve`'s code
on its embedded services, signed in with a bearer token, logging as in production: a JSON access
line per request, to a file), then a bare aiohttp app in its own process
that answers the same path with the same JSON body LabHub gave, no middleware, no auth. The ratio
of requests per second (LabHub / bare) is the figure; p50 and p99 latencies are printed beside it.

    .venv/bin/python bench/bench_http.py [--seconds 10] [--connections 32] [--rounds 3]

wrk is Debian's `wrk` package (no PyPI load generator keeps up with aiohttp on 2 cores); the bench
installs it with apt-get when it runs as root, as the test launcher does with Chromium.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import sign_up, start_server, wait_ready  # noqa: E402

from ops.children import free_port  # noqa: E402

BARE_APP = textwrap.dedent(
    """
    import json, sys
    from aiohttp import web

    bodies = json.load(open(sys.argv[2]))

    async def answer(request):
        return web.json_response(bodies[request.path_qs])

    app = web.Application()
    app.router.add_get("/{tail:.*}", answer)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
    """
)
_RATE = re.compile(r"Requests/sec:\s+([\d.]+)")
_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_SCALE = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        print("bench_http: installing Debian's wrk (once)", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False)  # noqa: S607
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], env=env, check=False)  # noqa: S607
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("bench_http needs wrk: install Debian's wrk package")
    return found


def wrk(
    binary: str, url: str, token: str | None, seconds: int, connections: int
) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms)."""
    command = [binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    if "Non-2xx" in output:
        raise SystemExit(f"wrk saw errors from {url}:\n{output}")
    rate = float(_RATE.search(output).group(1))  # type: ignore[union-attr]
    latency = {p: float(v) * _SCALE[u] for p, v, u in _LATENCY.findall(output)}
    return rate, latency["50"], latency["99"]


async def prepare(base: str, records: int) -> tuple[str, list[str], dict[str, object]]:
    """A signed-in account with a project holding records: (token, paths, the body of each path)."""
    async with aiohttp.ClientSession() as http:
        await wait_ready(http, base)
        token, project_id = await sign_up(http, base)
        headers = {"Authorization": f"Bearer {token}"}
        for i in range(records):
            body = {"kind": "measurement", "title": f"run {i}", "data": {"speed": i * 0.5, "note": "bench"}}
            async with http.post(
                f"{base}/api/projects/{project_id}/records", json=body, headers=headers
            ) as response:
                assert response.status == 201, await response.text()
        paths = [
            "/health",
            "/api/auth/me",
            f"/api/projects/{project_id}",
            f"/api/projects/{project_id}/records?limit=50",
        ]
        bodies = {}
        for path in paths:
            async with http.get(f"{base}{path}", headers=headers) as response:
                assert response.status == 200, (path, await response.text())
                bodies[path] = await response.json()
    return token, paths, bodies


def main(seconds: int, connections: int, rounds: int, only: list[str], log_level: str) -> None:
    binary = ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="labhub-http-bench-") as tmp:
        port, bare_port = free_port(), free_port()
        server = start_server(
            Path(tmp) / "labhub",
            port,
            log=Path(tmp) / "server.log",
            LABHUB_AUTH_ARGON2_MEMORY_KIB="8192",
            LABHUB_APP_LOG_LEVEL=log_level,
        )
        bare = None
        try:
            base = f"http://127.0.0.1:{port}"
            token, paths, bodies = asyncio.run(prepare(base, records=60))
            bodies_file = Path(tmp) / "bodies.json"
            bodies_file.write_text(json.dumps(bodies))
            bare = subprocess.Popen([sys.executable, "-c", BARE_APP, str(bare_port), str(bodies_file)])  # noqa: S603
            asyncio.run(_wait_bare(f"http://127.0.0.1:{bare_port}"))
            for path in paths:
                if only and not any(part in _label(path) for part in only):
                    continue
                for round_ in range(1, rounds + 1):
                    ours = wrk(
                        binary, f"{base}{path}", None if path == "/health" else token, seconds, connections
                    )
                    floor = wrk(binary, f"http://127.0.0.1:{bare_port}{path}", None, seconds, connections)
                    print(f"{_label(path)} round {round_}: labhub {ours[0]:,.0f} req/s (p50 {ours[1]:.2f} ms, p99 {ours[2]:.2f} ms), "
                          f"bare aiohttp {floor[0]:,.0f} req/s (p50 {floor[1]:.2f} ms, p99 {floor[2]:.2f} ms) "
                          f"-> {ours[0] / floor[0]:.2f}x", flush=True)  # fmt: skip
        finally:
            if bare is not None:
                bare.terminate()
                bare.wait(timeout=30)
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=120)


async def _wait_bare(base: str) -> None:
    async with aiohttp.ClientSession() as http:
        await wait_ready(http, base, "/health")  # the bare app answers only the benchmarked paths


def _label(path: str) -> str:
    return re.sub(r"/projects/[0-9a-f]{24}", "/projects/{pid}", path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--only", action="append", default=[], help="routes containing this text (repeatable)"
    )
    parser.add_argument(
        "--log-level", default="INFO", help="the server's log level (INFO: an access line per request)"
    )
    options = parser.parse_args()
    main(options.seconds, options.connections, options.rounds, options.only, options.log_level)
