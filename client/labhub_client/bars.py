"""Progress as people see it on a terminal: a bar per upload and per job; none for logs and scripts."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.progress import Progress, TaskID


class JobBars:
    """One progress bar per job (a file, or a sheet of a workbook): stage and rows."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress = progress

    def add(self, label: str) -> TaskID | None:
        return self.progress.add_task(f"{label}: queued", total=None) if self.progress else None

    def update(self, task: TaskID | None, label: str, event: str, data: dict[str, Any]) -> None:
        if self.progress is None or task is None:
            return
        if event == "progress":
            stage, done, total = data.get("stage") or "working", data.get("done"), data.get("total")
            self.progress.update(
                task, description=f"{label}: {stage}", completed=done or 0, total=total or None
            )
        elif data.get("status"):
            status = data["status"]
            if status == "succeeded":
                self.progress.update(task, description=f"{label}: [green]succeeded", completed=1, total=1)
            elif status in ("failed", "cancelled"):
                message = (data.get("error") or {}).get("message") or status
                self.progress.update(task, description=f"{label}: [red]{status}[/] {message}")
            else:
                self.progress.update(task, description=f"{label}: {status}")


def progress_for(args: argparse.Namespace, columns: list[Any], err: Console) -> Any:
    if args.json or not err.is_terminal:  # bars for people; plain lines for logs and scripts
        return NoProgress()
    return Progress(*columns, console=err, transient=False)


class NoProgress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_exc: object) -> None:
        return None
