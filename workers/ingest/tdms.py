"""NI TDMS files (LabVIEW, DAQmx) through npTDMS, streamed: one dataset per group, channels as columns.

The file is opened with `TdmsFile.open`, which reads the metadata of every segment and none of the
data; each column is then read in slices. Channels of one group that have the same length form a
table (a group whose channels differ in length gives one table per length); a waveform channel
(`wf_increment`) gives the table a `time` column in seconds from `wf_start_offset`. `unit_string`
becomes the column's unit, file, group and channel properties go to the metadata. A file whose
last segment was cut off (a crashed writer, a partial copy) is refused: npTDMS would silently read
less than the file claims.
"""

from __future__ import annotations

import logging
import struct
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from nptdms import TdmsFile

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

LEAD_IN = struct.Struct("<4sIIQQ")
BIG_ENDIAN = 1 << 6
INCOMPLETE = 0xFFFFFFFFFFFFFFFF
MAX_SEGMENTS = 5_000_000
MAX_TABLES = 200
MAX_PROPERTY_TEXT = 2000


def check_segments(path: Path) -> int:
    """The number of segments; refuses a file whose segments do not end where the file does."""
    size = path.stat().st_size
    position = segments = 0
    with path.open("rb") as handle:
        while position < size:
            handle.seek(position)
            raw = handle.read(LEAD_IN.size)
            if len(raw) < LEAD_IN.size:
                raise JobFailed(
                    "corrupt_file",
                    f"the TDMS file is truncated: a segment header at byte {position} is cut off",
                )
            tag, toc, _, next_offset, _ = LEAD_IN.unpack(raw)
            if tag != b"TDSm":
                raise JobFailed(
                    "corrupt_file", f"the TDMS file is damaged: no segment starts at byte {position}"
                )
            if toc & BIG_ENDIAN:
                next_offset = struct.unpack(">Q", raw[12:20])[0]
            if next_offset == INCOMPLETE or position + LEAD_IN.size + next_offset > size:
                raise JobFailed(
                    "corrupt_file",
                    f"the TDMS file is truncated: segment {segments + 1} claims more bytes than the file holds "
                    "(was the writer stopped, or the copy cut short?)",
                )
            position += LEAD_IN.size + next_offset
            segments += 1
            if segments > MAX_SEGMENTS:
                raise limit_exceeded(f"the TDMS file has more than {MAX_SEGMENTS} segments")
    return segments


def _property(value: Any) -> Any:
    if isinstance(value, np.datetime64):
        return str(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str):
        return value[:MAX_PROPERTY_TEXT]
    return json_safe(value)


def _properties(properties: Any) -> dict[str, Any]:
    return {str(k): _property(v) for k, v in list(properties.items())[:200]}


