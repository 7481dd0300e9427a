"""The ingestion job's worker function: find out what a file is, and hand it to its reader."""

from __future__ import annotations

import codecs
import functools
import importlib.metadata
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workers.ingest.common import Limits
from workers.ingest.excel import ingest_excel
from workers.ingest.hdf5 import ingest_arrays
from workers.ingest.labview import ingest_lvm
from workers.ingest.matlab import HDF5_SIGNATURE, ingest_matlab
from workers.ingest.tdms import ingest_tdms
from workers.ingest.text import detect_encoding, ingest_text, ingest_wind_tunnel
from workers.worker import JobFailed, Reporter

TEXT_EXTENSIONS = {".csv", ".tsv", ".txt", ".dat", ".c", ".prn", ".asc", ".tab"}
ARRAY_EXTENSIONS = {".h5", ".hdf5", ".hdf", ".he5", ".nc", ".nc4", ".cdf", ".netcdf"}
ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
TDMS_MAGIC = b"TDSm"
TDMS_INDEX_MAGIC = b"TDSh"
LVM_MAGIC = b"LabVIEW Measurement"
LIBRARIES = ("pyarrow", "python-calamine", "scipy", "h5py", "numpy", "npTDMS")


def _hdf5_at(head: bytes) -> bool:
    """HDF5's superblock sits at 0, 512, 1024, 2048... (a user block may come first)."""
    return any(head[offset : offset + 8] == HDF5_SIGNATURE for offset in (0, 512, 1024, 2048))


def detect_format(path: Path, file_name: str) -> tuple[str, str | None]:
    """(format, reason when it is stored only), from the bytes first and the name second.

    A name that claims a format the bytes are not fails; a file of an unknown kind is stored as is.
    "text?" is text under a name LabHub does not know: read as a table when one is found, else stored.
    """
    extension = Path(file_name).suffix.lower()
    with path.open("rb") as handle:
        head = handle.read(2056)
    if not head:
        raise JobFailed("no_tabular_data", "the file is empty")
    found = _by_content(head, extension) or _by_name(head, extension)
    if found is not None:
        return found
    if head.startswith(ZIP_MAGIC):
        return "stored", "a zip archive without a name LabHub can read (name Excel files .xlsx)"
    if _looks_like_text(head):
        return "text?", None
    return (
        "stored",
        f"LabHub does not read {extension or 'extension-less'} files as tables; the file was stored as is",
    )


def _by_content(head: bytes, extension: str) -> tuple[str, str | None] | None:
    if extension == ".mat" or head.startswith(b"MATLAB"):
        return "matlab", None  # v7.3 is HDF5 inside, but its variables follow MATLAB's layout
    if _hdf5_at(head):
        return "hdf5", None
    if head[:3] == b"CDF" and head[3:4] in (b"\x01", b"\x02"):
        return "netcdf3", None
    if head[:4] == b"CDF\x05":
        return "stored", "NetCDF files of the CDF-5 variant are not read as tables; the file was stored as is"
    if head.startswith(TDMS_MAGIC):
        return "tdms", None
    if head.startswith(TDMS_INDEX_MAGIC):
        return (
            "stored",
            "a TDMS index file holds no data (upload the .tdms file it belongs to); it was stored as is",
        )
    if head.removeprefix(codecs.BOM_UTF8).startswith(LVM_MAGIC):
        return "labview_lvm", None
    return None


def _by_name(head: bytes, extension: str) -> tuple[str, str | None] | None:
    if extension in ARRAY_EXTENSIONS:
        raise JobFailed("corrupt_file", f"the file is named {extension} but is neither HDF5 nor NetCDF")
    if extension in (".tdms", ".tdms_index"):
        raise JobFailed("corrupt_file", f"the file is named {extension} but is not a TDMS file")
    if extension in (".xlsx", ".xlsm", ".xls"):
        if head.startswith(ZIP_MAGIC):
            return "xlsx", None  # .xls: a newer workbook with an old name
        if extension == ".xls" and head.startswith(OLE_MAGIC):
            return "xls", None
        raise JobFailed("corrupt_file", f"the file is named {extension} but is not an Excel workbook")
    if extension in TEXT_EXTENSIONS:
        return "text", None
    return None


def _looks_like_text(head: bytes) -> bool:
    encoding, bom = detect_encoding(head)
    if encoding.startswith("utf-16"):
        return True
    sample = head[bom:]
    return (
        b"\x00" not in sample and sum(b < 32 and b not in b"\r\n\t\f\v" for b in sample) <= len(sample) * 0.02
    )


@functools.cache  # a worker lives for many jobs; reading the packages' metadata takes ~10 ms
def _versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def _stored(reason: str | None) -> dict[str, Any]:
    return {"stored_only": True, "reason": reason, "datasets": [], "format": None, "versions": dict(_versions())}


Reader = Callable[[Path, dict[str, Any], Limits, Reporter, Path], list[dict[str, Any]]]


def _one(read: Callable[[Path, dict[str, Any], Limits, Reporter, Path], dict[str, Any]]) -> Reader:
    """A reader of one table, writing data.parquet in the work directory."""
    return lambda path, options, limits, reporter, work_dir: [
        read(path, options, limits, reporter, work_dir / "data.parquet")
    ]


READERS: dict[str, Reader] = {
    "text": _one(ingest_text),
    "wind_tunnel": _one(ingest_wind_tunnel),
    "matlab": _one(ingest_matlab),
    "labview_lvm": ingest_lvm,
    "tdms": ingest_tdms,
    "xlsx": lambda *args: ingest_excel(*args, zipped=True),
    "xls": lambda *args: ingest_excel(*args, zipped=False),
}


def ingest_file(params: dict[str, Any], reporter: Reporter) -> dict[str, Any]:
    """params: path, file_name, work_dir, options, limits. Returns {datasets: [...]} or stored_only."""
    path, work_dir = Path(params["path"]), Path(params["work_dir"])
    options: dict[str, Any] = params.get("options") or {}
    limits = Limits.from_params(params.get("limits"))
    work_dir.mkdir(parents=True, exist_ok=True)
    if options.get("profile") in ("wind_tunnel", "labview_lvm"):
        fmt, reason = options["profile"], None
    else:
        fmt, reason = detect_format(path, params["file_name"])
    if fmt == "stored":
        return _stored(reason)
    if fmt in ("hdf5", "netcdf3"):
        fmt, datasets = ingest_arrays(path, options, limits, reporter, work_dir, classic=fmt == "netcdf3")
    elif fmt == "text?":
        try:
            datasets = READERS["text"](path, {**options, "strict": True}, limits, reporter, work_dir)
        except JobFailed as failure:
            if failure.code not in ("no_tabular_data", "corrupt_file"):
                raise
            kind = Path(params["file_name"]).suffix or "extension-less"
            return _stored(f"no table was found in this {kind} file ({failure.message}); it was stored as is")
        fmt = "text"
    else:
        datasets = READERS[fmt](path, options, limits, reporter, work_dir)
    return {"stored_only": False, "datasets": datasets, "format": fmt, "versions": dict(_versions())}
