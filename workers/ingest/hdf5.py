"""HDF5 (h5py) and NetCDF (NetCDF-4 is HDF5; classic NetCDF-3 through scipy): arrays become tables.

The file is walked first, and refused if it has external links, external storage or virtual
datasets, or more objects, depth or declared bytes than the limits allow, before any data is read.
Then, per group: NetCDF variables that share their first dimension form one dataset (the dimension's
coordinate variable first); plain HDF5 arrays of one length form one. 1-D arrays are columns, 2-D
arrays blocks of columns (`name_1..name_m`), compound arrays one column per field, string arrays
text columns; scalars, short arrays beside long ones and attributes go to the metadata. `units` and
CF packing (`scale_factor`, `add_offset`, `_FillValue`) are applied, CF times become timestamps.
Rows are read in slices: memory stays bounded however large the file is.
"""

from __future__ import annotations

import re
import warnings as warnings_module
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import h5py
import numpy as np
import pyarrow as pa
import scipy.io

from workers.ingest.common import (
    Limits,
    Warnings,
    batch_rows,
    build_dataset,
    clean_names,
    json_safe,
    limit_exceeded,
)
from workers.worker import JobFailed, Reporter

MAX_OBJECTS = 20_000
MAX_DEPTH = 32
MAX_DATASETS = 200
MAX_BLOCK_COLUMNS = 500  # a 2-D array wider than this is not a block of columns
H5PY_ERRORS = (OSError, ValueError, TypeError, KeyError, IndexError, RuntimeError)
TIME_NAMES = {"time", "t", "times", "timestamp", "x"}
SHORT = 16  # arrays this short beside longer ones are metadata, not a table of their own
MAX_ATTRIBUTE_TEXT = 2000
# NetCDF's default fill values (netcdf.h), by numpy type: unwritten values hold them (not bytes, whose
# every value is data; netCDF4-python does not mask them either)
NETCDF_DEFAULT_FILL: dict[str, int | float] = {
    "i2": -32767, "u2": 65535, "i4": -2147483647, "u4": 4294967295,
    "i8": -9223372036854775806, "u8": 18446744073709551614, "f4": float(np.float32(9.9692099683868690e36)),
    "f8": 9.9692099683868690e36,
}  # fmt: skip
NETCDF_DIMENSION_ONLY = b"This is a netCDF dimension but not a netCDF variable"
_CF_TIME = re.compile(r"^\s*(seconds?|minutes?|hours?|days?|milliseconds?)\s+since\s+(.+?)\s*$", re.I)
_CF_MICROSECONDS = {"millisecond": 1e3, "second": 1e6, "minute": 6e7, "hour": 3.6e9, "day": 8.64e10}
_CALENDARS = {"standard", "gregorian", "proleptic_gregorian", ""}


@attrs.define
class Variable:
    name: str
    group: str  # path of the group holding it; "" for the root
    shape: tuple[int, ...]
    dtype: np.dtype[Any]
    attributes: dict[str, Any]
    dims: tuple[str, ...] | None  # NetCDF dimension names
    read: Callable[[Any], np.ndarray]  # an index (a slice, or () for a scalar) -> values

    @property
    def path(self) -> str:
        return f"{self.group}/{self.name}" if self.group else self.name

    @property
    def length(self) -> int:
        return self.shape[0]


