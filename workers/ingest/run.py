"""The ingestion job's worker function: find out what a file is, and hand it to its reader."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

from workers.ingest.common import Limits
from workers.ingest.excel import ingest_excel
from workers.ingest.matlab import HDF5_SIGNATURE, ingest_matlab
from workers.ingest.text import ingest_text, ingest_wind_tunnel
from workers.pool import JobFailed, Reporter

TEXT_EXTENSIONS = {".csv", ".tsv", ".txt", ".dat", ".c", ".prn", ".asc", ".tab"}
ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
LIBRARIES = ("pyarrow", "python-calamine", "scipy", "h5py", "numpy")


def detect_format(path: Path, file_name: str) -> tuple[str, str | None]:
    """(format, reason when it is stored only). A name that claims a format the bytes are not fails."""
    extension = Path(file_name).suffix.lower()
    with path.open("rb") as handle:
        head = handle.read(1024)
    if not head:
        raise JobFailed("no_tabular_data", "the file is empty")
    if extension in (".xlsx", ".xlsm"):
        if not head.startswith(ZIP_MAGIC):
            raise JobFailed("corrupt_file", f"the file is named {extension} but is not an Excel workbook")
        return "xlsx", None
    if extension == ".xls":
        if head.startswith(OLE_MAGIC):
            return "xls", None
        if head.startswith(ZIP_MAGIC):
            return "xlsx", None  # a newer workbook with an old name
        raise JobFailed("corrupt_file", "the file is named .xls but is not an Excel workbook")
    if extension == ".mat":
        return "matlab", None
    if extension in TEXT_EXTENSIONS:
        return "text", None
    if not extension:
        if head.startswith(ZIP_MAGIC):
            return "stored", "a zip archive without a name LabHub can read (name Excel files .xlsx)"
        if head.startswith(b"MATLAB") or head[512:520] == HDF5_SIGNATURE:
            return "matlab", None
        if b"\x00" not in head:
            return "text", None
    return (
        "stored",
        f"LabHub does not read {extension or 'extension-less'} files as tables; the file was stored as is",
    )


def _versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def ingest_file(params: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """params: path, file_name, work_dir, options, limits. Returns {datasets: [...]} or stored_only."""
    path, work_dir = Path(params["path"]), Path(params["work_dir"])
    options: dict[str, Any] = params.get("options") or {}
    limits = Limits.from_params(params.get("limits"))
    work_dir.mkdir(parents=True, exist_ok=True)
    if options.get("profile") == "wind_tunnel":
        fmt, reason = "wind_tunnel", None
    else:
        fmt, reason = detect_format(path, params["file_name"])
    if fmt == "stored":
        return {
            "stored_only": True,
            "reason": reason,
            "datasets": [],
            "format": None,
            "versions": _versions(),
        }
    out = work_dir / "data.parquet"
    if fmt == "wind_tunnel":
        datasets = [ingest_wind_tunnel(path, options, limits, reporter, out)]
    elif fmt == "text":
        datasets = [ingest_text(path, options, limits, reporter, out)]
    elif fmt == "matlab":
        datasets = [ingest_matlab(path, options, limits, reporter, out)]
    else:
        datasets = ingest_excel(path, options, limits, reporter, work_dir, zipped=fmt == "xlsx")
    return {"stored_only": False, "datasets": datasets, "format": fmt, "versions": _versions()}
