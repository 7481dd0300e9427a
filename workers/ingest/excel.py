"""Excel workbooks (.xlsx, .xlsm, .xls); each selected sheet is a dataset.

A sheet whose first row holds the names of typed columns (the common case) is read by fastexcel
straight into Arrow; any other sheet (a title or units above the table, columns mixing text and
numbers, .xls) cell by cell with python-calamine, which finds where the table starts.

An .xlsx is a zip of XML files: before anything reads it, the archive is checked (entry count,
total uncompressed size, compression ratio) and its XML parts are refused if they declare a DTD
or entities, so zip bombs and entity expansion never get a chance to run.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import IO, Any
from xml.parsers import expat

import defusedxml.ElementTree as safe_xml
import fastexcel
import pyarrow as pa
import pyarrow.compute as pc
from defusedxml import DefusedXmlException
from python_calamine import CalamineError, CalamineWorkbook, PasswordError

from workers.ingest.common import (
    DatasetBuilder,
    Limits,
    Warnings,
    clean_names,
    limit_exceeded,
)
from workers.ingest.header import cell_kind, find_header
from workers.worker import JobFailed, Reporter

BATCH_ROWS = 50_000
HEADER_SCAN_ROWS = 50


def check_archive(path: Path, limits: Limits) -> None:
    try:
        _check_archive(path, limits)
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, OSError, EOFError, ValueError) as exc:
        # a damaged part (bad CRC, bad deflate stream, a bogus header) shows when it is read
        raise JobFailed(
            "corrupt_file", f"the workbook is damaged: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None


def _check_archive(path: Path, limits: Limits) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError):
        raise JobFailed("corrupt_file", "the workbook is damaged: it is not a readable zip archive") from None
    with archive:
        entries = archive.infolist()
        if len(entries) > limits.max_zip_entries:
            raise limit_exceeded(
                f"the workbook has {len(entries)} parts; at most {limits.max_zip_entries} are accepted"
            )
        total = sum(e.file_size for e in entries)
        if total > limits.max_uncompressed_bytes:
            raise limit_exceeded(
                f"the workbook unpacks to {total} bytes; at most {limits.max_uncompressed_bytes} are accepted"
            )
        packed = sum(e.compress_size for e in entries)
        if total > 10 * 1024 * 1024 and total > packed * limits.max_compression_ratio:
            raise limit_exceeded(
                "the workbook is compressed far more than real spreadsheets are (a zip bomb?)"
            )
        names = {e.filename for e in entries}
        if "[Content_Types].xml" not in names or not any(n.startswith("xl/workbook") for n in names):
            raise JobFailed("corrupt_file", "the file is a zip archive but not an Excel workbook")
        for entry in entries:
            if entry.filename.endswith((".xml", ".rels")):
                with archive.open(entry) as part:
                    _check_prolog(part)
        try:
            safe_xml.fromstring(archive.read("[Content_Types].xml"))
        except (DefusedXmlException, safe_xml.ParseError):
            raise JobFailed("corrupt_file", "the workbook's XML is damaged or unsafe") from None


class _RootReached(Exception):
    """The first element has started: no document type declaration can follow."""


PROLOG_CHUNK = 64 * 1024
_ENTITIES = "the workbook's XML declares a document type or entities (a known attack); it was not read"


def _check_prolog(part: IO[bytes]) -> None:
    """Refuse an XML part that declares a document type (and so entities). A DOCTYPE may only come
    before the first element, but after any amount of comments and processing instructions, and in
    any encoding the part declares (UTF-16 too): expat reads the part, streamed, up to its first
    element, whatever that takes, and stops there (a sheet's rows are never read twice)."""
    parser = expat.ParserCreate()

    def refuse(*_args: Any) -> None:
        raise JobFailed("corrupt_file", _ENTITIES)

    def root(*_args: Any) -> None:
        raise _RootReached

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.StartElementHandler = root
    read = 0
    try:
        while chunk := part.read(PROLOG_CHUNK):
            read += len(chunk)
            parser.Parse(chunk, False)
        if read == 0:
            return  # an empty part declares nothing (the reader says whether it needs it)
        parser.Parse(b"", True)
    except _RootReached:
        return
    except expat.ExpatError as exc:
        raise JobFailed("corrupt_file", f"the workbook's XML is damaged: {exc}") from None
    raise JobFailed("corrupt_file", "the workbook has an XML part with no element in it")


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value: Any) -> str | None:
    if _is_empty(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return value.isoformat() if isinstance(value, datetime | date | time) else str(value)


def column_array(values: list[Any]) -> pa.Array:
    """One column of cells as an Arrow array of the narrowest type that holds every value.

    Works on whole columns with C-level passes where it can: a 100,000-row sheet is read several
    times faster than cell by cell.
    """
    kinds = {type(v) for v in values}
    blanks = str in kinds and all(not v.strip() for v in values if type(v) is str)
    present = kinds - {type(None)} - ({str} if blanks else set())
    cleaned = [None if type(v) is str or v is None else v for v in values] if blanks else values
    if not present:
        return pa.array([None] * len(values), type=pa.string())
    if present <= {int, float}:
        floats = pa.array(cleaned, type=pa.float64(), from_pandas=True)
        try:
            return floats.cast(pa.int64())  # whole numbers only: "safe" refuses to truncate
        except pa.ArrowInvalid:
            return floats
    if present == {bool}:
        return pa.array(cleaned, type=pa.bool_())
    if present <= {datetime, date}:
        return pa.array(
            [datetime(v.year, v.month, v.day) if type(v) is date else v for v in cleaned],  # noqa: DTZ001 - Excel dates have no time zone
            type=pa.timestamp("us"),
        )
    if present == {timedelta}:
        return pa.array([None if v is None else v.total_seconds() for v in cleaned], type=pa.float64())
    return pa.array([v if type(v) is str and v.strip() else _text(v) for v in values], type=pa.string())


def _too_wide(name: str, width: int, limits: Limits) -> JobFailed:
    return limit_exceeded(f"sheet {name!r} has {width} columns; at most {limits.max_columns} are accepted")


def _read_sheet(
    workbook: CalamineWorkbook,
    name: str,
    options: dict[str, Any],
    limits: Limits,
    reporter: Reporter,
    out: Path,
) -> dict[str, Any] | None:
    rows: list[list[Any]] = [list(r) for r in workbook.get_sheet_by_name(name).iter_rows()]
    while rows and all(_is_empty(v) for v in rows[-1]):
        rows.pop()
    lead = next((i for i, r in enumerate(rows) if not all(_is_empty(v) for v in r)), len(rows))
    rows = rows[lead:]
    if not rows:
        return None
    width = max(len(r) for r in rows)
    if width > limits.max_columns:
        raise _too_wide(name, width, limits)
    rows = [r + [None] * (width - len(r)) for r in rows]
    warnings = Warnings()
    mode = options.get("header_mode", "file")
    scan = [[None if _is_empty(v) else v for v in r] for r in rows[:HEADER_SCAN_ROWS]]
    found = find_header(scan, width, mode="none" if mode == "none" else "file", kind=cell_kind, ragged=False)
    assert found is not None  # the first row is not empty
    if mode == "custom":
        custom = list(options.get("custom_headers") or [])
        if len(custom) != width:
            raise JobFailed(
                "invalid_options",
                f"custom_headers has {len(custom)} names but sheet {name!r} has {width} columns",
            )
        header = custom
    elif found.names is not None:
        header = found.names
    else:
        header = [f"column_{i}" for i in range(1, width + 1)]
        if mode == "file":
            warnings.add(
                "header_not_found",
                "the first row looks like data, so it was kept as data and columns were numbered",
            )
    data = rows[found.start :]
    columns = [[r[i] for r in data] for i in range(width)]
    # columns without a name and without a single value ("Unnamed: 3" in pandas) are dropped
    keep = [i for i in range(width) if str(header[i]).strip() or any(not _is_empty(v) for v in columns[i])]
    names = clean_names([header[i] for i in keep])
    units = {n: u for n, i in zip(names, keep, strict=True) if i < len(found.units) and (u := found.units[i])}
    arrays = [column_array(columns[i]) for i in keep]
    del columns
    result = _write_sheet(names, arrays, units, limits, reporter, out)
    if result is None:
        return None
    result["warnings"] = warnings.result()

    def row_number(row: int | None) -> int | None:
        return None if row is None else lead + row + 1

    result["metadata"] = {
        "sheet": name,
        "header_row": row_number(found.names_row),
        "units_row": row_number(found.units_row),
        "group_row": row_number(found.group_row),
        "skipped_rows": [row_number(i) for i in found.skipped],
        "preamble": [" ".join(_text(v) or "" for v in rows[i]).strip() for i in found.skipped],
        "dropped_empty_columns": width - len(keep),
    }
    return result


# -- the fast path: a names row on top of typed columns, read by fastexcel ---------------------------

_FIRST_VALUE = re.compile(rb'<c\b[^>]*?\br="[A-Z]+(\d+)"[^>]*?(?<!/)>(?:(?!</c>).){0,2000}?<(?:v|is)\b', re.S)


def _first_row_with_values(path: Path, name: str) -> int | None:
    """The 1-based row of the first cell with a value in an .xlsx sheet, from the start of its XML
    (fastexcel does not say how many empty rows it skipped; the metadata counts rows as Excel does)."""
    try:
        with zipfile.ZipFile(path) as archive:
            book = safe_xml.fromstring(archive.read("xl/workbook.xml"))
            rels = safe_xml.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
            relation = next(
                (
                    sheet.get("{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id")
                    for sheet in book.iter("{http://schemas.openxmlformats.org/spreadsheetml/2006/main}sheet")
                    if sheet.get("name") == name
                ),
                None,
            )
            target = next((r.get("Target") for r in rels if r.get("Id") == relation), None)
            if not target:
                return None
            part = target.lstrip("/") if target.startswith("/") else f"xl/{target}"
            with archive.open(part) as sheet_xml:
                head = sheet_xml.read(256 * 1024)
    except Exception:  # noqa: BLE001 - a damaged part: the cell-by-cell reader reads what it can and names the rest
        return None
    found = _FIRST_VALUE.search(head)
    return int(found.group(1)) if found else None


def _arrow_column(column: pa.Array) -> pa.Array:
    """fastexcel's column as column_array would have typed the same cells."""
    kind = column.type
    if pa.types.is_null(kind):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_floating(kind):
        try:
            return column.cast(pa.int64())  # whole numbers only: "safe" refuses to truncate
        except pa.ArrowInvalid:
            return column
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return column.cast(pa.timestamp("us"))
    if pa.types.is_duration(kind):
        return pc.divide(
            column.cast(pa.int64()).cast(pa.float64()), {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[kind.unit]
        )
    return column


class NotForFastexcel(Exception):
    pass


def _read_sheet_fast(
    reader: fastexcel.ExcelReader, path: Path, name: str, limits: Limits, reporter: Reporter, out: Path
) -> dict[str, Any] | None:
    """The sheet read whole by fastexcel when its first row is the names row of typed columns, as
    the cell-by-cell reader would have found; NotForFastexcel when it is not."""
    first = _first_row_with_values(path, name)
    if first is None:
        raise NotForFastexcel
    try:
        sheet = reader.load_sheet(
            name,
            dtype_coercion="strict",  # a column mixing text and numbers goes the slow way
            schema_sample_rows=None,
            whitespace_as_null=True,
            skip_whitespace_tail_rows=True,
        )
        columns_info = sheet.available_columns()
        width = len(columns_info)
        batch = sheet.to_arrow() if width <= limits.max_columns else None
    except Exception:  # noqa: BLE001 - whatever fastexcel cannot read, the cell-by-cell reader reads or names
        raise NotForFastexcel from None
    except BaseException as exc:  # a Rust panic (pyo3's PanicException) is a BaseException
        if type(exc).__name__ == "PanicException":
            raise NotForFastexcel from None
        raise
    if batch is None:
        raise _too_wide(name, width, limits)
    header = [c.name if c.column_name_from == "looked_up" else "" for c in columns_info]
    named = set(header) - {""}
    if width == 0 or any(h.rpartition("_")[0] in named for h in header):
        raise NotForFastexcel  # repeated names (fastexcel renames x, x to x, x_1): the other reader numbers them
    top = batch.slice(0, HEADER_SCAN_ROWS - 1).to_pylist()
    scan = [[h.strip() or None for h in header], *([row[n] for n in batch.schema.names] for row in top)]
    found = find_header(scan, width, mode="file", kind=cell_kind, ragged=False)
    where = None if found is None else (found.start, found.names_row, found.units_row, found.group_row)
    if where != (1, 0, None, None) or found is None or found.skipped:
        raise NotForFastexcel  # a title, units or a second header row above the data: the cell-by-cell reader
    keep = [i for i in range(width) if header[i].strip() or batch.column(i).null_count < batch.num_rows]
    names = clean_names([header[i] for i in keep])
    arrays = [_arrow_column(batch.column(i)) for i in keep]
    result = _write_sheet(names, arrays, {}, limits, reporter, out)
    if result is None:
        return None
    result["warnings"] = Warnings().result()
    result["metadata"] = {
        "sheet": name, "header_row": first, "units_row": None, "group_row": None, "skipped_rows": [],
        "preamble": [], "dropped_empty_columns": width - len(keep),
    }  # fmt: skip
    return result


def _write_sheet(
    names: list[str],
    arrays: list[pa.Array],
    units: dict[str, str],
    limits: Limits,
    reporter: Reporter,
    out: Path,
) -> dict[str, Any] | None:
    """The sheet's columns as a dataset; None when it has no rows."""
    schema = pa.schema([pa.field(n, a.type) for n, a in zip(names, arrays, strict=True)])
    rows = len(arrays[0]) if arrays else 0
    builder = DatasetBuilder(out, schema, limits, reporter, units=units)
    try:
        for start in range(0, rows, BATCH_ROWS):
            batch = pa.RecordBatch.from_arrays([a.slice(start, BATCH_ROWS) for a in arrays], schema=schema)
            builder.add(batch, done=min(rows, start + BATCH_ROWS), total=rows)
        result = builder.finish()
        if result["row_count"] == 0:
            builder.abort()
            return None
    except BaseException:
        builder.abort()
        raise
    return result


def ingest_excel(
    path: Path, options: dict[str, Any], limits: Limits, reporter: Reporter, work_dir: Path, *, zipped: bool
) -> list[dict[str, Any]]:
    if zipped:
        check_archive(path, limits)
    reader = None
    if zipped and options.get("header_mode", "file") == "file":
        try:
            reader = fastexcel.read_excel(path)
        except fastexcel.FastExcelError:
            reader = None  # the cell-by-cell reader says what is wrong, in its words
    workbook: CalamineWorkbook | None = None

    def calamine() -> CalamineWorkbook:
        nonlocal workbook
        if workbook is None:
            workbook = _open_workbook(path)
        return workbook

    available = list(reader.sheet_names) if reader is not None else list(calamine().sheet_names)
    wanted = options.get("sheets") or available
    missing = [s for s in wanted if s not in available]
    if missing:
        raise JobFailed(
            "invalid_options",
            f"sheet(s) {', '.join(map(repr, missing))} not found; the workbook has {available}",
        )
    results = []
    for index, name in enumerate(wanted):
        reporter.progress("parse", index, len(wanted), f"sheet {name}")
        out = work_dir / f"sheet-{index}.parquet"
        try:
            if reader is None:
                raise NotForFastexcel
            result = _read_sheet_fast(reader, path, name, limits, reporter, out)
        except NotForFastexcel:
            try:
                result = _read_sheet(calamine(), name, options, limits, reporter, out)
            except (CalamineError, ValueError) as exc:
                raise JobFailed("corrupt_file", f"sheet {name!r} cannot be read: {str(exc)[:200]}") from None
        if result is not None:
            results.append({**result, "sheet": name})
    if not results:
        raise JobFailed("no_tabular_data", "the workbook's sheets are empty")
    return results


def _open_workbook(path: Path) -> CalamineWorkbook:
    try:
        return CalamineWorkbook.from_path(str(path))
    except PasswordError:
        raise JobFailed(
            "unsupported_format", "the workbook is password-protected; save it without a password"
        ) from None
    except (CalamineError, ValueError, OSError) as exc:
        raise JobFailed("corrupt_file", f"the workbook cannot be read: {str(exc)[:200]}") from None
