"""MATLAB .mat files: v4/v5 through scipy.io.loadmat, v7.3 (HDF5) through h5py.

Numeric vectors become columns, n×m matrices become m columns (name_1..name_m), structs are
flattened with dotted names and scalars go to the metadata. Columns of equal length form the
table: by default the largest such group, or the one the `variables` option names. A v7.3 file is
walked first, and refused if it has external links, external storage or virtual datasets, before
any data is read.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import attrs
import h5py
import numpy as np
import pyarrow as pa
import scipy.io

from workers.ingest.common import DatasetBuilder, Limits, Warnings, clean_names, json_safe, limit_exceeded
from workers.ingest.hdf5 import refuse_external_link, refuse_outside_storage
from workers.worker import JobFailed, Reporter

BATCH_ROWS = 100_000
V73_MARKER = b"MATLAB 7.3 MAT-file"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAX_METADATA_TEXT = 2000


@attrs.define
class Variable:
    name: str
    shape: tuple[int, ...]
    matlab_class: str
    data: np.ndarray | None = None  # loaded later for v7.3
    h5_path: str | None = None


def is_v73(head: bytes) -> bool:
    return head.startswith(V73_MARKER) or head[512:520] == HDF5_SIGNATURE


def _numeric(array: np.ndarray) -> bool:
    return array.dtype.kind in "biuf"


def _flatten_v5(
    prefix: str, value: Any, found: list[Variable], scalars: dict[str, Any], warnings: Warnings
) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten_v5(f"{prefix}.{key}" if prefix else key, item, found, scalars, warnings)
        return
    if isinstance(value, str):
        scalars[prefix] = value[:MAX_METADATA_TEXT]
        return
    if isinstance(value, list):  # cell array
        warnings.add(
            "skipped_variables", "cell arrays cannot become columns and were left out", example=prefix
        )
        return
    array = np.asarray(value)
    if array.dtype.kind == "c":
        warnings.add("skipped_variables", "complex arrays were left out", example=prefix)
        return
    if array.dtype.kind in "UOS":
        scalars[prefix] = json_safe(array.tolist())
        return
    if not _numeric(array):
        return
    if array.size == 1:
        scalars[prefix] = json_safe(array.reshape(-1)[0].item())
        return
    found.append(Variable(prefix, tuple(int(n) for n in array.shape), str(array.dtype), data=array))


def _read_v5(path: Path, warnings: Warnings) -> tuple[list[Variable], dict[str, Any]]:
    try:
        content = scipy.io.loadmat(str(path), simplify_cells=True)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - scipy raises many kinds of errors on damaged files
        raise JobFailed("corrupt_file", f"the MATLAB file cannot be read: {str(exc)[:200]}") from None
    found: list[Variable] = []
    scalars: dict[str, Any] = {}
    for name, value in content.items():
        if not name.startswith("__"):
            _flatten_v5(name, value, found, scalars, warnings)
    return found, scalars


def _walk_v73(
    group: h5py.Group, prefix: str, found: list[Variable], scalars: dict[str, Any], warnings: Warnings
) -> None:
    for key in group:
        if key.startswith("#"):  # MATLAB's internal #refs# and #subsystem#
            continue
        link = group.get(key, getlink=True)
        name = f"{prefix}.{key}" if prefix else key
        refuse_external_link(link, f"variable {name!r}")
        if isinstance(link, h5py.SoftLink):
            warnings.add("skipped_variables", "soft links were not followed", example=name)
            continue
        item = group[key]
        if isinstance(item, h5py.Group):
            _walk_v73(item, name, found, scalars, warnings)
            continue
        refuse_outside_storage(item, f"variable {name!r}")
        matlab_class = (
            item.attrs.get("MATLAB_class", b"").decode() if "MATLAB_class" in item.attrs else str(item.dtype)
        )
        shape = tuple(int(n) for n in reversed(item.shape))  # MATLAB is column-major
        if matlab_class == "char" and item.size <= MAX_METADATA_TEXT:
            scalars[name] = "".join(chr(c) for c in np.asarray(item[()]).reshape(-1))
        elif (
            "MATLAB_empty" in item.attrs or item.dtype.kind not in "biuf" or matlab_class in ("cell", "char")
        ):
            warnings.add(
                "skipped_variables", "variables that are not numeric arrays were left out", example=name
            )
        elif item.size == 1:
            scalars[name] = json_safe(np.asarray(item[()]).reshape(-1)[0].item())
        else:
            found.append(Variable(name, shape, matlab_class, h5_path=item.name))


def _columns(variable: Variable) -> list[tuple[str, np.ndarray]]:
    data = variable.data
    assert data is not None
    if data.ndim == 1 or (1 in data.shape and data.ndim == 2):
        return [(variable.name, data.reshape(-1))]
    if data.ndim == 2:
        return [(f"{variable.name}_{j + 1}", data[:, j]) for j in range(data.shape[1])]
    return []


def _length(variable: Variable) -> int | None:
    shape = [n for n in variable.shape if n != 1] or [1]
    if len(shape) == 1:
        return shape[0]
    return variable.shape[0] if len(variable.shape) == 2 else None


def choose_group(variables: list[Variable], wanted: list[str], warnings: Warnings) -> list[Variable]:
    """The variables that form the table: those named in `variables`, or the largest group of one length."""
    by_length: dict[int, list[Variable]] = defaultdict(list)
    for variable in variables:
        length = _length(variable)
        if length is None:
            warnings.add("skipped_variables", "arrays with more than two dimensions were left out",
                         example=f"{variable.name} {variable.shape}")  # fmt: skip
        else:
            by_length[length].append(variable)
    if wanted:
        known = {v.name: v for v in variables}
        missing = [w for w in wanted if w not in known]
        if missing:
            raise JobFailed(
                "invalid_options",
                f"variable(s) {missing} are not numeric arrays in the file; it has {sorted(known)}",
            )
        lengths = {_length(known[w]) for w in wanted}
        if len(lengths) != 1:
            raise JobFailed("invalid_options", "the chosen variables do not all have the same length")
        return [known[w] for w in wanted]
    if not by_length:
        raise JobFailed("no_tabular_data", "the file holds no numeric arrays that could form a table")
    length, group = max(by_length.items(), key=lambda item: (len(item[1]), item[0]))
    left_out = [v.name for n, group_ in by_length.items() if n != length for v in group_]
    if left_out:
        warnings.add(
            "other_lengths", f"variables whose length is not {length} were left out (the variables option picks them)",
            example=left_out[:20],
        )  # fmt: skip
    return group


def ingest_matlab(
    path: Path, options: dict[str, Any], limits: Limits, reporter: Reporter, out: Path
) -> dict[str, Any]:
    warnings = Warnings()
    with path.open("rb") as handle:
        head = handle.read(1024)
    reporter.progress("parse", 0, 1, "reading the variable list")
    if is_v73(head):
        try:
            handle5 = h5py.File(path, "r")
        except OSError as exc:
            raise JobFailed("corrupt_file", f"the MATLAB 7.3 file cannot be read: {str(exc)[:200]}") from None
        with handle5:
            variables: list[Variable] = []
            scalars: dict[str, Any] = {}
            _walk_v73(
                handle5, "", variables, scalars, warnings
            )  # every refusal happens here, before any data
            group = choose_group(variables, list(options.get("variables") or []), warnings)
            for variable in group:
                dataset = handle5[variable.h5_path]
                if dataset.nbytes > limits.max_uncompressed_bytes:
                    raise limit_exceeded(f"variable {variable.name!r} holds {dataset.nbytes} bytes")
                variable.data = np.asarray(dataset[()]).T
        version = "7.3"
    else:
        variables, scalars = _read_v5(path, warnings)
        group = choose_group(variables, list(options.get("variables") or []), warnings)
        version = "4/5"
    columns = [column for variable in group for column in _columns(variable)]
    names = clean_names([name for name, _ in columns])
    arrays = [
        np.asarray(data, dtype=np.float64 if data.dtype.kind == "f" else data.dtype) for _, data in columns
    ]
    schema = pa.schema([(n, pa.from_numpy_dtype(a.dtype)) for n, a in zip(names, arrays, strict=True)])
    builder = DatasetBuilder(out, schema, limits, reporter)
    rows = len(arrays[0])
    try:
        for start in range(0, rows, BATCH_ROWS):
            batch = pa.RecordBatch.from_arrays(
                [pa.array(a[start : start + BATCH_ROWS]) for a in arrays], schema=schema
            )
            builder.add(batch, done=min(rows, start + BATCH_ROWS), total=rows)
        result = builder.finish()
    except BaseException:
        builder.abort()
        raise
    result["warnings"] = warnings.result()
    result["metadata"] = {
        "mat_version": version,
        "variables": [{"name": v.name, "shape": list(v.shape), "class": v.matlab_class} for v in variables],
        "scalars": scalars,
        "columns_from": [v.name for v in group],
    }
    return result
