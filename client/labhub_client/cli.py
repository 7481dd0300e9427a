"""labhub-client: login, push, watch, jobs, datasets, download, sql.

Exit codes: 0 when everything asked for succeeded, 1 when a file or job failed, 2 for a usage or
configuration problem, 130 when stopped with Ctrl-C (push; watch stops cleanly with 0).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import signal
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from labhub_client.api import VERSION, Backoff, LabHub, LabHubError, device_login, save_json
from labhub_client.bars import JobBars, progress_for
from labhub_client.config import Config, ConfigError, config_dir
from labhub_client.watch import Watch

out = Console()
err = Console(stderr=True, soft_wrap=True)  # long lines stay whole in logs (journald, files)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "dataset_type": args.dataset_type,
        "tag": args.tag,
        "header_mode": args.header_mode,
        "version_of": getattr(args, "version_of", None),
    }
    if args.custom_headers:
        options["custom_headers"] = [h.strip() for h in args.custom_headers.split(",")]
    return options


def _manifest(text: str | None) -> list[dict[str, Any]]:
    if not text:
        return []
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--manifest is not JSON: {exc}") from None
    if not isinstance(manifest, list) or not all(isinstance(m, dict) for m in manifest):
        raise ConfigError("--manifest must be a JSON array of objects, one per file")
    return manifest


def _hub(args: argparse.Namespace) -> LabHub:
    token = None
    if getattr(args, "token_file", None):
        token = _read_token(args.token_file)
    config = Config.load(url=args.url, token=token)
    return LabHub(config.url, config.token)


def _read_token(source: str) -> str:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"the token file cannot be read: {exc}") from None
    return text.strip()


# -- login -------------------------------------------------------------------------------------------


def _show_code(code: dict[str, Any]) -> None:
    minutes = max(1, int(code.get("expires_in", 600)) // 60)
    err.print(
        f"To sign in, open {code['verification_uri']} in a browser, sign in there and enter the code\n\n"
        f"    {code['user_code']}\n\n"
        f"(or open {code['verification_uri_complete']}). The code works for {minutes} minutes. Waiting…"
    )


def cmd_login(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("LABHUB_URL")
    if not url:
        raise ConfigError("give the server with --url URL (or LABHUB_URL)")
    if args.browser:
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()]
        made = device_login(url, machine=args.machine or socket.gethostname(), scopes=scopes, on_code=_show_code)
        token = made["token"]
        err.print(f"Approved: a personal access token “{made['name']}” ({', '.join(made['scopes'])}).")
    else:
        token = _read_token(args.token_file) if args.token_file else os.environ.get("LABHUB_TOKEN")
    if not token:
        token = getpass.getpass(
            "Personal access token (make one in the console: Account → Tokens; or use login --browser): "
        ).strip()
    if not token:
        raise ConfigError("no token given")
    with LabHub(url, token) as hub:
        me = hub.me()
    path = Config(url.rstrip("/"), token).save()
    err.print(
        f"Signed in to {url} as {me.get('name')} <{me.get('email')}>; token saved in {path} (mode 0600)"
    )
    return 0


# -- push --------------------------------------------------------------------------------------------


class Pending:
    """Uploads started by push and not yet ingested, so that the same command run again resumes them."""

    def __init__(self) -> None:
        self.path = config_dir() / "pending-uploads.json"
        self._lock = threading.Lock()
        try:
            self.items: dict[str, str] = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.items = {}

    @staticmethod
    def key(hub: LabHub, project_id: str, path: Path) -> str:
        stat = path.stat()
        return f"{hub.url}|{project_id}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"

    def set(self, key: str, upload_id: str | None) -> None:
        with self._lock:
            if upload_id is None:
                self.items.pop(key, None)
            else:
                self.items[key] = upload_id
            save_json(self.path, self.items)


def _push_one(
    hub: LabHub,
    project_id: str,
    path: Path,
    options: dict[str, Any],
    pending: Pending,
    progress: Progress | None,
) -> dict[str, Any]:
    key = Pending.key(hub, project_id, path)
    task = progress.add_task(f"{path.name}: upload", total=path.stat().st_size) if progress else None

    def moved(done: int, total: int) -> None:
        if progress is not None and task is not None:
            progress.update(task, completed=done, total=total)

    batch: dict[str, Any] = _with_retries(
        lambda: hub.send(project_id, path, resume=pending.items.get(key),
                         on_created=lambda upload_id: pending.set(key, upload_id), progress=moved, **options),
        label=path.name, most_s=30.0,
    )  # fmt: skip
    pending.set(key, None)
    if progress is not None and task is not None:
        progress.update(task, description=f"{path.name}: uploaded")
    return batch


def cmd_push(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.files]
    for path in paths:
        if not path.is_file():
            raise ConfigError(f"{path} is not a file")
    manifest = _manifest(args.manifest)
    if len(manifest) > len(paths):
        raise ConfigError(f"--manifest has {len(manifest)} entries for {len(paths)} file(s)")
    options = _options(args)
    pending = Pending()
    results: list[dict[str, Any]] = []
    ok = True
    with _hub(args) as hub:
        project = hub.project(args.project)
        columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                   TimeRemainingColumn()]  # fmt: skip
        with progress_for(args, columns, err) as progress:
            for index, path in enumerate(paths):
                entry: dict[str, Any] = {"path": str(path)}
                try:
                    file_options = {**options, "manifest": manifest[index : index + 1] or None}
                    batch = _push_one(hub, project["id"], path, file_options, pending, progress)
                    entry |= {"batch_id": batch["batch_id"], "jobs": batch["jobs"]}
                except LabHubError as exc:
                    ok = False
                    entry["error"] = {"code": exc.code, "message": exc.detail}
                    err.print(f"[red]{path.name}: {exc}")
                results.append(entry)
        if not args.no_wait:
            ok = _follow_all(hub, args, results) and ok
    if args.json:
        print(json.dumps({"ok": ok, "project_id": project["id"], "files": results}, indent=2))
    return 0 if ok else 1


def _follow_all(hub: LabHub, args: argparse.Namespace, results: list[dict[str, Any]]) -> bool:
    jobs = [(entry, job) for entry in results for job in entry.get("jobs", []) if job["status"] != "stored"]
    if not jobs:
        return all("error" not in e for e in results)
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    with progress_for(args, columns, err) as progress:
        bars = JobBars(progress)

        def follow(job: dict[str, Any]) -> dict[str, Any]:
            label = f"{job['file']} — {job['sheet']}" if job.get("sheet") else job["file"]
            task = bars.add(label)
            finished = hub.follow(job["id"], lambda event, data: bars.update(task, label, event, data))
            bars.update(task, label, "status", finished)
            if progress is None:
                line = f"{label}: {finished['status']}"
                if finished.get("error"):
                    line += f" ({finished['error']['code']}: {finished['error']['message']})"
                err.print(line)
            return finished

        with ThreadPoolExecutor(max_workers=min(8, len(jobs))) as pool:
            finished = list(pool.map(follow, [job for _, job in jobs]))
    for (_, job), done in zip(jobs, finished, strict=True):
        result = done.get("result") or {}
        job |= {"status": done["status"], "error": done.get("error"), "dataset_ids": result.get("dataset_ids", []),
                "stored_only": result.get("stored_only", False)}  # fmt: skip
    return all(done["status"] == "succeeded" for done in finished) and all("error" not in e for e in results)


# -- watch -------------------------------------------------------------------------------------------


def cmd_watch(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder")
    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    with _hub(args) as hub:
        project = _with_retries(lambda: hub.project(args.project))
        watch = Watch(
            hub, project["id"], folder, patterns=args.pattern or ["*"], recursive=args.recursive, settle_s=args.settle,
            sentinel=args.sentinel, interval_s=args.interval, state_path=Path(args.state) if args.state else None,
            options={**_options(args), "manifest": _manifest(args.manifest)[:1] or None},
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )  # fmt: skip
        try:
            watch.run(stop=stopping.is_set)
        except KeyboardInterrupt:
            err.print("stopped; what was sent is remembered in " + str(watch.state.path))
    return 0


def _with_retries(call: Any, *, label: str | None = None, most_s: float = 60.0) -> Any:
    """call() until it succeeds, backing off through errors that waiting can mend; others go up."""
    backoff = Backoff(1.0, most_s)
    while True:
        try:
            return call()
        except LabHubError as exc:
            if not exc.retriable:
                raise
            err.print(f"{label + ': ' if label else ''}{exc}; trying again")
            backoff.wait()


# -- jobs, datasets, download ------------------------------------------------------------------------


def cmd_jobs(args: argparse.Namespace) -> int:
    with _hub(args) as hub:
        jobs = hub.jobs(limit=args.limit, status=args.status)
    if args.json:
        print(json.dumps(jobs, indent=2))
        return 0
    table = Table("id", "kind", "status", "progress", "updated")
    for job in jobs:
        progress = job.get("progress") or {}
        done = (
            f"{progress.get('stage', '')} {progress.get('done') or ''}/{progress.get('total') or ''}".strip(
                " /"
            )
        )
        table.add_row(job["id"], job["kind"], job["status"], done, job.get("updated_at", ""))
    out.print(table)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    with _hub(args) as hub:
        project = hub.project(args.project)
        datasets = hub.datasets(project["id"])
    if args.json:
        print(json.dumps(datasets, indent=2))
        return 0
    table = Table("id", "name", "rows", "type", "tag", "created")
    for d in datasets:
        table.add_row(d["id"], d["name"], str(d.get("row_count", "")), d.get("dataset_type") or "",
                      d.get("tag") or "", d.get("created_at", ""))  # fmt: skip
    out.print(table)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    with _hub(args) as hub:
        dest = Path(args.output) if args.output else None
        if dest is None:
            name = Path(hub.dataset(args.dataset)["name"].replace(" — ", "-")).stem or args.dataset
            dest = Path(f"{name}.{args.format}")
        columns = [TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn()]
        with progress_for(args, columns, err) as progress:
            task = progress.add_task(dest.name, total=None) if progress else None

            def moved(done: int, total: int) -> None:
                if progress is not None and task is not None:
                    progress.update(task, completed=done, total=total)

            hub.download(args.dataset, args.format, dest, progress=moved)
    err.print(f"saved {dest}")
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    if args.file:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    elif args.statement:
        text = args.statement
    else:
        raise ConfigError("give the statement as an argument, or --file FILE (- for stdin)")
    fmt = args.format or ("table" if not args.output else Path(args.output).suffix.lstrip(".") or "csv")
    if fmt not in {"table", "json", "csv", "parquet", "arrow"}:
        raise ConfigError(f"unknown format {fmt!r}: use table, json, csv, parquet or arrow")
    if fmt in {"parquet", "arrow"} and not args.output and sys.stdout.isatty():
        raise ConfigError(f"{fmt} is binary: write it to a file with -o FILE")
    with _hub(args) as hub:
        project_id = hub.project(args.project)["id"] if args.project else None
        body, headers = hub.sql_bytes(text, fmt="json" if fmt == "table" else fmt, project_id=project_id,
                                      limit=args.limit)  # fmt: skip
    rows, truncated = headers.get("LabHub-Row-Count", "?"), headers.get("LabHub-Truncated") == "true"
    summary = f"{rows} rows{' (truncated: raise --limit)' if truncated else ''} in {headers.get('LabHub-Elapsed-Ms', '?')} ms"
    if args.output:
        Path(args.output).write_bytes(body)
        err.print(f"saved {args.output}: {summary}", highlight=False)
        return 0
    if fmt == "table":
        answer = json.loads(body)
        table = Table(*(f"{c['name']}\n[dim]{c['type']}[/dim]" for c in answer["columns"]))
        for row in answer["rows"]:
            table.add_row(*("∅" if v is None else json.dumps(v) if isinstance(v, dict | list) else str(v) for v in row))
        out.print(table)
        err.print(summary, highlight=False)
        return 0
    sys.stdout.buffer.write(body)
    sys.stdout.flush()
    return 0


# -- arguments ---------------------------------------------------------------------------------------


def _ingest_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", required=True, help="a project id or its exact name")
    parser.add_argument("--dataset-type", help="label for the datasets made (e.g. wind)")
    parser.add_argument("--tag", help="free tag for the datasets made (e.g. run-42)")
    parser.add_argument(
        "--header-mode", choices=["file", "none", "custom"], help="where column names come from"
    )
    parser.add_argument("--custom-headers", help="column names, comma-separated (with --header-mode custom)")
    parser.add_argument(
        "--manifest", help='JSON array, one object per file: {"sheets": [...], "ingest": false, ...}'
    )
    parser.add_argument(
        "--version-of", metavar="DATASET_ID", help="the one file becomes a new version of this dataset"
    )


def _login_arguments(login: argparse.ArgumentParser) -> None:
    login.add_argument("--browser", action="store_true",
                       help="print a code and a URL; sign in there (password or your institution's account) and approve")  # fmt: skip
    login.add_argument("--scopes", default="read,write", help="with --browser: the token's scopes (read, write, admin)")
    login.add_argument("--machine", help="with --browser: the name the token gets (default: this machine's host name)")


def parser() -> argparse.ArgumentParser:
    def connection(default: Any) -> argparse.ArgumentParser:
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument(
            "--url", default=default, help="the LabHub server (else LABHUB_URL, else the saved login)"
        )
        common.add_argument("--token-file", default=default,
                            help="read the personal access token from this file (- for stdin)")  # fmt: skip
        return common

    top = argparse.ArgumentParser(
        prog="labhub-client", description="Send instrument files to LabHub.", parents=[connection(None)]
    )
    top.add_argument("--version", action="version", version=f"labhub-client {VERSION}")
    # the same options after the command (labhub-client login --url URL); given there, they win
    commands = top.add_subparsers(dest="command", required=True)
    common = [connection(argparse.SUPPRESS)]

    login = commands.add_parser(
        "login", help="check a personal access token and save it (mode 0600); --browser: approve in the "
        "browser instead, no token to copy", parents=common,
    )  # fmt: skip
    _login_arguments(login)
    login.set_defaults(run=cmd_login)

    push = commands.add_parser(
        "push", help="upload files (resumable) and follow their ingestion", parents=common
    )
    push.add_argument("files", nargs="+", metavar="FILE")
    _ingest_arguments(push)
    push.add_argument("--no-wait", action="store_true", help="return once the files are uploaded")
    push.add_argument("--json", action="store_true", help="print the outcome as JSON (no progress bars)")
    push.set_defaults(run=cmd_push)

    watch = commands.add_parser("watch", help="send every file written into a folder, once", parents=common)
    watch.add_argument("folder", metavar="DIR")
    _ingest_arguments(watch)
    watch.add_argument(
        "--pattern", action="append", help="file name pattern, e.g. '*.csv' (repeatable; default all)"
    )
    watch.add_argument("--recursive", action="store_true", help="also watch subfolders")
    watch.add_argument(
        "--settle", type=float, default=10.0, help="seconds a file must stay unchanged (default 10)"
    )
    watch.add_argument("--sentinel", help="send FILE only once FILE+SENTINEL exists, e.g. .done")
    watch.add_argument("--interval", type=float, default=2.0, help="seconds between looks at the folder")
    watch.add_argument("--state", help=f"state file (default DIR/{'.labhub-client-state.json'})")
    watch.set_defaults(run=cmd_watch)

    jobs = commands.add_parser("jobs", help="your recent jobs", parents=common)
    jobs.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(run=cmd_jobs)

    datasets = commands.add_parser("datasets", help="a project's datasets", parents=common)
    datasets.add_argument("--project", required=True, help="a project id or its exact name")
    datasets.add_argument("--json", action="store_true")
    datasets.set_defaults(run=cmd_datasets)

    download = commands.add_parser("download", help="download a dataset as Parquet or CSV", parents=common)
    download.add_argument("dataset", metavar="DATASET", help="the dataset id")
    download.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    download.add_argument("-o", "--output", metavar="FILE")
    download.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    download.set_defaults(run=cmd_download)

    sql = commands.add_parser(
        "sql", help="ask the datasets a question: one read-only SQL statement (DuckDB's dialect)", parents=common
    )
    sql.add_argument("statement", nargs="?", metavar="SQL", help='e.g. "SELECT * FROM wind_tunnel.run_042 LIMIT 5"')
    sql.add_argument("--file", metavar="FILE", help="read the statement from FILE (- for stdin)")
    sql.add_argument("--format", choices=["table", "json", "csv", "parquet", "arrow"],
                     help="table (the default on a terminal), json, csv, parquet or arrow; with -o, from its suffix")  # fmt: skip
    sql.add_argument("-o", "--output", metavar="FILE", help="write the answer to FILE")
    sql.add_argument("--project", help="a project id or name: its datasets answer by their own names")
    sql.add_argument("--limit", type=int, help="rows in the answer (the server's default otherwise)")
    sql.set_defaults(run=cmd_sql)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args)
        return code
    except ConfigError as exc:
        err.print(f"labhub-client: {exc}", highlight=False)
        return 2
    except LabHubError as exc:
        err.print(f"labhub-client: {exc}", highlight=False)
        return 1
    except KeyboardInterrupt:
        err.print("labhub-client: stopped; run the same command again to go on where it stopped")
        return 130
