"""Schemathesis against the real server, driven by LabHub's own /api/openapi.json.

The server runs as `./labhub serve` on its own data dir and is populated first (a project with a
document, a record, an ingested dataset and its job, a plot, a meeting, an engagement entry and a
notification), so that every operation is fuzzed with ids that exist rather than with ids nobody
can guess; ids made during the run reach other operations through the document's OpenAPI links.
It runs once signed in as a head and once as a student, with these checks: not_a_server_error,
status_code_conformance, content_type_conformance, response_schema_conformance.

    ./labhub fuzz                      # a longer pass with a random seed (see --help)
    pytest tests/system/test_fuzz.py   # the short, seeded pass that ./labhub test runs
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import httpx
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from domain.core.metrics import UNMATCHED_ROUTE  # noqa: E402
from ops.children import free_port  # noqa: E402
from tests.system.conftest import output, start, wait_ready  # noqa: E402

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
HEAD = {"email": "head@fuzz.example", "password": "fuzzing head password"}
STUDENT = {"email": "student@fuzz.example", "password": "fuzzing student password", "name": "Stu Dent"}
FUZZ_ENV = {
    "LABHUB_AUTH_BOOTSTRAP_EMAIL": HEAD["email"],
    "LABHUB_AUTH_BOOTSTRAP_PASSWORD": HEAD["password"],
    # the fuzzer signs in and registers many times over: cheap hashing, no back-off in its way
    "LABHUB_AUTH_ARGON2_TIME_COST": "1",
    "LABHUB_AUTH_ARGON2_MEMORY_KIB": "1024",
    "LABHUB_AUTH_ARGON2_PARALLELISM": "1",
    "LABHUB_AUTH_LOGIN_FREE_ATTEMPTS": "1000000",
    "LABHUB_AUTH_LOGIN_FAILURES_PER_CLIENT": "1000000",
    "LABHUB_AUTH_REGISTRATIONS_PER_CLIENT": "1000000",
    "LABHUB_AUTH_ACCESS_TTL_S": "86400",  # a long --max-time run outlives a 15-minute token
    "LABHUB_APP_LOG_LEVEL": "WARNING",
}


@attrs.frozen
class Seeded:
    """Real ids of a populated project, and a token for each role."""

    tokens: dict[str, str]
    ids: dict[str, str]


def _sign_in(http: httpx.Client, account: dict[str, str]) -> str:
    response = http.post("/api/auth/login", json={"email": account["email"], "password": account["password"]})
    response.raise_for_status()
    return str(response.json()["access_token"])


def _created(response: httpx.Response) -> dict[str, Any]:
    if response.status_code not in (200, 201, 202):
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body


def _wait_job(http: httpx.Client, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        job = _created(http.get(f"/api/jobs/{job_id}", headers=headers))
        if job["status"] in {"succeeded", "failed", "cancelled"}:
            return job
        time.sleep(0.2)
    raise RuntimeError(f"job {job_id} did not finish")


def populate(base: str) -> Seeded:
    """Everything the API has, one of each, through the API."""
    with httpx.Client(base_url=base, timeout=60) as http:
        head_token = _sign_in(http, HEAD)
        head = {"Authorization": f"Bearer {head_token}"}
        student_user = _created(http.post("/api/auth/register", json=STUDENT))
        student_token = _sign_in(http, STUDENT)
        student = {"Authorization": f"Bearer {student_token}"}
        me = _created(http.get("/api/auth/me", headers=head))
        project = _created(http.post("/api/projects", json={"name": "Fuzzed tunnel"}, headers=head))
        pid = project["id"]
        _created(
            http.post(f"/api/projects/{pid}/members", json={"user_id": student_user["id"], "role": "member"},
                      headers=head)
        )  # fmt: skip
        document = _created(
            http.post(
                f"/api/projects/{pid}/documents",
                files={"file": ("notes.txt", b"tunnel notes\n")},
                headers=head,
            )
        )
        record = _created(
            http.post(f"/api/projects/{pid}/records", json={"kind": "run", "title": "Run 1", "data": {"v": 1.5}},
                      headers=head)
        )  # fmt: skip
        csv = "".join(f"{i},{i * 0.5},{i % 3}\n" for i in range(200))
        batch = _created(
            http.post(f"/api/projects/{pid}/ingestions", data={"dataset_type": "wind", "tag": "fuzz"},
                      files={"files": ("speeds.csv", io.BytesIO(("t,u,g\n" + csv).encode()))}, headers=head)
        )  # fmt: skip
        ingestion_job = batch["jobs"][0]["id"]
        _wait_job(http, ingestion_job, head)
        dataset = _created(http.get(f"/api/projects/{pid}/datasets", headers=head))["items"][0]
        plot = _created(
            http.post(f"/api/datasets/{dataset['id']}/visualizations", json={"kind": "line", "x": "t", "y": ["u"]},
                      headers=head)
        )  # fmt: skip
        _wait_job(http, plot["job_id"], head)
        meeting = _created(
            http.post(f"/api/projects/{pid}/meetings", headers=head, json={
                "title": "Weekly", "starts_at": "2026-12-01T10:00:00+00:00", "duration_minutes": 30,
                "attendee_ids": [student_user["id"]],
            })
        )  # fmt: skip
        entry = _created(
            http.post(f"/api/projects/{pid}/engagement", headers=student,
                      json={"date": "2026-11-02", "minutes": 90, "activity": "analysis"})
        )  # fmt: skip
        notification = _created(http.get("/api/notifications", headers=student))["items"][0]
    return Seeded(
        tokens={"head": head_token, "student": student_token},
        ids={
            "pid": pid, "uid": student_user["id"], "user": me["id"], "document": document["id"],
            "record": record["id"], "ingestion": ingestion_job, "job": ingestion_job, "dataset": dataset["id"],
            "visualization": plot["id"], "meeting": meeting["id"], "engagement": entry["id"],
            "notification": notification["id"],
        },
    )  # fmt: skip


# path prefix -> (parameter, which seeded id); every other path parameter is generated
_ID_OF = {
    "/api/projects/{pid}": ("pid", "pid"),
    "/api/documents/{id}": ("id", "document"),
    "/api/records/{id}": ("id", "record"),
    "/api/ingestions/{id}": ("id", "ingestion"),
    "/api/jobs/{id}": ("id", "job"),
    "/api/datasets/{id}": ("id", "dataset"),
    "/api/visualizations/{id}": ("id", "visualization"),
    "/api/meetings/{id}": ("id", "meeting"),
    "/api/engagement/{id}": ("id", "engagement"),
    "/api/notifications/{id}": ("id", "notification"),
    "/api/users/{id}": ("id", "uid"),
}


def schemathesis_config(seeded: Seeded, role: str) -> str:
    """schemathesis.toml for one role: its token, and the seeded ids as path parameters."""
    lines = [
        "color = false",
        "max-stream-events = 3",  # event streams are read this far, then closed
        f'headers = {{ Authorization = "Bearer {seeded.tokens[role]}" }}',
        f'parameters = {{ "query.project_id" = "{seeded.ids["pid"]}" }}',
        "",
    ]
    for prefix, (name, which) in _ID_OF.items():
        parameters = {name: seeded.ids[which]}
        if prefix == "/api/projects/{pid}":
            parameters["uid"] = seeded.ids["uid"]
        body = ", ".join(f'"{k}" = "{v}"' for k, v in parameters.items())
        lines += [
            "[[operations]]",
            f'include-path-regex = "^{re.escape(prefix).replace(chr(92), chr(92) * 2)}"',
            f"parameters = {{ {body} }}",
            "",
        ]
    return "\n".join(lines)


def run_schemathesis(
    base: str, seeded: Seeded, role: str, work: Path, *, seed: int, max_examples: int, phases: str,
    max_time: float | None = None,
) -> list[subprocess.CompletedProcess[str]]:  # fmt: skip
    """Two runs: everything but DELETE, then DELETE, so that the seeded things live until the end."""
    config = work / f"schemathesis-{role}.toml"
    config.write_text(schemathesis_config(seeded, role), encoding="utf-8")
    results = []
    # stateful runs follow links between operations: none of them lead only to DELETEs
    delete_phases = ",".join(p for p in phases.split(",") if p != "stateful")
    for selection, selected_phases in (
        (["--exclude-method", "DELETE"], phases),
        (["--include-method", "DELETE"], delete_phases),
    ):
        command = [
            sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", f"{base}/api/openapi.json",
            "--checks", CHECKS, "--seed", str(seed), "--max-examples", str(max_examples),
            "--phases", selected_phases, "--workers", "1", "--request-timeout", "30", *selection,
            # it ends the fuzzing account's sessions, after which every call is a 401 (tested directly)
            "--exclude-path", "/api/auth/logout-all",
        ]  # fmt: skip
        if max_time is not None:
            command += ["--max-time", str(int(max_time))]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # fmt: skip
        results.append(
            subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, check=False)
        )
    return results


_OBJECT_ID = re.compile(r"[0-9a-f]{24}")
MAX_SERIES = 3000  # every route × method × status seen, with histogram buckets: far below this


def metric_label_problems(base: str, seeded: Seeded) -> list[str]:
    """After fuzzing: /metrics labels are route templates and fixed words, never ids or input."""
    with httpx.Client(base_url=base, timeout=30) as http:
        paths = set(http.get("/api/openapi.json").json()["paths"])
        response = http.get("/metrics", headers={"Authorization": f"Bearer {seeded.tokens['head']}"})
    if response.status_code != 200:
        return [f"/metrics answered {response.status_code} to the head"]
    templates = paths | {UNMATCHED_ROUTE, "/"}
    problems, series = [], 0
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            series += 1
            for key, value in sample.labels.items():
                if _OBJECT_ID.search(value) or any(v in value for v in seeded.ids.values()):
                    problems.append(f"{sample.name}: label {key}={value!r} holds an id")
                if key == "route" and value not in templates and not value.startswith("/assets/"):
                    problems.append(f"{sample.name}: route {value!r} is not a route template")
    if series > MAX_SERIES:
        problems.append(f"/metrics has {series} series after fuzzing (more than {MAX_SERIES})")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="labhub fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a new one, printed)")
    parser.add_argument("--max-examples", type=int, default=100, help="test cases per operation and phase")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    # the student first: the head's pass may deactivate the student or change their membership
    parser.add_argument("--roles", default="student,head")
    parser.add_argument("--max-time", type=float, default=None, help="seconds per role for the whole run")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    with tempfile.TemporaryDirectory(prefix="labhub-fuzz-") as tmp:
        work = Path(tmp)
        data_dir, port = work / "data", free_port()
        server = start(data_dir, port, **FUZZ_ENV)
        status = 0
        try:
            wait_ready(port, server)
            base = f"http://127.0.0.1:{port}"
            seeded = populate(base)
            for role in args.roles.split(","):
                print(f"== schemathesis as {role}, seed {seed}", flush=True)
                for result in run_schemathesis(
                    base, seeded, role, work, seed=seed, max_examples=args.max_examples, phases=args.phases,
                    max_time=args.max_time,
                ):  # fmt: skip
                    print(result.stdout[-20000:], result.stderr[-5000:], sep="\n", flush=True)
                    status = status or result.returncode
            if server.poll() is None and (problems := metric_label_problems(base, seeded)):
                print("unbounded metric labels:\n" + "\n".join(sorted(set(problems))[:50]))
                status = status or 1
            if server.poll() is not None:
                print("the server died during the run:\n" + output(data_dir, port)[-5000:])
                status = status or 1
            elif "Traceback" in output(data_dir, port):  # a 500, or a fault nobody answered for
                print("the server logged a traceback:\n" + output(data_dir, port)[-5000:])
                status = status or 1
        finally:
            server.terminate()
            server.wait(60)
    print(json.dumps({"seed": seed, "exit": status}))
    return status


if __name__ == "__main__":
    sys.exit(main())
