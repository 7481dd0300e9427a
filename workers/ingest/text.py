"""Delimited text (CSV, TSV, .txt, .dat, .c): sniffed, then parsed in blocks by pyarrow's
streaming reader; whitespace-separated data, comment lines and other encodings go through a
streaming transform that feeds pyarrow clean UTF-8."""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from workers.ingest.common import (
    DatasetBuilder,
    Limits,
    Warnings,
    clean_names,
    is_number,
    limit_exceeded,
)
from workers.ingest.header import find_header
from workers.worker import JobFailed, Reporter

SNIFF_BYTES = 256 * 1024
SNIFF_LINES = 400
# wide tables (spectra, arrays: tens of thousands of columns) have lines longer than SNIFF_BYTES:
# the sniffer reads on until it holds this many whole lines, or MAX_SNIFF_BYTES
SNIFF_MIN_LINES = 25
MAX_SNIFF_BYTES = 64 * 1024 * 1024
COMMENT_PREFIXES = ("#", "%", "//")
DELIMITERS = (",", "\t", ";", "|")
WHITESPACE = " "  # marker: runs of spaces and tabs separate fields
NORMALISED = "\t"  # what whitespace-separated rows are rewritten to for pyarrow
TIMESTAMP_FORMATS = [
    pacsv.ISO8601,
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y %H:%M",
    "%d.%m.%Y",
    "%Y/%m/%d",
]
MAX_RESTARTS = 20
_CONVERSION = re.compile(r"In CSV column #(\d+): .*CSV conversion error to (\w+)")
_WIDER = {"int64": pa.float64(), "double": pa.string(), "null": pa.float64()}


@attrs.frozen
class Layout:
    """What sniffing found out about a text file."""

    encoding: str
    delimiter: str
    start_offset: int  # byte offset of the first table line (header or data)
    start_line: int  # its 0-based line number
    names: list[str] | None  # from the header row, when there is one
    skip_rows: int  # rows between the first table line and the data (names, units)
    units: list[str | None]  # from a units row
    width: int
    unnamed_empty: list[int]  # trailing columns with neither a name nor a value so far: dropped
    decimal_comma: bool
    needs_transform: bool
    metadata: list[str]
    evidence: dict[str, Any]  # header_row, units_row, skipped_rows (1-based line numbers)


def detect_encoding(head: bytes) -> tuple[str, int]:
    """(codec, length of the byte order mark) for the start of a file."""
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8", 3
    if head.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le", 2
    if head.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be", 2
    sample = head[:4096]
    if sample and sample.count(b"\x00") > len(sample) // 4:
        # UTF-16 without a BOM: every other byte is zero
        return ("utf-16-le" if sample[1::2].count(0) > sample[0::2].count(0) else "utf-16-be"), 0
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sample
            return "latin-1", 0
    return "utf-8", 0


def _check_text(text: str) -> None:
    if not text.strip():
        raise JobFailed("no_tabular_data", "the file is empty")
    window = text[:20000]
    controls = sum(1 for ch in window if ord(ch) < 32 and ch not in "\r\n\t\f\v")
    if "\x00" in window or controls > len(window) * 0.02:
        raise JobFailed("corrupt_file", "the file is not text: it holds binary data")


# a whitespace-separated field: double-quoted (may hold spaces and tabs; "" is a quote; text right
# after the closing quote belongs to it, as in csv) or a bare run of non-space characters, in which
# a quote is just a character -- what astropy's basic reader and pandas' sep=r"\s+" read
_WHITESPACE_FIELD = re.compile(r'"((?:[^"]|"")*)"(\S*)|(\S+)')


def split_whitespace(line: str) -> list[str]:
    """Fields of a whitespace-separated line: runs of spaces and tabs are one separator, leading and
    trailing whitespace is ignored, and double quotes group a field."""
    if '"' not in line:
        return line.split()
    fields = []
    for quoted, after, bare in _WHITESPACE_FIELD.findall(line):
        fields.append(bare or quoted.replace('""', '"') + after)
    return fields


def whitespace_to_tabs(line: str) -> str:
    """A whitespace-separated line as pyarrow reads it: tab-delimited, a field quoted where it holds
    a tab or a quote."""
    if '"' not in line:
        return NORMALISED.join(line.split())
    return NORMALISED.join(
        '"' + field.replace('"', '""') + '"' if "\t" in field or '"' in field else field
        for field in split_whitespace(line)
    )