@contextmanager
def _npTDMS_problems() -> Iterator[list[str]]:
    """What npTDMS logs as warnings while reading (it logs, rather than raises, on damaged metadata)."""
    problems: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            problems.append(record.getMessage())

    logger = logging.getLogger("nptdms")
    handler = Collect(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield problems
    finally:
        logger.removeHandler(handler)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _open(path: Path) -> TdmsFile:
    with _npTDMS_problems() as problems:
        try:
            tdms = TdmsFile.open(str(path))
        except MemoryError:
            raise
        except Exception as exc:  # noqa: BLE001 - npTDMS parses untrusted bytes and raises many kinds of errors
            raise JobFailed("corrupt_file", f"the TDMS file cannot be read: {_describe(exc)}") from None
    if problems:
        tdms.close()
        raise JobFailed("corrupt_file", f"the TDMS file is damaged: {problems[0][:200]}")
    return tdms


def _arrow(values: np.ndarray) -> pa.Array:
    if values.dtype.kind == "M":
        return pa.array(values.astype("datetime64[us]"))
    if values.dtype.kind == "O":
        return pa.array([None if v is None else str(v) for v in values.tolist()], type=pa.string())
    if values.dtype.kind == "f" and values.dtype.itemsize < 8:
        values = values.astype(np.float64)
    return pa.array(values)


def _read_group(
    name: str, channels: list[Any], limits: Limits, reporter: Reporter, out: Path, metadata: dict[str, Any]
) -> dict[str, Any]:
    rows = len(channels[0])
    increments = {ch.properties.get("wf_increment") for ch in channels}
    shared = increments.pop() if len(increments) == 1 else None
    increment = float(shared) if isinstance(shared, int | float) and shared > 0 else 0.0
    waveform = increment > 0
    offset = float(channels[0].properties.get("wf_start_offset", 0.0) or 0.0)
    raw_names = (["time"] if waveform else []) + [ch.name for ch in channels]
    if len(raw_names) > limits.max_columns:
        raise limit_exceeded(
            f"group {name!r} has {len(raw_names)} channels; at most {limits.max_columns} are accepted"
        )
    names = clean_names(raw_names)
    units = {"time": "s"} if waveform else {}
    for channel, column in zip(channels, names[1:] if waveform else names, strict=True):
        unit = channel.properties.get("unit_string")
        if isinstance(unit, str) and unit.strip():
            units[column] = unit.strip()
    step = batch_rows(8 * len(names))  # most channels are 8 bytes a value, or smaller

    def batches() -> Iterator[tuple[list[pa.Array], int, int]]:
        for start in range(0, rows, step):
            count = min(step, rows - start)
            arrays = (
                [pa.array(offset + np.arange(start, start + count, dtype=np.float64) * increment)]
                if waveform
                else []
            )
            arrays += [_arrow(np.asarray(channel.read_data(start, count))) for channel in channels]
            yield arrays, start + count, rows

    result = build_dataset(out, names, batches(), limits, reporter, units=units)
    result["metadata"] = {
        **metadata,
        "channels": {
            column: _properties(ch.properties)
            for column, ch in zip(names[1:] if waveform else names, channels, strict=True)
        },
        "waveform": {"increment_s": increment, "start_offset_s": offset} if waveform else None,
    }
    return result


def ingest_tdms(
    path: Path, options: dict[str, Any], limits: Limits, reporter: Reporter, work_dir: Path
) -> list[dict[str, Any]]:
    reporter.progress("parse", 0, 1, "reading the segments' metadata")
    segments = check_segments(path)
    with _open(path) as tdms:
        try:
            return _read_groups(tdms, options, limits, reporter, work_dir, segments)
        except (JobFailed, MemoryError):
            raise
        except NotImplementedError as exc:
            raise JobFailed(
                "unsupported_format", f"the TDMS file holds data npTDMS cannot read: {_describe(exc)}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - npTDMS reads untrusted bytes and raises many kinds of errors
            raise JobFailed("corrupt_file", f"the TDMS file cannot be read: {_describe(exc)}") from None


def _read_groups(
    tdms: TdmsFile, options: dict[str, Any], limits: Limits, reporter: Reporter, work_dir: Path, segments: int
) -> list[dict[str, Any]]:
    warnings = Warnings()
    wanted = set(options.get("variables") or [])
    groups = tdms.groups()
    known = {g.name for g in groups}
    missing = sorted(w for w in wanted if w not in known)
    if missing:
        raise JobFailed("invalid_options", f"group(s) {missing} are not in the file; it has {sorted(known)}")
    tables: list[tuple[str, dict[str, Any], list[Any]]] = []
    for group in groups:
        if wanted and group.name not in wanted:
            continue
        by_length: dict[int, list[Any]] = defaultdict(list)
        for channel in group.channels():
            if channel.dtype is not None and np.dtype(channel.dtype).kind == "c":
                warnings.add("skipped_channels", "complex channels were left out", example=channel.path)
            elif len(channel) > 0:
                by_length[len(channel)].append(channel)
        for length, channels in sorted(by_length.items(), key=lambda item: -item[0]):
            part = group.name if len(by_length) == 1 else f"{group.name} ({length} rows)"
            tables.append((part, _properties(group.properties), channels))
    if not tables:
        raise JobFailed("no_tabular_data", "the TDMS file holds no channels with data")
    if len(tables) > MAX_TABLES:
        warnings.add(
            "too_many_tables",
            f"only the first {MAX_TABLES} tables were read",
            count=len(tables) - MAX_TABLES,
        )
    metadata = {"file_properties": _properties(tdms.properties), "segments": segments}
    results = []
    for index, (part, properties, channels) in enumerate(tables[:MAX_TABLES]):
        reporter.progress("parse", index, len(tables), f"group {part}")
        result = _read_group(
            part, channels, limits, reporter, work_dir / f"part-{index}.parquet",
            {**metadata, "group": part, "group_properties": properties},
        )  # fmt: skip
        result["warnings"] = warnings.result()
        results.append({**result, "part": part})
    return results
