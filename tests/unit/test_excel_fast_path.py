"""Workbooks whose first row names typed columns are read by fastexcel; everything else cell by cell.
Either way a sheet must give the same dataset: each workbook here is read both ways and compared."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import openpyxl
import pyarrow.parquet as pq
import pytest

from workers.ingest import excel
from workers.ingest.run import ingest_file
from workers.worker import JobFailed, Reporter


def _read(path: Path, work: Path) -> dict:
    return ingest_file(
        {"path": str(path), "file_name": path.name, "work_dir": str(work), "options": {}, "limits": None},
        Reporter("test", 1),
    )


def _comparable(result: dict) -> list[tuple]:
    out = []
    for dataset in result["datasets"]:
        table = pq.read_table(dataset["parquet_path"])
        kept = {k: v for k, v in dataset.items() if k not in {"parquet_path", "summary_path"}}
        summary = {  # NaN (a gap's first or last) is not equal to itself
            k: [None if isinstance(v, float) and math.isnan(v) else v for v in values]
            for k, values in pq.read_table(dataset["summary_path"]).to_pydict().items()
        }
        out.append((kept, table.schema.remove_metadata(), table.to_pydict(), summary))
    return out


def _refuse(*_args, **_kwargs):
    raise excel.NotForFastexcel


def _both_ways(tmp_path: Path, book: openpyxl.Workbook, monkeypatch) -> tuple[list, list, list[str]]:
    path = tmp_path / "book.xlsx"
    book.save(path)
    taken = []
    real = excel._read_sheet_fast

    def counting(*args, **kwargs):
        result = real(*args, **kwargs)
        taken.append(args[2])
        return result

    monkeypatch.setattr(excel, "_read_sheet_fast", counting)
    fast = _comparable(_read(path, tmp_path / "fast"))

    monkeypatch.setattr(excel, "_read_sheet_fast", _refuse)
    slow = _comparable(_read(path, tmp_path / "slow"))
    return fast, slow, taken


def _typed_sheet(sheet, top: int = 1, left: int = 1, rows: int = 300) -> None:
    header = ["time", "speed [m/s]", "count", "label", "ok", "day", "lap", None, "note", "Température"]
    for c, value in enumerate(header):
        sheet.cell(top, left + c, value)
    start = dt.datetime(2024, 3, 1, 12, 0, 0, 250000)
    for i in range(rows):
        r = top + 1 + i
        values = [
            start + dt.timedelta(seconds=i * 1.5),
            None if i % 17 == 0 else i * 0.25,
            float(i * 3),  # whole numbers: an integer column
            f"run-{i % 5}" if i % 11 else "   ",  # blank text is empty
            i % 2 == 0,
            dt.date(2024, 1, 1) + dt.timedelta(days=i),
            dt.timedelta(seconds=i, milliseconds=500),
            None,  # an unnamed empty column is dropped
            "ü note" if i == 7 else None,  # a mostly empty named column is kept
            -3.5e-7 * i,
        ]
        for c, value in enumerate(values):
            sheet.cell(r, left + c, value)
    sheet.cell(top + rows + 1, left + 3, "  ")  # a trailing row of blanks
    sheet.cell(top + rows + 2, left + 3, None)


@pytest.mark.parametrize("where", [(1, 1), (4, 3)], ids=["at A1", "below empty rows and columns"])
def test_a_plain_sheet_reads_the_same_both_ways(tmp_path, monkeypatch, where):
    book = openpyxl.Workbook()
    _typed_sheet(book.active, *where)
    book.active.title = "data"
    fast, slow, taken = _both_ways(tmp_path, book, monkeypatch)
    assert taken == ["data"]
    assert fast == slow
    assert fast[0][0]["metadata"]["header_row"] == where[0]


def test_sheets_the_fast_path_leaves_alone_read_the_same_both_ways(tmp_path, monkeypatch):
    book = openpyxl.Workbook()
    titled = book.active
    titled.title = "titled"
    titled.append(["Wind tunnel run 14"])
    titled.append([])
    titled.append(["t", "p"])
    titled.append(["s", "Pa"])
    for i in range(50):
        titled.append([i * 0.1, 1000 + i])
    mixed = book.create_sheet("mixed")
    mixed.append(["t", "reading"])
    for i in range(50):
        mixed.append([i, "see log" if i == 20 else i * 2.5])
    repeated = book.create_sheet("repeated")
    repeated.append(["x", "x", "y"])
    for i in range(50):
        repeated.append([i, i + 1, i + 2])
    numbered = book.create_sheet("no header")
    for i in range(50):
        numbered.append([i, i * 2.0])
    _typed_sheet(book.create_sheet("typed"))
    fast, slow, taken = _both_ways(tmp_path, book, monkeypatch)
    assert fast == slow
    assert taken == ["typed"]
    assert [d[0]["sheet"] for d in fast] == ["titled", "mixed", "repeated", "no header", "typed"]


def test_a_missing_value_marker_in_a_numeric_column_is_missing_as_in_a_csv(tmp_path):
    """fastexcel reads n/a, NA, null, #N/A in a column of numbers as missing, as pyarrow does in a
    CSV file; the column stays numeric (the cell-by-cell reader makes such a column text)."""
    book = openpyxl.Workbook()
    book.active.title = "m"
    book.active.append(["t", "v"])
    for i in range(40):
        book.active.append([i, {5: "n/a", 6: "NA", 7: "#N/A"}.get(i, i * 0.5)])
    book.save(tmp_path / "m.xlsx")
    dataset = _read(tmp_path / "m.xlsx", tmp_path / "work")["datasets"][0]
    assert {c["name"]: c["type"] for c in dataset["schema"]}["v"] == "number"
    assert dataset["stats"]["v"]["nulls"] == 3


@pytest.mark.parametrize("fast", [True, False])
def test_a_sheet_wider_than_the_limit_fails_the_same_either_way(tmp_path, monkeypatch, fast):
    book = openpyxl.Workbook()
    for c in range(25):
        book.active.cell(1, c + 1, f"c{c}")
        book.active.cell(2, c + 1, c)
    path = tmp_path / "wide.xlsx"
    book.save(path)
    if not fast:
        monkeypatch.setattr(
            excel, "_read_sheet_fast", lambda *_a, **_k: (_ for _ in ()).throw(excel.NotForFastexcel)
        )
    params = {"path": str(path), "file_name": path.name, "work_dir": str(tmp_path / "w"), "options": {},
              "limits": {"max_columns": 20}}  # fmt: skip
    with pytest.raises(JobFailed) as failed:
        ingest_file(params, Reporter("test", 1))
    assert failed.value.code == "limit_exceeded"
    assert "has 25 columns; at most 20 are accepted" in failed.value.message


def _with_sheet_xml(tmp_path: Path, name: str, transform) -> Path:
    """A real workbook whose first sheet's XML is rewritten by transform(xml bytes) -> bytes."""
    import zipfile

    book = openpyxl.Workbook()
    book.active.append(["t", "v"])
    book.active.append([1, 2])
    plain = tmp_path / f"plain-{name}"
    book.save(plain)
    path = tmp_path / name
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename == "xl/worksheets/sheet1.xml":
                data = transform(data)
            target.writestr(entry, data)
    return path