def _fields(line: str, delimiter: str) -> list[str]:
    if delimiter == WHITESPACE:
        return split_whitespace(line)
    return next(csv.reader([line], delimiter=delimiter), [])


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith(COMMENT_PREFIXES)


def _choose_delimiter(lines: list[str], extension: str) -> tuple[str, int]:
    """The delimiter whose field count is the most consistent over the table lines, and that count."""
    candidates = [d for d in DELIMITERS if any(d in line for line in lines)] + [WHITESPACE]
    best = (WHITESPACE, 1, -1.0)
    for delimiter in candidates:
        counts = Counter(len(_fields(line, delimiter)) for line in lines)
        width, hits = counts.most_common(1)[0]
        if width < 2:
            continue
        score = hits / len(lines) + (0.05 if delimiter == "\t" and extension == ".tsv" else 0)
        score += 0.02 if delimiter != WHITESPACE else 0  # a real delimiter wins a tie
        if score > best[2]:
            best = (delimiter, width, score)
    return best[0], best[1]


def _head(path: Path, max_columns: int) -> tuple[bytes, bool]:
    """The start of the file, holding SNIFF_MIN_LINES whole lines when it can (not when its lines
    already hold more fields than a table may have: it is refused then); whether it is all of it."""
    wanted = SNIFF_BYTES
    with path.open("rb") as handle:
        head = handle.read(wanted)
        while (
            len(head) == wanted
            and head.count(b"\n") < SNIFF_MIN_LINES
            and wanted < MAX_SNIFF_BYTES
            and max(head.count(d.encode()) for d in DELIMITERS) <= max_columns * SNIFF_MIN_LINES
        ):
            more = handle.read(wanted)
            head += more
            wanted *= 2
            if not more:
                break
        whole = not handle.read(1)
    return head, whole


def count_fields(path: Path, layout: Layout, most_bytes: int = 1024**3) -> int:
    """The fields of the table's first line, read to its end (the sniffer may have seen it cut):
    what a refusal for too many columns says."""
    if layout.delimiter == WHITESPACE:
        return layout.width
    delimiter = layout.delimiter.encode(layout.encoding if layout.encoding != "utf-8-sig" else "utf-8")
    delimiter = delimiter.removeprefix(codecs.BOM_UTF16_LE).removeprefix(codecs.BOM_UTF16_BE)
    count, read = 1, 0
    with path.open("rb") as handle:
        handle.seek(layout.start_offset)
        while read < most_bytes and (chunk := handle.read(8 * 1024 * 1024)):
            end = chunk.find(b"\n")
            part = chunk if end < 0 else chunk[:end]
            count += part.count(delimiter)
            read += len(chunk)
            if end >= 0:
                break
    return max(count, layout.width)


def sniff(path: Path, options: dict[str, Any], warnings: Warnings, max_columns: int = 50_000) -> Layout:
    head, whole = _head(path, max_columns)
    encoding, bom = detect_encoding(head)
    text = head[bom:].decode(encoding, errors="replace")
    _check_text(text)
    lines = text.splitlines(keepends=True)[:SNIFF_LINES]
    if not whole and len(lines) > 1 and len(text.splitlines()) <= SNIFF_LINES:
        lines = lines[:-1]  # the last line may be cut
    first_line, last_line = _parse_range(options)
    window = range(first_line - 1, len(lines) if last_line is None else min(len(lines), last_line))
    content = [(i, lines[i].rstrip("\r\n")) for i in window if lines[i].strip() and not _is_comment(lines[i])]
    metadata = [lines[i].strip() for i in window if lines[i].strip() and _is_comment(lines[i])]
    if not content:
        raise JobFailed("no_tabular_data", "no table was found in the file (only comments or blank lines)")
    delimiter, width = _choose_delimiter([line for _, line in content[:200]], path.suffix.lower())
    # every line of the window in place (blank and comment lines as empty rows), so that rows that are
    # apart in the file are never taken for a names row and its units row
    table_lines = dict(content[:200])
    offset = window.start
    rows = [
        _fields(table_lines[i], delimiter) if i in table_lines else []
        for i in range(offset, max(table_lines) + 1)
    ]
    header_mode = options.get("header_mode", "file")
    found = find_header(rows, width, mode="none" if header_mode == "none" else "file")
    if found is None:
        raise JobFailed("no_tabular_data", "no table was found in the file")
    if options.get("strict"):
        _require_table(rows[found.start :], width)
    metadata += [lines[offset + i].strip() for i in found.skipped]
    start_line = offset + found.first
    if header_mode == "file" and found.names is None:
        warnings.add(
            "header_not_found",
            "the first row looks like data, so it was kept as data and columns were numbered",
        )
    data = rows[found.start : found.start + 50]
    decimal_comma = delimiter != "," and _decimal_comma(data)
    start_offset = bom + len("".join(lines[:start_line]).encode(encoding))
    later_comments = any(_is_comment(line) or not line.strip() for line in lines[start_line + 1 :])
    names = found.names if header_mode == "file" else None

    def line_number(row: int | None) -> int | None:
        return None if row is None else offset + row + 1

    return Layout(
        encoding=encoding,
        delimiter=delimiter,
        start_offset=start_offset,
        start_line=start_line,
        names=names,
        skip_rows=sum(1 for i in range(found.first, found.start) if rows[i]),
        units=found.units,
        width=width,
        unnamed_empty=_unnamed_empty(names, rows[found.start :], width),
        decimal_comma=decimal_comma,
        needs_transform=(
            encoding != "utf-8" or delimiter == WHITESPACE or later_comments or last_line is not None
        ),
        metadata=metadata[:200],
        evidence={
            "header_row": line_number(found.names_row),
            "units_row": line_number(found.units_row),
            "skipped_rows": [offset + i + 1 for i in found.skipped][:200],
        },
    )


