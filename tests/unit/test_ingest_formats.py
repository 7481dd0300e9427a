"""The ingestion worker on files generated here: every format, its options and its odd corners."""

from __future__ import annotations

import codecs
import datetime as dt
import io
from pathlib import Path

import h5py
import numpy as np
import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest
import scipy.io

from workers.ingest.common import clean_names
from workers.ingest.run import ingest_file
from workers.worker import JobFailed, Reporter


def run(tmp_path: Path, name: str, content: bytes | None = None, **options):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    limits = options.pop("limits", None)
    return ingest_file(
        {
            "path": str(path),
            "file_name": name,
            "work_dir": str(tmp_path / "work"),
            "options": options,
            "limits": limits,
        },
        Reporter("test", 1),
    )


def one(result):
    assert not result["stored_only"]
    assert len(result["datasets"]) == 1
    return result["datasets"][0]


def table(dataset):
    return pq.read_table(dataset["parquet_path"]).to_pydict()


def names(dataset):
    return [c["name"] for c in dataset["schema"]]


def types(dataset):
    return {c["name"]: c["type"] for c in dataset["schema"]}


def codes(dataset):
    return {w["code"]: w for w in dataset["warnings"]}


# -- CSV and text --------------------------------------------------------------------------------


def test_csv_with_header_types_and_quotes(tmp_path):
    data = one(
        run(
            tmp_path,
            "a.csv",
            b'id,speed [m/s],label,when\n1,2.5,"a, b",2024-01-02T03:04:05\n2,3.5,"say ""hi""",2024-01-02 03:04:06\n3,,c,\n',
        )
    )
    assert names(data) == ["id", "speed [m/s]", "label", "when"]
    assert types(data) == {"id": "integer", "speed [m/s]": "number", "label": "text", "when": "datetime"}
    assert [c["unit"] for c in data["schema"]] == [None, "m/s", None, None]
    assert table(data)["label"] == ["a, b", 'say "hi"', "c"]
    assert data["row_count"] == 3
    assert data["stats"]["speed [m/s]"]["nulls"] == 1
    assert data["sample"][0] == {"id": 1, "speed [m/s]": 2.5, "label": "a, b", "when": "2024-01-02T03:04:05"}


def test_first_row_that_looks_like_data_is_data(tmp_path):
    data = one(run(tmp_path, "n.csv", b"1,2,3\n4,5,6\n7,8,9\n"))
    assert names(data) == ["column_1", "column_2", "column_3"]
    assert data["row_count"] == 3
    assert "header_not_found" in codes(data)


def test_header_mode_none_and_custom(tmp_path):
    content = b"x,y\n1,2\n3,4\n"
    none = one(run(tmp_path, "h.csv", content, header_mode="none"))
    assert none["row_count"] == 3
    assert table(none)["column_1"] == ["x", "1", "3"]
    custom = one(
        run(tmp_path, "h.csv", b"1,2\n3,4\n", header_mode="custom", custom_headers=["alpha", "beta"])
    )
    assert names(custom) == ["alpha", "beta"]
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "h.csv", b"1,2\n3,4\n", header_mode="custom", custom_headers=["only one"])
    assert caught.value.code == "invalid_options"
    assert "2 columns" in caught.value.message


@pytest.mark.parametrize(
    ("name", "content", "delimiter"),
    [
        ("t.tsv", b"a\tb\n1\t2\n3\t4\n", "\t"),
        ("s.csv", b"a;b\n1;2\n3;4\n", ";"),
        ("p.txt", b"a|b\n1|2\n3|4\n", "|"),
    ],
)
def test_delimiters_are_sniffed(tmp_path, name, content, delimiter):
    data = one(run(tmp_path, name, content))
    assert data["metadata"]["delimiter"] == delimiter
    assert table(data) == {"a": [1, 3], "b": [2, 4]}


def test_decimal_comma_when_unambiguous(tmp_path):
    data = one(run(tmp_path, "de.csv", b"Zeit;Druck\n0,5;1013,25\n1,0;1012,75\n"))
    assert data["metadata"]["decimal_comma"] is True
    assert table(data) == {"Zeit": [0.5, 1.0], "Druck": [1013.25, 1012.75]}


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("latin-1", b""),
    ],
)
def test_encodings(tmp_path, encoding, bom):
    content = bom + "température,ville\n21.5,Genève\n22.0,Zürich\n".encode(encoding)
    data = one(run(tmp_path, "e.csv", content))
    assert names(data) == ["température", "ville"]
    assert table(data)["ville"] == ["Genève", "Zürich"]