DOCTYPE = b'<!DOCTYPE worksheet [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'


def _after_declaration(extra: bytes):
    def transform(xml: bytes) -> bytes:
        if not xml.startswith(b"<?xml"):  # openpyxl writes none
            xml = b'<?xml version="1.0" encoding="UTF-8"?>' + xml
        declaration, _, rest = xml.partition(b"?>")
        return declaration + b"?>" + extra + rest

    return transform


@pytest.mark.parametrize(
    ("name", "transform"),
    [
        pytest.param("at-start.xlsx", _after_declaration(DOCTYPE), id="doctype-first"),
        # a long comment first used to carry the DOCTYPE past a check of the first 4 KiB
        pytest.param(
            "after-comment.xlsx",
            _after_declaration(b"<!--" + b"x" * 20_000 + b"-->" + DOCTYPE),
            id="after-comment",
        ),
        pytest.param(
            "after-pis.xlsx",
            _after_declaration(b"<?pad " + b"y" * 100_000 + b"?>" * 1 + DOCTYPE),
            id="after-instruction",
        ),
        # the same in UTF-16, where the bytes "<!DOCTYPE" never appear
        pytest.param(
            "utf16.xlsx",
            lambda xml: (
                _after_declaration(DOCTYPE)(xml)
                .replace(b'encoding="UTF-8"', b'encoding="UTF-16"')
                .decode()
                .encode("utf-16")
            ),
            id="utf-16",
        ),
    ],
)
def test_a_document_type_anywhere_before_the_first_element_is_refused(tmp_path, name, transform):
    path = _with_sheet_xml(tmp_path, name, transform)
    with pytest.raises(JobFailed) as failed:
        _read(path, tmp_path / "work")
    assert failed.value.code == "corrupt_file"
    assert "document type or entities" in failed.value.message


def test_comments_before_the_first_element_alone_are_fine(tmp_path):
    path = _with_sheet_xml(tmp_path, "comment.xlsx", _after_declaration(b"<!--" + b"z" * 20_000 + b"-->"))
    result = _read(path, tmp_path / "work")
    assert result["datasets"][0]["row_count"] == 1