def _require_table(data: list[list[str]], width: int) -> None:
    """For text under a name that promises no table: most lines must be rows of numbers of one width."""
    lines = [row for row in data if row]
    fitting = [row for row in lines if len(row) == width and any(is_number(v) for v in row)]
    if len(fitting) < 2 or len(fitting) < 0.8 * len(lines):
        raise JobFailed("no_tabular_data", "its lines are not rows of a table")


def _unnamed_empty(names: list[str] | None, data: list[list[str]], width: int) -> list[int]:
    """Trailing columns without a name that are empty in the rows seen (rows ending in a delimiter)."""
    columns: list[int] = []
    for c in range(width - 1, 0, -1):
        if (names and c < len(names) and names[c].strip()) or any(c < len(r) and r[c].strip() for r in data):
            break
        columns.append(c)
    return sorted(columns)


def _parse_range(options: dict[str, Any]) -> tuple[int, int | None]:
    parse_range = options.get("parse_range") or {}
    return int(parse_range.get("start_line") or 1), parse_range.get("end_line")


def _decimal_comma(rows: list[list[str]]) -> bool:
    values = [v.strip() for row in rows for v in row if v.strip()]
    comma = sum(1 for v in values if re.fullmatch(r"[+-]?\d+,\d+([eE][+-]?\d+)?", v))
    dot = sum(1 for v in values if re.fullmatch(r"[+-]?\d*\.\d+([eE][+-]?\d+)?", v))
    return comma > 0 and dot == 0


class CountingReader(io.RawIOBase):
    """A file object that knows how many bytes pyarrow has taken from it."""

    def __init__(self, path: Path, offset: int) -> None:
        self._file = path.open("rb")
        self._file.seek(offset)
        self.consumed = offset

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._file.readinto(buffer)
        self.consumed += n or 0
        return n or 0

    def close(self) -> None:
        self._file.close()
        super().close()


class TransformingReader(io.RawIOBase):
    """Streams the table part of a file as clean UTF-8: decoded, comment and blank lines dropped,
    runs of whitespace turned into one delimiter, lines past the parse range cut off."""

    def __init__(self, path: Path, layout: Layout, end_line: int | None, block: int) -> None:
        self._raw = CountingReader(path, layout.start_offset)
        self._decoder = codecs.getincrementaldecoder(layout.encoding)(errors="replace")
        self._whitespace = layout.delimiter == WHITESPACE
        self._remaining_lines = None if end_line is None else max(0, end_line - layout.start_line)
        self._block = block
        self._pending = b""
        self._tail = ""
        self._done = False

    @property
    def consumed(self) -> int:
        return self._raw.consumed

    def readable(self) -> bool:
        return True

    def _lines(self, text: str) -> Iterator[str]:
        for line in text.splitlines():
            if self._remaining_lines is not None:
                if self._remaining_lines <= 0:
                    self._done = True
                    return
                self._remaining_lines -= 1
            stripped = line.strip()
            if not stripped or stripped.startswith(COMMENT_PREFIXES):
                continue
            yield whitespace_to_tabs(stripped) if self._whitespace else line

    def _fill(self) -> None:
        while not self._pending and not self._done:
            chunk = self._raw.read(self._block)
            if not chunk:
                text, self._tail = self._tail + self._decoder.decode(b"", final=True), ""
                self._done = True
            else:
                text = self._tail + self._decoder.decode(chunk)
                cut = max(text.rfind("\n"), text.rfind("\r"))
                text, self._tail = (text[: cut + 1], text[cut + 1 :]) if cut >= 0 else ("", text)
            self._pending = "".join(line + "\n" for line in self._lines(text)).encode()

    def readinto(self, buffer: Any) -> int:
        self._fill()
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