def test_comments_blank_lines_and_ragged_rows(tmp_path):
    content = b"# instrument: anemometer 7\n# site: roof\n\nt,v\n0,1.5\n\n1,2.5\n# calibration pause\n2,3.5,extra\n3,4.5\n"
    data = one(run(tmp_path, "c.csv", content))
    assert table(data) == {"t": [0, 1, 3], "v": [1.5, 2.5, 4.5]}
    assert data["metadata"]["comments"][:2] == ["# instrument: anemometer 7", "# site: roof"]
    rejected = codes(data)["rejected_rows"]
    assert rejected["count"] == 1
    assert "2,3.5,extra" in rejected["examples"][0]


def test_whitespace_separated_dat_with_preamble_and_parse_range(tmp_path):
    lines = ["Run 17 of the tunnel", "Operator: K. Lee", "", "   x     y      z"]
    lines += [f"  {i:3d}  {i * 0.5:6.2f}  {i * i:5d}" for i in range(10)]
    content = "\n".join(lines).encode()
    data = one(run(tmp_path, "r.dat", content))
    assert names(data) == ["x", "y", "z"]
    assert data["row_count"] == 10
    assert data["metadata"]["delimiter"] == "whitespace"
    assert "Run 17 of the tunnel" in data["metadata"]["comments"]
    ranged = one(run(tmp_path, "r.dat", content, parse_range={"start_line": 4, "end_line": 8}))
    assert ranged["row_count"] == 4
    assert table(ranged)["x"] == [0, 1, 2, 3]


QUOTED_WHITESPACE = {
    # the case astropy's ASCII reader reads as 2 rows x 3 columns
    "issue": '"quoted colname with tab\tinside"  col2  \t\t col3\nval1   "val2 with\ttab"  \t2\n val3   val4                    3\n',
    "quoted_header_only": '"time s"  "force N"\n1 2.5\n3 4.5\n',
    "quoted_values_only": 'name value\n"a b" 1\n"c ""q"" d" 2\n',
    "quote_inside_bare_token": 'name value\nab"c 1\nd"e 2\n',
    "empty_quoted_and_trailing_space": 'a  b  c   \n"" "x y" 1\n"z" "" 2  \n',
}


@pytest.mark.parametrize("case", sorted(QUOTED_WHITESPACE))
def test_whitespace_separated_with_quoted_fields_reads_as_pandas_does(tmp_path, case):
    text = QUOTED_WHITESPACE[case]
    expected = pd.read_csv(io.StringIO(text), sep=r"\s+", keep_default_na=False)
    data = one(run(tmp_path, "q.dat", text.encode()))
    assert data["metadata"]["delimiter"] == "whitespace"
    assert names(data) == clean_names(expected.columns)  # names are trimmed to single spaces, as everywhere
    got = table(data)
    assert data["row_count"] == len(expected)
    for name in expected.columns:
        want = ["" if v is None else v for v in expected[name].tolist()]
        assert ["" if v is None else v for v in got[" ".join(name.split())]] == want, name
    if case == "issue":
        assert table(data)["col2"] == ["val2 with\ttab", "val4"]  # a tab inside quotes stays in the value


def test_common_date_formats(tmp_path):
    data = one(run(tmp_path, "d.csv", b"when,v\n01.02.2024 10:00:00,1\n02.02.2024 11:30:00,2\n"))
    assert types(data)["when"] == "datetime"
    assert table(data)["when"][0] == dt.datetime(2024, 2, 1, 10, 0)
    assert data["stats"]["when"]["min"] == "2024-02-01T10:00:00"


def test_a_column_that_changes_type_late_is_widened(tmp_path):
    rows = "".join(f"{i},{i}\n" for i in range(300_000))
    content = f"n,m\n{rows}0.5,text\n".encode()
    data = one(run(tmp_path, "w.csv", content, limits={"block_bytes": 1 << 16}))
    assert types(data) == {"n": "number", "m": "text"}
    assert data["row_count"] == 300_001
    assert table(data)["n"][-1] == 0.5


