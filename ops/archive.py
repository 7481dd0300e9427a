"""Backup archives on disk: a directory, or one .tar holding the same tree (docs/architecture.md, "Embedded services and backups").

A writer builds the archive under a `.partial` name and renames it when it is closed, so an
interrupted backup never looks like a finished one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO


class ArchiveError(Exception):
    """The archive cannot be written or read; the message says why, in one line."""


def safe_name(name: str) -> str:
    """A member name that stays inside the archive (no absolute path, no `..`, no empty part)."""
    path = PurePosixPath(name)
    if path.is_absolute() or not path.parts or any(p in {"", ".", ".."} for p in name.split("/")):
        raise ArchiveError(f"unsafe name in the archive: {name!r}")
    return name


def is_tar(path: Path) -> bool:
    return path.suffix == ".tar"


class ArchiveWriter:
    """Members are written one at a time through open(); close() makes the archive visible."""

    def __init__(self, dest: Path) -> None:
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise ArchiveError(f"{dest} already exists; give a new path (or remove it first)")
        self.dest = dest
        self._partial = dest.with_name(dest.name + ".partial")
        if self._partial.exists():
            shutil.rmtree(self._partial) if self._partial.is_dir() else self._partial.unlink()
        self._tar: tarfile.TarFile | None = None
        if is_tar(dest):
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._tar = tarfile.open(self._partial, "w", format=tarfile.PAX_FORMAT)  # noqa: SIM115
            self._scratch = dest.with_name(dest.name + ".member")
        else:
            self._partial.mkdir(parents=True)

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """A file to write member `name` into; it is in the archive when the block ends without error."""
        name = safe_name(name)
        if self._tar is None:
            path = self._partial / name
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:
                yield handle
            return
        # tar needs a member's size before its bytes: each member goes through one scratch file
        try:
            with self._scratch.open("wb") as handle:
                yield handle
            self._tar.add(self._scratch, arcname=name, recursive=False)
        finally:
            self._scratch.unlink(missing_ok=True)

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
        elif self.dest.exists():  # an empty directory was given
            self.dest.rmdir()
        os.replace(self._partial, self.dest)

    def abort(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._partial.unlink(missing_ok=True)
        else:
            shutil.rmtree(self._partial, ignore_errors=True)


class ArchiveReader:
    """Members of a directory or .tar archive, read by name."""

    def __init__(self, src: Path) -> None:
        if not src.exists():
            raise ArchiveError(f"{src} does not exist")
        self.src = src
        self._tar: tarfile.TarFile | None = None
        if src.is_file():
            try:
                self._tar = tarfile.open(src, "r:")  # noqa: SIM115
            except tarfile.TarError as exc:
                raise ArchiveError(f"{src} is not a backup archive (a directory or a .tar): {exc}") from None

    def names(self) -> set[str]:
        if self._tar is not None:
            return {m.name for m in self._tar.getmembers() if m.isfile()}
        return {p.relative_to(self.src).as_posix() for p in self.src.rglob("*") if p.is_file()}

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        name = safe_name(name)
        if self._tar is None:
            try:
                handle: IO[bytes] | None = (self.src / name).open("rb")
            except FileNotFoundError:
                handle = None
        else:
            try:
                member = self._tar.getmember(name)
            except KeyError:
                handle = None
            else:
                handle = self._tar.extractfile(member) if member.isfile() else None
        if handle is None:
            raise ArchiveError(f"the archive has no {name}")
        with handle:
            yield handle

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