class _UnnamedValues(Exception):
    """A column taken for an empty trailing one holds values after all: it is read again, kept."""


def _names(layout: Layout, options: dict[str, Any]) -> list[str]:
    if options.get("header_mode") == "custom":
        custom = list(options.get("custom_headers") or [])
        kept = layout.width - len(layout.unnamed_empty)
        if len(custom) not in (layout.width, kept):
            raise JobFailed(
                "invalid_options",
                f"custom_headers has {len(custom)} names but the data has {kept} columns",
            )
        return clean_names(custom + [""] * (layout.width - len(custom)))
    if layout.names is not None:
        return clean_names(layout.names + [""] * (layout.width - len(layout.names)))[: layout.width]
    return [f"column_{i}" for i in range(1, layout.width + 1)]


def ingest_text(
    path: Path, options: dict[str, Any], limits: Limits, reporter: Reporter, out: Path
) -> dict[str, Any]:
    warnings = Warnings()
    layout = sniff(path, options, warnings, limits.max_columns)
    if layout.width > limits.max_columns:
        raise limit_exceeded(
            f"the data has {count_fields(path, layout)} columns; at most {limits.max_columns} are accepted"
        )
    names = _names(layout, options)
    column_types: dict[str, pa.DataType] = {}
    total = path.stat().st_size
    wide = layout.width >= WIDE_COLUMNS
    for _ in range(MAX_RESTARTS):
        rejected = Warnings()
        try:
            if wide:
                result = _parse_wide(path, layout, names, options, limits, reporter, out, total, rejected)
            else:
                result = _parse(
                    path, layout, names, column_types, options, limits, reporter, out, total, rejected
                )
        except _NotWideNumbers:
            wide = False
            continue
        except _UnnamedValues:
            layout = attrs.evolve(layout, unnamed_empty=[])
            continue
        except pa.ArrowInvalid as exc:
            widened = _widen(str(exc), names, column_types)
            if widened is None:
                raise JobFailed(
                    "corrupt_file", f"the file cannot be parsed as a table: {str(exc)[:300]}"
                ) from None
            continue
        for entry in warnings.result() + rejected.result():
            result.setdefault("warnings", []).append(entry)
        result["metadata"] = {
            "comments": layout.metadata,
            "delimiter": "whitespace" if layout.delimiter == WHITESPACE else layout.delimiter,
            "encoding": layout.encoding,
            **layout.evidence,
            "decimal_comma": layout.decimal_comma,
        }
        return result
    raise JobFailed(
        "corrupt_file", "the column types kept changing through the file; it cannot be read as a table"
    )


def _widen(
    message: str, names: list[str], column_types: dict[str, pa.DataType]
) -> dict[str, pa.DataType] | None:
    """After a conversion error in a later block: make that column wider and read again."""
    match = _CONVERSION.search(message)
    if match is None:
        return None
    index, current = int(match.group(1)), match.group(2)
    if index >= len(names):
        return None
    name = names[index]
    wider = _WIDER.get(current, pa.string())
    if column_types.get(name) == wider == pa.string():
        return None
    column_types[name] = wider if current in _WIDER else pa.string()
    return column_types


def _table_source(
    path: Path, layout: Layout, options: dict[str, Any], limits: Limits
) -> CountingReader | TransformingReader:
    """The table part of the file as bytes: as it is, or cleaned up (TransformingReader)."""
    _, end_line = _parse_range(options)
    if layout.needs_transform:
        return TransformingReader(path, layout, end_line, limits.block_bytes)
    return CountingReader(path, layout.start_offset)


