"""The instrument-folder mode: send each file once it has stopped changing, exactly once.

A file is ready when a sentinel file sits next to it (`run.csv` + `run.csv.done`, with
`sentinel=".done"`), or else when its size and mtime have not changed for `settle_s` seconds.
What was sent is remembered in a state file (in the folder, or given), keyed by the file's path and
sha256 and written atomically after every step: the upload id as soon as the upload exists, the
batch and jobs once the ingestion is made. So a watcher (or server) that stops anywhere resumes
the upload it was doing, asks again for an ingestion whose answer it lost (the server answers the
same batch), and never sends a file twice nor skips one. A file whose content changes is a new
file and is sent again. Network errors and a restarting server back off and retry; a file the
server refuses (too large, say) is reported and left until it changes.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labhub_client.api import Backoff, LabHub, LabHubError, save_json, sha256_of

STATE_NAME = ".labhub-client-state.json"
SKIPPED_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", "~", ".swp", ".lock")

Log = Callable[[str], None]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class State:
    """The state file: {"files": {relative path: entry}}; each change is written at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.files: dict[str, dict[str, Any]] = {}
        if path.exists():
            try:
                self.files = json.loads(path.read_text(encoding="utf-8")).get("files", {})
            except ValueError as exc:
                raise SystemExit(f"labhub-client: the state file {path} is damaged ({exc}); "
                                 "move it away to start afresh (files would then be sent again)") from None  # fmt: skip

    def put(self, name: str, **entry: Any) -> None:
        self.files[name] = {**self.files.get(name, {}), **entry, "updated_at": _now()}
        save_json(self.path, {"version": 1, "files": self.files})

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One watcher per state file: a second one would send what the first is sending."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        handle = lock_path.open("a+")
        try:
            try:
                import fcntl

                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # Windows: no advisory locks; one watcher per folder is up to the user
                pass
            except OSError:
                raise SystemExit(f"labhub-client: another watcher uses {self.path}") from None
            yield
        finally:
            handle.close()


@dataclass
class Watch:
    hub: LabHub
    project_id: str
    folder: Path
    patterns: list[str] = field(default_factory=lambda: ["*"])
    recursive: bool = False
    settle_s: float = 10.0
    sentinel: str | None = None
    interval_s: float = 2.0
    state_path: Path | None = None
    options: dict[str, Any] = field(default_factory=dict)
    log: Log = print
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        self.state = State(self.state_path or self.folder / STATE_NAME)
        self._seen: dict[str, tuple[int, int, float]] = {}  # name -> (size, mtime_ns, first seen so)
        self._backoff = Backoff(1.0, 60.0)

    def run(self, *, stop: Callable[[], bool] = lambda: False) -> None:
        with self.state.locked():
            self.log(f"watching {self.folder} for {', '.join(self.patterns)} (state: {self.state.path})")
            while not stop():
                if self.scan_once():
                    self._backoff.reset()
                    self.sleep(self.interval_s)
                else:
                    self._backoff.wait(self.sleep)

    def candidates(self) -> Iterator[tuple[str, Path]]:
        walk = self.folder.rglob("*") if self.recursive else self.folder.glob("*")
        for path in sorted(walk):
            name = path.relative_to(self.folder).as_posix()
            if any(part.startswith(".") for part in Path(name).parts) or name.endswith(SKIPPED_SUFFIXES):
                continue
            if self.sentinel and name.endswith(self.sentinel):
                continue
            if not any(fnmatch.fnmatch(path.name, pattern) for pattern in self.patterns):
                continue
            if path.is_file() and self.state.path.resolve() != path.resolve():
                yield name, path

    def ready(self, name: str, path: Path, stat: os.stat_result) -> bool:
        if self.sentinel:
            return path.with_name(path.name + self.sentinel).exists()
        now = time.monotonic()
        seen = self._seen.get(name)
        if seen is None or seen[:2] != (stat.st_size, stat.st_mtime_ns):
            self._seen[name] = (stat.st_size, stat.st_mtime_ns, now)
            return False
        return now - seen[2] >= self.settle_s

    def scan_once(self) -> bool:
        """Send what is ready; False when the server could not be reached (back off)."""
        for name, path in self.candidates():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entry = self.state.files.get(name, {})
            if entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns and \
                    entry.get("status") in ("sent", "refused"):  # fmt: skip
                continue
            if not self.ready(name, path, stat):
                continue
            try:
                if not self._send(name, path, stat, entry):
                    return False
            except FileNotFoundError:
                continue
        return True

    def _send(self, name: str, path: Path, stat: os.stat_result, entry: dict[str, Any]) -> bool:
        unchanged = entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns
        if unchanged and entry.get("sha256"):
            sha = entry["sha256"]  # a retry after a network error: the file was hashed already
        else:
            sha = sha256_of(path)
            if path.stat().st_mtime_ns != stat.st_mtime_ns:
                return True  # written to while it was read: wait for it to settle again
        if entry.get("sha256") == sha and entry.get("status") in ("sent", "refused"):
            self.state.put(name, size=stat.st_size, mtime_ns=stat.st_mtime_ns)  # touched, not changed
            return True
        resume = (
            entry.get("upload_id")
            if entry.get("sha256") == sha and entry.get("status") == "sending"
            else None
        )
        if resume is None:
            self.state.put(name, sha256=sha, size=stat.st_size, mtime_ns=stat.st_mtime_ns, status="sending",
                           upload_id=None)  # fmt: skip
        try:
            batch = self.hub.send(
                self.project_id, path, resume=resume, sha256=sha,
                on_created=lambda upload_id: self.state.put(name, upload_id=upload_id), **self.options,
            )  # fmt: skip
        except LabHubError as exc:
            if exc.retriable:
                self.log(f"{name}: {exc}; trying again later")
                return False
            self.state.put(name, status="refused", error=str(exc))
            self.log(f"{name}: refused: {exc}")
            return True
        jobs = [job["id"] for job in batch["jobs"]]
        self.state.put(name, status="sent", batch_id=batch["batch_id"], job_ids=jobs, error=None,
                       size=stat.st_size, mtime_ns=stat.st_mtime_ns)  # fmt: skip
        self.log(f"{name}: sent ({stat.st_size} bytes) -> {', '.join(jobs)}")
        return True