def test_statistics_are_right(tmp_path):
    rng = np.random.default_rng(1)
    values = rng.normal(10, 2, 50_000)
    content = ("v,k\n" + "".join(f"{float(v)!r},{'ab'[i % 2]}\n" for i, v in enumerate(values))).encode()
    data = one(run(tmp_path, "s.csv", content, limits={"block_bytes": 1 << 18}))
    stats = data["stats"]["v"]
    assert stats["count"] == 50_000
    assert stats["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(values.std(ddof=1), rel=1e-9)
    assert stats["p50"] == pytest.approx(np.quantile(values, 0.5))
    assert stats["p01"] == pytest.approx(np.quantile(values, 0.01))
    assert stats["quantiles_exact"] is True
    assert data["stats"]["k"]["distinct"] == 2
    assert {t["value"] for t in data["stats"]["k"]["top"]} == {"a", "b"}
    sampled = one(run(tmp_path, "s.csv", limits={"block_bytes": 1 << 18, "stats_values": 10_000}))
    estimate = sampled["stats"]["v"]
    assert estimate["quantiles_exact"] is False
    assert estimate["p50"] == pytest.approx(np.quantile(values, 0.5), abs=0.1)
    assert estimate["mean"] == pytest.approx(values.mean(), rel=1e-12)  # moments stay exact


def test_a_column_zstd_hardly_shrinks_is_stored_plain_and_the_others_compressed(tmp_path):
    rng = np.random.default_rng(2)
    n = 20_000
    noisy, steps = rng.normal(size=n), np.cumsum(rng.integers(-3, 4, size=n)) * 0.001
    content = ("t,noisy,steps,label\n" + "".join(
        f"{i * 0.01:.2f},{float(noisy[i])!r},{steps[i]:.3f},{'ab'[i % 2]}\n" for i in range(n)
    )).encode()  # fmt: skip
    data = one(run(tmp_path, "mixed.csv", content))
    chunks = pq.ParquetFile(data["parquet_path"]).metadata.row_group(0)
    codec = {chunks.column(i).path_in_schema: chunks.column(i).compression for i in range(chunks.num_columns)}
    assert codec == {"t": "ZSTD", "noisy": "UNCOMPRESSED", "steps": "ZSTD", "label": "ZSTD"}
    stored = table(data)
    assert stored["noisy"] == [float(v) for v in noisy]  # plain or not, every value as it was
    assert stored["steps"][:3] == [float(f"{v:.3f}") for v in steps[:3]]


def test_wind_tunnel_profile(tmp_path):
    content = b"Tunnel B, 2024-05-01\nOperator Z\n%Dyn, Alpha, Beta\n% CL, CD\n1.0, 2.0, 3.0, 4.0, 5.0\n2.0, 3.0, 4.0, 5.0, 6.0\nPAUSE\n3.0, 4.0, 5.0, 6.0, 7.0\n"
    data = one(run(tmp_path, "wt.txt", content, profile="wind_tunnel"))
    assert names(data) == ["Dyn", "Alpha", "Beta", "CL", "CD"]
    assert data["row_count"] == 3
    assert codes(data)["skipped_lines"]["count"] == 1
    assert data["metadata"]["preamble"] == ["Tunnel B, 2024-05-01", "Operator Z"]
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "no.txt", b"a,b\n1,2\n", profile="wind_tunnel")
    assert caught.value.code == "no_tabular_data"


# -- Excel ---------------------------------------------------------------------------------------------


def workbook(path: Path) -> Path:
    book = openpyxl.Workbook()
    first = book.active
    first.title = "Run 1"
    first.append(["time", "speed", None, "note"])
    for i in range(5):
        first.append([dt.datetime(2024, 1, 1, 12, 0, i), i * 1.5, None, f"n{i}"])
    book.create_sheet("Empty")
    second = book.create_sheet("Calibration")
    second.append(["sensor", "offset"])
    second.append(["A", 0.1])
    second.append(["B", -0.2])
    book.save(path)
    return path


def test_every_non_empty_sheet_is_a_dataset(tmp_path):
    workbook(tmp_path / "book.xlsx")
    result = run(tmp_path, "book.xlsx")
    sheets = {d["sheet"]: d for d in result["datasets"]}
    assert set(sheets) == {"Run 1", "Calibration"}
    run1 = sheets["Run 1"]
    assert names(run1) == ["time", "speed", "note"]  # the unnamed empty column is dropped
    assert types(run1)["time"] == "datetime"
    assert run1["row_count"] == 5
    assert table(sheets["Calibration"]) == {"sensor": ["A", "B"], "offset": [0.1, -0.2]}


def test_selected_sheets_and_a_missing_one(tmp_path):
    workbook(tmp_path / "book.xlsx")
    result = run(tmp_path, "book.xlsx", sheets=["Calibration"])
    assert [d["sheet"] for d in result["datasets"]] == ["Calibration"]
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "book.xlsx", sheets=["Nope"])
    assert caught.value.code == "invalid_options"
    assert "Nope" in caught.value.message


# -- MATLAB ----------------------------------------------------------------------------------------------


def test_matlab_v5_vectors_matrices_structs_and_scalars(tmp_path):
    scipy.io.savemat(tmp_path / "m.mat", {
        "t": np.arange(6.0), "p": np.arange(6.0) * 2, "M": np.ones((6, 2)), "run": {"v": np.arange(6.0), "gain": 2.5},
        "label": "tunnel", "short": np.arange(3.0),
    })  # fmt: skip
    data = one(run(tmp_path, "m.mat"))
    assert names(data) == ["t", "p", "M_1", "M_2", "run.v"]
    assert data["row_count"] == 6
    assert data["metadata"]["scalars"] == {"run.gain": 2.5, "label": "tunnel"}
    assert {v["name"] for v in data["metadata"]["variables"]} >= {"t", "p", "M", "run.v", "short"}
    assert "other_lengths" in codes(data)
    picked = one(run(tmp_path, "m.mat", variables=["short"]))
    assert names(picked) == ["short"]
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "m.mat", variables=["t", "short"])
    assert caught.value.code == "invalid_options"


