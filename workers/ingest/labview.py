"""LabVIEW Measurement files (.lvm, profile `labview_lvm`), read line by line.

An LVM file is text: a file header (`LabVIEW Measurement`, then `Key<sep>value` lines) closed by
`***End_of_Header***`, then one or more segments, each a channel header (`Channels`, `Samples`,
`Y_Unit_Label`, `X_Dimension`, `X0`, `Delta_X`...) closed the same way, a row of column names and
the rows of numbers. Header fields go to the metadata, `Y_Unit_Label` gives the channels' units,
segments whose columns agree are concatenated and others become datasets of their own. The
`Comment` column LabVIEW adds is kept in the metadata (it is almost always empty).
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import pyarrow as pa

from workers.ingest.common import DatasetBuilder, Limits, Warnings, clean_names, limit_exceeded
from workers.worker import JobFailed, Reporter

END_OF_HEADER = "***End_of_Header***"
BATCH_ROWS = 50_000
MAX_LAYOUTS = 50
MAX_FIELDS = 200
MAX_COMMENTS = 200
SEPARATORS = {"tab": "\t", "comma": ",", "semicolon": ";", "space": " "}
X_UNITS = {"time": "s"}
SEGMENT_KEYS = ("Channels", "Samples")


class _Table:
    """One dataset: the segments that share a row of column names."""

    def __init__(
        self, names: list[str], units: dict[str, str], limits: Limits, reporter: Reporter, out: Path
    ) -> None:
        self.names = names
        self.builder = DatasetBuilder(
            out, pa.schema([(n, pa.float64()) for n in names]), limits, reporter, units=units
        )
        self.columns: list[list[float | None]] = [[] for _ in names]
        self.segments: list[int] = []

    def add(self, values: list[float | None], done: int, total: int) -> None:
        for column, value in zip(self.columns, values, strict=True):
            column.append(value)
        if len(self.columns[0]) >= BATCH_ROWS:
            self.flush(done, total)

    def flush(self, done: int, total: int) -> None:
        if self.columns[0]:
            arrays = [pa.array(c, type=pa.float64()) for c in self.columns]
            self.builder.add(
                pa.RecordBatch.from_arrays(arrays, schema=self.builder.schema), done=done, total=total
            )
            self.columns = [[] for _ in self.names]


def _number(text: str, decimal: str) -> float | None:
    value = text.strip()
    if not value:
        return None
    return float(value.replace(decimal, ".") if decimal != "." else value)


class _Reader:
    """The file's states, line by line: file header -> (segment header -> names -> rows)..."""

    def __init__(self, limits: Limits, reporter: Reporter, work_dir: Path, total: int) -> None:
        self.limits, self.reporter, self.work_dir, self.total = limits, reporter, work_dir, total
        self.warnings = Warnings()
        self.file_header: dict[str, Any] = {}
        self.segment_headers: list[dict[str, Any]] = []
        self.tables: dict[tuple[str, ...], _Table] = {}
        self.comments: list[str] = []
        self.separator, self.decimal = "\t", "."
        self.state = "file_header"
        self.header: dict[str, Any] = {}
        self.current: _Table | None = None
        self.comment_at: int | None = None
        self.indices: list[int] = []
        self.done = 0

    def line(self, number: int, text: str) -> None:
        fields = text.split(self.separator)
        key = fields[0].strip()
        if key == END_OF_HEADER:
            self._end_of_header()
        elif self.state in ("file_header", "segment_header"):
            self._header_field(key, fields)
        elif not text.strip():
            return
        elif self.state == "names":
            self._names(fields)
        else:
            self._row(number, text, key, fields)

    def _end_of_header(self) -> None:
        if self.state == "file_header":
            self.file_header = self.header
            self.separator = SEPARATORS.get(str(self.header.get("Separator", "Tab")).lower(), "\t")
            self.decimal = str(self.header.get("Decimal_Separator", ".")) or "."
            self.state, self.header = "segment_header", {}
        else:
            self.segment_headers.append(self.header)
            self.state = "names"

    def _header_field(self, key: str, fields: list[str]) -> None:
        if key and len(self.header) < MAX_FIELDS:
            values = [f.strip() for f in fields[1:]]
            while values and not values[-1]:
                values.pop()
            self.header[key] = values[0] if len(values) == 1 else values

    def _names(self, fields: list[str]) -> None:
        names, self.indices, units, self.comment_at = _layout(fields, self.header, self.file_header)
        layout = tuple(names)
        if layout not in self.tables:
            if len(self.tables) >= MAX_LAYOUTS:
                raise limit_exceeded(f"the file has more than {MAX_LAYOUTS} kinds of segments")
            if len(names) > self.limits.max_columns:
                raise limit_exceeded(
                    f"a segment has {len(names)} columns; at most {self.limits.max_columns} are accepted"
                )
            out = self.work_dir / f"part-{len(self.tables)}.parquet"
            clean = clean_names(names)
            named_units = {n: u for n, u in zip(clean, units, strict=True) if u}
            self.tables[layout] = _Table(clean, named_units, self.limits, self.reporter, out)
        self.current = self.tables[layout]
        self.current.segments.append(len(self.segment_headers))
        self.state = "rows"

    def _row(self, number: int, text: str, key: str, fields: list[str]) -> None:
        assert self.current is not None
        try:
            values = [_number(fields[i], self.decimal) if i < len(fields) else None for i in self.indices]
        except ValueError:
            if key in SEGMENT_KEYS or key.startswith(("Date", "Time", "Y_Unit", "X_")):
                # a segment header without a blank line before it
                self.state, self.header = "segment_header", {}
                self._header_field(key, fields)
            else:
                self.warnings.add("rejected_rows", "lines that are not rows of numbers were left out",
                                  example=f"line {number}: {text[:200]}")  # fmt: skip
            return
        at = self.comment_at
        if at is not None and at < len(fields) and fields[at].strip() and len(self.comments) < MAX_COMMENTS:
            self.comments.append(f"line {number}: {fields[at].strip()[:500]}")
        self.current.add(values, self.done, self.total)

    def results(self) -> list[dict[str, Any]]:
        if not self.tables:
            raise JobFailed("no_tabular_data", "no segment with a row of column names was found")
        if len(self.tables) > 1:
            self.warnings.add("segments_differ", "segments with other columns became datasets of their own")
        results = []
        for table in self.tables.values():
            table.flush(self.done, self.total)
            result = table.builder.finish()
            result["warnings"] = self.warnings.result()
            result["metadata"] = {
                "profile": "labview_lvm",
                "file_header": self.file_header,
                "segment_headers": [self.segment_headers[i - 1] for i in table.segments][:50],
                "segments": table.segments,
                "comments": self.comments,
            }
            part = f"segment {table.segments[0]}" if len(self.tables) > 1 else None
            results.append({**result, "part": part})
        return results

    def abort(self) -> None:
        for table in self.tables.values():
            table.builder.abort()