def _attribute(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")[:MAX_ATTRIBUTE_TEXT]
    if isinstance(value, str):
        return value[:MAX_ATTRIBUTE_TEXT]
    if isinstance(value, np.ndarray):
        if value.size > 64:
            return f"<array of {value.size} values>"
        return (
            [_attribute(v) for v in value.reshape(-1).tolist()]
            if value.size != 1
            else _attribute(value.item())
        )
    if isinstance(value, np.generic):
        return _attribute(value.item())
    return json_safe(value)


def _attributes(attrs_: Any) -> dict[str, Any]:
    found = {}
    for key in list(attrs_.keys())[:200]:
        if key in (
            "DIMENSION_LIST",
            "REFERENCE_LIST",
            "CLASS",
            "NAME",
            "_Netcdf4Dimid",
            "_Netcdf4Coordinates",
        ):
            continue
        try:
            found[key] = _attribute(attrs_[key])
        except (OSError, TypeError, ValueError):  # types h5py cannot read
            continue
    return found


# -- walking ---------------------------------------------------------------------------------------


def refuse_external_link(link: Any, label: str) -> None:
    """A link into another file would read what the uploader may not: such files are refused."""
    if isinstance(link, h5py.ExternalLink):
        raise JobFailed("corrupt_file", f"{label} links to another file; such files are refused")


def refuse_outside_storage(item: h5py.Dataset, label: str) -> None:
    """Data kept in external files or assembled from other files (virtual datasets): refused."""
    if item.external:
        raise JobFailed("corrupt_file", f"{label} keeps its data in external files; such files are refused")
    if item.is_virtual:
        raise JobFailed("corrupt_file", f"{label} is a virtual dataset; such files are refused")


class _Walk:
    def __init__(self, warnings: Warnings) -> None:
        self.variables: list[Variable] = []
        self.groups: dict[str, dict[str, Any]] = {}
        self.netcdf = False
        self.warnings = warnings
        self._seen: set[int] = set()
        self._objects = 0

    def group(self, group: h5py.Group, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise limit_exceeded(f"groups are nested more than {MAX_DEPTH} deep")
        identity = _identity(group)
        if identity in self._seen:
            return  # a hard link back to a group already walked
        self._seen.add(identity)
        self.groups[path] = _attributes(group.attrs)
        if "_NCProperties" in group.attrs:
            self.netcdf = True
        for key in group:
            self._objects += 1
            if self._objects > MAX_OBJECTS:
                raise limit_exceeded(f"the file holds more than {MAX_OBJECTS} objects")
            name = f"{path}/{key}" if path else key
            link = group.get(key, getlink=True)
            refuse_external_link(link, repr(name))
            if isinstance(link, h5py.SoftLink):
                self.warnings.add("skipped_variables", "soft links were not followed", example=name)
                continue
            try:
                item = group[key]
            except (KeyError, OSError) as exc:
                raise JobFailed("corrupt_file", f"{name!r} cannot be read: {str(exc)[:200]}") from None
            if isinstance(item, h5py.Group):
                self.group(item, name, depth + 1)
            elif isinstance(item, h5py.Dataset):
                self.dataset(item, path, key)

    def dataset(self, item: h5py.Dataset, group: str, key: str) -> None:
        refuse_outside_storage(item, repr(f"{group}/{key}" if group else key))
        identity = _identity(item)
        if identity in self._seen:
            return
        self._seen.add(identity)
        dims = None
        if "DIMENSION_LIST" in item.attrs or item.attrs.get("CLASS") == b"DIMENSION_SCALE":
            self.netcdf = True
            if bytes(item.attrs.get("NAME", b"")).startswith(NETCDF_DIMENSION_ONLY):
                return
            dims = tuple(_dimension_name(item, axis) for axis in range(item.ndim))
        dtype = item.dtype
        if h5py.check_string_dtype(dtype) is not None and dtype != np.dtype("S1"):  # S1: NetCDF chars
            source: Any = item.asstr(errors="replace")
        else:
            source = item
        self.variables.append(
            _variable(key, group, item.shape, dtype, _attributes(item.attrs), dims, source, copy=False)
        )


def _identity(item: h5py.HLObject) -> int:
    """Where the object lives in the file: the same for every hard link to it."""
    return int(h5py.h5o.get_info(item.id).addr)


def _variable(
    name: str, group: str, shape: tuple[int, ...], dtype: np.dtype[Any], attributes: dict[str, Any],
    dims: tuple[str, ...] | None, source: Any, *, copy: bool,
) -> Variable:  # fmt: skip
    """A variable as a table sees it: axes of length one are dropped (a 1×1×800 spectrum is a vector
    of 800), and a NetCDF char array's last axis holds the characters of its strings."""
    shape = tuple(int(n) for n in shape)
    chars = dtype == np.dtype("S1") and len(shape) >= 1
    kept = [a for a, n in enumerate(shape[:-1] if chars else shape) if n != 1]
    index: list[Any] = [slice(None) if a in kept else 0 for a in range(len(shape) - (1 if chars else 0))]
    if chars:
        index.append(slice(None))
        dtype = np.dtype(f"S{max(1, shape[-1])}")

    def read(where: Any) -> np.ndarray:
        at = list(index)
        if kept and where != ():
            at[kept[0]] = where
        values = np.array(source[tuple(at)]) if copy else np.asarray(source[tuple(at)])
        if chars:
            values = np.ascontiguousarray(values).view(dtype).reshape(values.shape[:-1])
        return values

    return Variable(
        name=name, group=group, shape=tuple(shape[a] for a in kept), dtype=dtype, attributes=attributes,
        dims=tuple(dims[a] for a in kept) if dims else None, read=read,
    )  # fmt: skip


def _dimension_name(item: h5py.Dataset, axis: int) -> str:
    if axis == 0 and item.attrs.get("CLASS") == b"DIMENSION_SCALE":
        return str(item.name).rsplit("/", 1)[-1]  # a coordinate variable is its own dimension
    try:
        scales = item.dims[axis]
        if len(scales):
            return str(scales[0].name).rsplit("/", 1)[-1]
    except (OSError, RuntimeError, IndexError):
        pass
    return f"dim_{axis}"


def _walk_hdf5(path: Path, warnings: Warnings) -> tuple[h5py.File, _Walk]:
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise JobFailed("corrupt_file", f"the HDF5 file cannot be read: {str(exc)[:200]}") from None
    walk = _Walk(warnings)
    try:
        walk.group(handle, "", 0)
    except BaseException as exc:
        handle.close()
        if isinstance(exc, H5PY_ERRORS):  # damaged metadata, found while walking
            raise JobFailed(
                "corrupt_file", f"the HDF5 file is damaged: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        raise
    return handle, walk


def _walk_netcdf3(path: Path, warnings: Warnings) -> tuple[Any, _Walk]:
    try:
        handle = scipy.io.netcdf_file(str(path), "r", mmap=True)
    except MemoryError:
        raise limit_exceeded("the NetCDF file does not fit in the worker's address space") from None
    except Exception as exc:  # noqa: BLE001 - scipy parses untrusted bytes and raises many kinds of errors
        raise JobFailed(
            "corrupt_file", f"the NetCDF file cannot be read: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    walk = _Walk(warnings)
    walk.netcdf = True
    walk.groups[""] = {k: _attribute(v) for k, v in handle._attributes.items()}
    for name, variable in handle.variables.items():
        data = variable.data
        attributes = {k: _attribute(v) for k, v in variable._attributes.items()}
        walk.variables.append(
            _variable(
                name, "", data.shape, data.dtype, attributes, tuple(variable.dimensions), data, copy=True
            )
        )
    return handle, walk


# -- choosing tables -------------------------------------------------------------------------------


@attrs.define
class Table:
    part: str  # what the dataset is named after: the group, and the dimension when there are several
    variables: list[Variable]


def _usable(walk: _Walk, metadata: dict[str, Any], warnings: Warnings) -> list[Variable]:
    """The arrays that can be columns; scalars go to the metadata, the others are named in warnings."""
    usable: list[Variable] = []
    for variable in walk.variables:
        kind, shape = variable.dtype.kind, variable.shape
        if len(shape) == 0 or (max(shape) == 1 and len(shape) <= 2):
            metadata["scalars"][variable.path] = _attribute(variable.read(()))
            continue
        problem = None
        if kind == "c":
            problem = "complex arrays were left out"
        elif kind not in "biufSUOV" or (kind == "V" and variable.dtype.names is None):
            problem = "arrays of this type cannot become columns"
        elif len(shape) > 2 or (len(shape) == 2 and shape[1] > MAX_BLOCK_COLUMNS):
            problem = "arrays with more than two dimensions (or too many columns) were left out"
        elif len(shape) == 2 and kind in "SUOV":
            problem = "2-D arrays of text or records were left out"
        if problem:
            warnings.add("skipped_variables", problem, example=f"{variable.path} {list(shape)}")
        elif variable.length > 0:
            usable.append(variable)
    return usable


def _tables(walk: _Walk, wanted: list[str], metadata: dict[str, Any], warnings: Warnings) -> list[Table]:
    usable = _usable(walk, metadata, warnings)
    if wanted:
        return _chosen(usable, walk, wanted)
    # per group, per first dimension (NetCDF) or per length (plain HDF5)
    by_group: dict[str, dict[str | int, list[Variable]]] = defaultdict(lambda: defaultdict(list))
    for variable in usable:
        by_group[variable.group][variable.dims[0] if variable.dims else variable.length].append(variable)
    tables: list[Table] = []
    for group, keyed in by_group.items():
        longest = max(v[0].length for v in keyed.values())
        entries = []
        for key, variables in keyed.items():
            if variables[0].length <= SHORT < longest:
                for variable in variables:  # calibration constants beside the measurements
                    metadata["short_arrays"][variable.path] = _attribute(variable.read(slice(None)))
            else:
                entries.append((key, variables))
        for key, variables in entries:
            # the coordinate variable (or a time-like array) first, then the rest as stored
            variables.sort(
                key=lambda v: not ((v.dims and v.name == v.dims[0]) or v.name.lower() in TIME_NAMES)
            )
            label = group or ("/" if len(by_group) > 1 else "")
            if len(entries) > 1:
                label = f"{label} {key if isinstance(key, str) else f'({key} rows)'}".strip()
            tables.append(Table(label, variables))
    if not tables:
        raise JobFailed("no_tabular_data", "the file holds no arrays that could form a table")
    if len(tables) > MAX_DATASETS:
        warnings.add("too_many_tables", f"only the first {MAX_DATASETS} tables were read (the variables option picks others)",
                     count=len(tables) - MAX_DATASETS)  # fmt: skip
    return tables[:MAX_DATASETS]


def _chosen(usable: list[Variable], walk: _Walk, wanted: list[str]) -> list[Table]:
    """`variables` names groups (each becomes its tables) or variables (one table, one length)."""
    by_path = {v.path: v for v in usable}
    by_name: dict[str, list[Variable]] = defaultdict(list)
    for v in usable:
        by_name[v.name].append(v)
    picked: list[Variable] = []
    groups: list[str] = []
    for entry in wanted:
        key = entry.strip("/")
        if key in by_path:
            picked.append(by_path[key])
        elif len(by_name.get(key, [])) == 1:
            picked.append(by_name[key][0])
        elif key in walk.groups or (key == "" and "" in walk.groups):
            groups.append(key)
        else:
            raise JobFailed(
                "invalid_options",
                f"{entry!r} is not a group or a readable array in the file; it has {sorted(by_path)[:50]}",
            )
    tables = []
    for group in groups:
        members = [v for v in usable if v.group == group]
        if not members:
            raise JobFailed("invalid_options", f"group {group!r} holds no readable arrays")
        for length in sorted({v.length for v in members}, reverse=True):
            tables.append(Table(group or "/", [v for v in members if v.length == length]))
    if picked:
        if len({v.length for v in picked}) != 1:
            raise JobFailed("invalid_options", "the chosen variables do not all have the same length")
        tables.append(Table(", ".join(v.name for v in picked) if groups else "", picked))
    return tables


# -- reading ---------------------------------------------------------------------------------------


def _text_attribute(variable: Variable, *keys: str) -> str | None:
    """The first of these attributes that holds text, whatever the case of its name."""
    by_name = {name.lower(): value for name, value in variable.attributes.items()}
    for key in keys:
        value = by_name.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _cf_time(variable: Variable) -> tuple[float, datetime] | None:
    """(microseconds per unit, origin) of a CF time variable (`days since 2020-01-01`)."""
    units = _text_attribute(variable, "units")
    calendar = str(variable.attributes.get("calendar", "")).lower()
    if units is None or calendar not in _CALENDARS or variable.dtype.kind not in "iuf":
        return None
    match = _CF_TIME.match(units)
    if match is None:
        return None
    origin = _cf_origin(match.group(2))
    if origin is None:
        return None
    return _CF_MICROSECONDS[match.group(1).lower().rstrip("s")], origin.replace(tzinfo=None)


_CF_ORIGIN = re.compile(
    r"^(\d{1,4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d+))?)?)?\s*(?:Z|UTC|[+-]00:?00)?$",
    re.I,
)


def _cf_origin(text: str) -> datetime | None:
    """The origin of `days since 2000-1-1 0:0:0` (CF allows unpadded fields and a UTC suffix)."""
    match = _CF_ORIGIN.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction = match.groups()
    try:
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        fields = (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0), micro)
        return datetime(*fields)  # noqa: DTZ001 - CF times are UTC; timestamps are kept naive, as elsewhere
    except ValueError:
        return None


def _columns(variable: Variable) -> list[tuple[str, Any]]:
    """(column name, its index into a slice of the variable) for each column the variable gives."""
    if variable.dtype.names:
        return [(f"{variable.name}.{field}", field) for field in variable.dtype.names]
    if len(variable.shape) == 2:
        return [(f"{variable.name}_{j + 1}", (slice(None), j)) for j in range(variable.shape[1])]
    return [(variable.name, slice(None))]


def _arrow(values: np.ndarray, variable: Variable) -> pa.Array:
    if values.dtype.kind in "SO" or values.dtype.kind == "U":
        return pa.array(
            [
                None if v is None else (v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v))
                for v in values.tolist()
            ],
            type=pa.string(),
        )
    if values.dtype.kind == "V":
        raise JobFailed("unsupported_format", f"{variable.path!r} holds nested records")
    values, mask = _unpacked_mask(values, variable)
    scale, offset = variable.attributes.get("scale_factor"), variable.attributes.get("add_offset")
    if isinstance(scale, int | float) or isinstance(offset, int | float):
        values = values * (scale if isinstance(scale, int | float) else 1) + (
            offset if isinstance(offset, int | float) else 0
        )
    if values.dtype.kind == "f" and values.dtype.itemsize < 8:
        values = values.astype(np.float64)
    if values.dtype.byteorder not in "=|":
        values = values.astype(values.dtype.newbyteorder("="))
    return pa.array(values, mask=mask if mask is not None and mask.any() else None)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _unpacked_mask(values: np.ndarray, variable: Variable) -> tuple[np.ndarray, np.ndarray | None]:
    """CF conventions, as netCDF4-python applies them: `_Unsigned` integers, then missing where the
    value is `_FillValue` / `missing_value` (NetCDF's default fill when neither is given) or outside
    `valid_min`..`valid_max` / `valid_range`, all compared in the stored type."""
    if values.dtype.kind not in "iuf":
        return values, None
    attributes = variable.attributes
    fill = _number(attributes.get("_FillValue", attributes.get("missing_value")))
    if fill is None and variable.dims is not None and "_FillValue" not in attributes:
        fill = NETCDF_DEFAULT_FILL.get(
            values.dtype.str.lstrip("<>=|")
        )  # what NetCDF writes where nothing was
    unsigned = attributes.get("_Unsigned") in ("true", True) and values.dtype.kind == "i"
    if unsigned:
        if fill is not None and fill < 0:
            fill = float(np.array(fill).astype(values.dtype).view(values.dtype.str.replace("i", "u")))
        values = values.view(values.dtype.str.replace("i", "u"))  # NetCDF-3 has no unsigned types
    mask = values == fill if fill is not None else np.zeros(values.shape, dtype=bool)
    low, high = _number(attributes.get("valid_min")), _number(attributes.get("valid_max"))
    valid_range = attributes.get("valid_range")
    if isinstance(valid_range, list) and len(valid_range) == 2:
        low, high = _number(valid_range[0]), _number(valid_range[1])
    if low is not None:
        mask |= values < low
    if high is not None:
        mask |= values > high
    return values, mask


def _timestamps(values: np.ndarray, variable: Variable, microseconds: float, origin: datetime) -> pa.Array:
    offsets = np.asarray(values, dtype=np.float64) * microseconds
    fill = variable.attributes.get("_FillValue", variable.attributes.get("missing_value"))
    missing = ~np.isfinite(offsets) | (np.asarray(values) == fill if isinstance(fill, int | float) else False)
    stamps = np.datetime64(origin, "us") + np.where(missing, 0, np.round(offsets)).astype("timedelta64[us]")
    return pa.array(stamps, type=pa.timestamp("us"), mask=missing if missing.any() else None)


def _read_table(
    table: Table, limits: Limits, reporter: Reporter, out: Path, metadata: dict[str, Any]
) -> dict[str, Any]:
    rows = table.variables[0].length
    plan: list[tuple[Variable, str, Any]] = [
        (v, name, take) for v in table.variables for name, take in _columns(v)
    ]
    if len(plan) > limits.max_columns:
        raise limit_exceeded(
            f"table {table.part!r} has {len(plan)} columns; at most {limits.max_columns} are accepted"
        )
    names = clean_names([name for _, name, _ in plan])
    units: dict[str, str] = {}
    described: dict[str, dict[str, Any]] = {}
    times = {id(v): _cf_time(v) for v in table.variables}
    for (variable, _, _), name in zip(plan, names, strict=True):
        unit = _text_attribute(variable, "units", "unit", "unit_string", "engineering_units")
        if unit and times[id(variable)] is None:
            units[name] = unit
        described[name] = {
            "variable": variable.path,
            **{k: v for k, v in variable.attributes.items() if k != "_FillValue"},
        }
    step = batch_rows(
        sum(v.dtype.itemsize * (v.shape[1] if len(v.shape) == 2 else 1) for v in table.variables)
    )

    def batches() -> Iterator[tuple[list[pa.Array], int, int]]:
        for start in range(0, rows, step):
            where = slice(start, min(rows, start + step))
            slices = {id(v): v.read(where) for v in table.variables}
            arrays = []
            for variable, _, take in plan:
                values, time = slices[id(variable)][take], times[id(variable)]
                arrays.append(_timestamps(values, variable, *time) if time else _arrow(values, variable))
            yield arrays, where.stop, rows

    result = build_dataset(out, names, batches(), limits, reporter, units=units)
    group = table.variables[0].group
    result["metadata"] = {
        **metadata,
        "group": group or "/",
        "group_attributes": metadata["groups"].get(group, {}),
        "columns": described,
        "dimension": table.variables[0].dims[0] if table.variables[0].dims else None,
    }
    result["metadata"].pop("groups")
    return result


def _check_sizes(tables: list[Table], path: Path, limits: Limits) -> None:
    """Declared sizes a file could not hold (huge shapes over unallocated chunks) are refused."""
    allowed = max(limits.max_uncompressed_bytes, int(path.stat().st_size * limits.max_compression_ratio))
    declared = sum(int(np.prod(v.shape)) * max(1, v.dtype.itemsize) for t in tables for v in t.variables)
    if declared > allowed:
        raise limit_exceeded(
            f"the arrays to read declare {declared} bytes, far more than a file of this size holds"
        )


def ingest_arrays(
    path: Path, options: dict[str, Any], limits: Limits, reporter: Reporter, work_dir: Path, *, classic: bool
) -> tuple[str, list[dict[str, Any]]]:
    """(format, datasets) of an HDF5 or NetCDF file."""
    warnings = Warnings()
    reporter.progress("parse", 0, 1, "reading the list of arrays")
    handle, walk = _walk_netcdf3(path, warnings) if classic else _walk_hdf5(path, warnings)
    try:
        fmt = "netcdf" if walk.netcdf else "hdf5"
        metadata: dict[str, Any] = {
            "format": "NetCDF-3" if classic else ("NetCDF-4" if walk.netcdf else "HDF5"),
            "file_attributes": walk.groups.get("", {}),
            "groups": walk.groups,
            "variables": [
                {"name": v.path, "shape": list(v.shape), "dtype": str(v.dtype)} for v in walk.variables
            ][:500],
            "scalars": {},
            "short_arrays": {},
        }
        part = "the list of arrays"
        try:
            tables = _tables(walk, list(options.get("variables") or []), metadata, warnings)
            _check_sizes(tables, path, limits)
            results = []
            for index, table in enumerate(tables):
                part = table.part or "the table"
                reporter.progress("parse", index, len(tables), f"table {table.part or '/'}")
                result = _read_table(table, limits, reporter, work_dir / f"part-{index}.parquet", metadata)
                result["warnings"] = warnings.result()
                results.append({**result, "part": table.part or None})
        except H5PY_ERRORS as exc:  # h5py and numpy raise these on damaged data and layouts no table can hold
            raise JobFailed(
                "corrupt_file", f"{part} cannot be read: {type(exc).__name__}: {str(exc)[:200]}"
            ) from None
        return fmt, results
    finally:
        _close(handle)


def _close(handle: Any) -> None:
    with warnings_module.catch_warnings():
        warnings_module.simplefilter("ignore", RuntimeWarning)  # scipy: mapped arrays still referenced
        handle.close()