def test_matlab_v4(tmp_path):
    scipy.io.savemat(tmp_path / "v4.mat", {"x": np.arange(4.0), "y": np.arange(4.0) + 1}, format="4")
    assert table(one(run(tmp_path, "v4.mat"))) == {"x": [0.0, 1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0, 4.0]}


def v73(path: Path, build) -> Path:
    with h5py.File(path, "w", userblock_size=512) as handle:
        build(handle)
    with path.open("r+b") as raw:
        raw.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116, b" "))
    return path


def _matlab(dataset, cls="double"):
    dataset.attrs["MATLAB_class"] = np.bytes_(cls)
    return dataset


def test_matlab_v73(tmp_path):
    def build(h):
        _matlab(h.create_dataset("t", data=np.arange(5.0).reshape(1, 5)))
        _matlab(h.create_dataset("M", data=np.arange(10.0).reshape(2, 5)))  # MATLAB 5×2
        group = h.create_group("s")
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        _matlab(group.create_dataset("v", data=np.arange(5.0).reshape(1, 5) * 3))

    v73(tmp_path / "new.mat", build)
    data = one(run(tmp_path, "new.mat"))
    assert names(data) == ["M_1", "M_2", "s.v", "t"]
    assert table(data)["M_2"] == [5.0, 6.0, 7.0, 8.0, 9.0]
    assert data["metadata"]["mat_version"] == "7.3"


HDF5_TRICKS = ["external_link", "external_storage", "virtual"]


def add_hdf5_trick(handle, trick, folder):
    """Data from outside the file: a link to another file, external storage, a virtual dataset."""
    target = folder / "other.h5"
    with h5py.File(target, "w") as other:
        other.create_dataset("secret", data=np.arange(5.0))
    (folder / "raw.bin").write_bytes(np.arange(5.0).tobytes())
    if trick == "external_link":
        handle["linked"] = h5py.ExternalLink(str(target), "/secret")
    elif trick == "external_storage":
        handle.create_dataset("ext", shape=(5,), dtype="f8", external=[(str(folder / "raw.bin"), 0, 40)])
    else:
        layout = h5py.VirtualLayout(shape=(5,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(target), "secret", shape=(5,))
        handle.create_virtual_dataset("virt", layout)


@pytest.mark.parametrize("trick", HDF5_TRICKS)
def test_matlab_v73_links_and_external_data_are_refused(tmp_path, trick):
    def build(h):
        _matlab(h.create_dataset("t", data=np.arange(5.0).reshape(1, 5)))
        add_hdf5_trick(h, trick, tmp_path)

    v73(tmp_path / "trick.mat", build)
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "trick.mat")
    assert caught.value.code == "corrupt_file"


# -- refusals and limits -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "code"),
    [
        ("empty.csv", b"", "no_tabular_data"),
        ("blank.csv", b"\n\n   \n", "no_tabular_data"),
        ("garbage.csv", bytes(range(256)) * 40, "corrupt_file"),
        ("image.csv", b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000, "corrupt_file"),
        ("fake.xlsx", b"a,b\n1,2\n", "corrupt_file"),
        ("fake.xls", b"not an old workbook", "corrupt_file"),
        ("junk.mat", b"MATLAB 5.0 MAT-file" + b"\xff" * 300, "corrupt_file"),
        ("truncated.xlsx", b"PK\x03\x04" + b"\x00" * 100, "corrupt_file"),
        ("comments.txt", b"# only\n# comments\n", "no_tabular_data"),
    ],
)
def test_broken_files_fail_with_a_code(tmp_path, name, content, code):
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, name, content)
    assert caught.value.code == code
    assert caught.value.message


def test_other_formats_are_stored_only(tmp_path):
    result = run(tmp_path, "report.pdf", b"%PDF-1.7 ...")
    assert result["stored_only"] is True
    assert ".pdf" in result["reason"]
    assert result["datasets"] == []


def test_matlab_without_numbers(tmp_path):
    scipy.io.savemat(tmp_path / "s.mat", {"name": "only text"})
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "s.mat")
    assert caught.value.code == "no_tabular_data"


def test_column_and_cell_limits(tmp_path):
    wide = (",".join(f"c{i}" for i in range(50)) + "\n" + ",".join("1" for _ in range(50)) + "\n").encode()
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "wide.csv", wide, limits={"max_columns": 20})
    assert caught.value.code == "limit_exceeded"
    long_cell = b"a,b\nx," + b"y" * 5000 + b"\n"
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "long.csv", long_cell, limits={"max_cell_bytes": 1000})
    assert caught.value.code == "limit_exceeded"