def ingest_lvm(
    path: Path, options: dict[str, Any], limits: Limits, reporter: Reporter, work_dir: Path
) -> list[dict[str, Any]]:
    with path.open("rb") as handle:
        bom = handle.read(3) == codecs.BOM_UTF8
    reader = _Reader(limits, reporter, work_dir, path.stat().st_size)
    try:
        with path.open("r", encoding="utf-8-sig" if bom else "latin-1", newline="") as handle:
            first = handle.readline()
            if not first.startswith("LabVIEW Measurement"):
                raise JobFailed("corrupt_file", "the file does not start with 'LabVIEW Measurement'")
            reader.done = len(first)
            for number, line in enumerate(handle, start=2):
                reader.done += len(line)
                reader.line(number, line.rstrip("\r\n"))
        return reader.results()
    except BaseException:
        reader.abort()
        raise


def _listed(header: dict[str, Any], key: str) -> list[str]:
    value = header.get(key, [])
    return [value] if isinstance(value, str) else list(value)


def _layout(
    fields: list[str], header: dict[str, Any], file_header: dict[str, Any]
) -> tuple[list[str], list[int], list[str | None], int | None]:
    """(names, their field indices, units, the Comment column's index) of a segment's names row.

    The channel header's values stand in the columns of the channels they describe (value k after
    the key belongs to column k; X columns have none). X_Value columns of a file written with
    `X_Columns No` are empty and left out, and so are channels the header says have no samples;
    Y_Unit_Label gives a channel's unit, X_Dimension (`Time`) its X column's.
    """
    raw = [f.strip() for f in fields]
    while raw and not raw[-1]:
        raw.pop()
    comment_at = raw.index("Comment") if "Comment" in raw else None
    no_x = str(file_header.get("X_Columns", "One")).lower() == "no"

    def value(key: str, column: int) -> str:
        values = _listed(header, key)
        return values[column - 1] if 0 < column <= len(values) else ""

    names, indices, units = [], [], []
    for index, name in enumerate(raw):
        if index == comment_at:
            continue
        if name.startswith("X_Value"):
            if no_x:
                continue
            unit = X_UNITS.get(value("X_Dimension", index + 1).lower())
        else:
            if value("Samples", index) == "0":
                continue
            unit = value("Y_Unit_Label", index) or None
        names.append(name)
        indices.append(index)
        units.append(unit)
    return names, indices, units, comment_at