def _finished(builder: DatasetBuilder) -> dict[str, Any]:
    result = builder.finish()
    if result["row_count"] == 0:
        raise JobFailed("no_tabular_data", "the table has a header but no rows")
    return {**result, "warnings": []}


class _NotWideNumbers(Exception):
    """A wide table that is not all numbers (or quotes its fields): read by the general path."""


WIDE_COLUMNS = 2_000  # from this width on, a table of numbers is read by _parse_wide
WIDE_CHUNK_CELLS = 500_000  # cells converted at once by _parse_wide


def _wide_rows(source: CountingReader | TransformingReader, layout: Layout, encoding: str) -> Iterator[str]:
    """The table's lines (blank lines left out, the rows between names and data skipped)."""
    skip = layout.skip_rows
    for raw in io.BufferedReader(source, buffer_size=1024 * 1024):
        line = raw.decode(encoding, errors="replace").rstrip("\r\n")
        if not line.strip():
            continue
        if skip:
            skip -= 1
            continue
        yield line


def _parse_wide(
    path: Path,
    layout: Layout,
    names: list[str],
    options: dict[str, Any],
    limits: Limits,
    reporter: Reporter,
    out: Path,
    total: int,
    rejected: Warnings,
) -> dict[str, Any]:
    """A wide table of numbers (spectra, arrays: thousands of columns): pyarrow's CSV reader keeps
    per-column state that costs ~10 KB and a pass per column and block, so these rows are split here
    and converted a chunk of cells at a time with numpy; every column is a number (float64), empty
    cells are nulls. Time and memory stay linear in cells. Anything else raises _NotWideNumbers."""
    source = _table_source(path, layout, options, limits)
    delimiter = NORMALISED if layout.delimiter == WHITESPACE else layout.delimiter
    width = layout.width
    kept = [c for c in range(width) if c not in set(layout.unnamed_empty)]
    schema = pa.schema([(names[c], pa.float64()) for c in kept])
    units = {n: u for n, u in zip(names, layout.units, strict=False) if u}
    per_chunk = max(1, WIDE_CHUNK_CELLS // width)
    builder = DatasetBuilder(out, schema, limits, reporter, units=units)

    def flush(rows: list[list[str]]) -> None:
        cells = [v if v.strip() else "nan" for row in rows for v in row]
        if layout.decimal_comma:
            cells = [v.replace(",", ".") for v in cells]
        try:
            matrix = np.array(cells, dtype=np.float64).reshape(len(rows), width)
        except ValueError:
            raise _NotWideNumbers from None
        if layout.unnamed_empty and not np.isnan(matrix[:, layout.unnamed_empty]).all():
            raise _UnnamedValues
        arrays = [pa.array(matrix[:, c], type=pa.float64(), from_pandas=True) for c in kept]
        builder.add(pa.RecordBatch.from_arrays(arrays, schema=schema), done=source.consumed, total=total)

    try:
        rows: list[list[str]] = []
        for number, line in enumerate(_wide_rows(source, layout, "utf-8" if layout.needs_transform else layout.encoding)):
            if '"' in line:
                raise _NotWideNumbers
            fields = line.split(delimiter)
            if len(fields) != width:
                rejected.add("rejected_rows", f"rows without the table's {width} fields were left out",
                             example=f"row {number + 1}: {len(fields)} fields")  # fmt: skip
                continue
            rows.append(fields)
            if len(rows) >= per_chunk:
                flush(rows)
                rows = []
        if rows:
            flush(rows)
        return _finished(builder)
    except BaseException:
        builder.abort()
        raise
    finally:
        source.close()


def _parse(
    path: Path,
    layout: Layout,
    names: list[str],
    column_types: dict[str, pa.DataType],
    options: dict[str, Any],
    limits: Limits,
    reporter: Reporter,
    out: Path,
    total: int,
    rejected: Warnings,
) -> dict[str, Any]:
    source = _table_source(path, layout, options, limits)

    def invalid_row(row: Any) -> str:
        rejected.add(
            "rejected_rows",
            f"rows without the table's {row.expected_columns} fields were left out",
            example=f"line {row.number}: {str(row.text)[:200]}" if row.number else str(row.text)[:200],
        )
        return "skip"

    reader = pacsv.open_csv(
        source,
        read_options=pacsv.ReadOptions(
            column_names=names, skip_rows=layout.skip_rows, block_size=limits.block_bytes,
            encoding="utf8",
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=NORMALISED if layout.delimiter == WHITESPACE else layout.delimiter,
            invalid_row_handler=invalid_row,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=column_types, decimal_point="," if layout.decimal_comma else ".",
            timestamp_parsers=TIMESTAMP_FORMATS, strings_can_be_null=True, quoted_strings_can_be_null=False,
        ),
    )  # fmt: skip
    dropped = [names[c] for c in layout.unnamed_empty]
    schema = pa.schema([f for f in reader.schema if f.name not in dropped])
    units = {n: u for n, u in zip(names, layout.units, strict=False) if u}
    builder = DatasetBuilder(out, schema, limits, reporter, units=units)
    try:
        for read in reader:
            if dropped and any(read.column(n).null_count < read.num_rows for n in dropped):
                raise _UnnamedValues
            builder.add(read.select(schema.names) if dropped else read, done=source.consumed, total=total)
        return _finished(builder)
    except BaseException:
        builder.abort()
        raise
    finally:
        source.close()


# -- profile wind_tunnel -----------------------------------------------------------------------------


class _WindTunnelRows:
    """Collects the numeric rows of a wind-tunnel export into record batches."""

    def __init__(self, names: list[str], limits: Limits, reporter: Reporter, out: Path, total: int) -> None:
        self.columns: list[list[float]] = [[] for _ in names]
        self.builder = DatasetBuilder(out, pa.schema([(n, pa.float64()) for n in names]), limits, reporter)
        self.total = total

    def add(self, fields: list[str], done: int) -> bool:
        if len(fields) != len(self.columns) or not all(is_number(f) for f in fields):
            return False
        for column, value in zip(self.columns, fields, strict=True):
            column.append(float(value.replace(",", ".")))
        if len(self.columns[0]) >= 50_000:
            self.flush(done)
        return True

    def flush(self, done: int) -> None:
        if self.columns[0]:
            arrays = [pa.array(c, type=pa.float64()) for c in self.columns]
            self.builder.add(
                pa.RecordBatch.from_arrays(arrays, schema=self.builder.schema), done=done, total=self.total
            )
            self.columns = [[] for _ in self.columns]


def ingest_wind_tunnel(
    path: Path, options: dict[str, Any], limits: Limits, reporter: Reporter, out: Path
) -> dict[str, Any]:
    """Skip to the line holding %Dyn; header tokens (comma separated, % stripped) until the first
    numeric row; then numeric rows only, every other line skipped and counted."""
    with path.open("rb") as handle:
        encoding, _ = detect_encoding(handle.read(SNIFF_BYTES))
    warnings = Warnings()
    preamble: list[str] = []
    tokens: list[str] = []
    rows: _WindTunnelRows | None = None
    done = 0
    codec = "utf-8-sig" if encoding == "utf-8" else encoding
    with path.open("r", encoding=codec, errors="replace", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            done += len(line)
            stripped = line.strip()
            if rows is None and not tokens and "%Dyn" not in line:
                if stripped:
                    preamble.append(stripped)
                continue
            fields = [f for f in re.split(r"[,;\s]+", stripped) if f]
            if rows is None:
                if fields and all(is_number(f) for f in fields):
                    names = (
                        clean_names(tokens)
                        if len(tokens) == len(fields)
                        else _fit(tokens, len(fields), warnings)
                    )
                    rows = _WindTunnelRows(names, limits, reporter, out, path.stat().st_size)
                else:
                    tokens += [
                        t.strip().lstrip("%").strip()
                        for t in stripped.split(",")
                        if t.strip().lstrip("%").strip()
                    ]
                    continue
            if not rows.add(fields, done) and stripped:
                warnings.add("skipped_lines", "lines that are not numeric rows were skipped",
                             example=f"line {number}: {stripped[:200]}")  # fmt: skip
    if rows is None:
        raise JobFailed(
            "no_tabular_data", "no %Dyn header followed by numeric rows was found (profile wind_tunnel)"
        )
    try:
        rows.flush(done)
        result = rows.builder.finish()
    except BaseException:
        rows.builder.abort()
        raise
    result["warnings"] = warnings.result()
    result["metadata"] = {"preamble": preamble[:200], "profile": "wind_tunnel"}
    return result


def _fit(tokens: list[str], width: int, warnings: Warnings) -> list[str]:
    warnings.add(
        "header_mismatch",
        f"the header has {len(tokens)} names but the rows have {width} values; extra names were dropped "
        "and missing ones numbered",
    )
    return clean_names((tokens + [""] * width)[:width])
