"""Files as instruments and simulation codes write them: HDF5, NetCDF, TDMS, LabVIEW LVM, units rows,
title rows, rows ending in a delimiter; recognised by content; hostile ones fail with a code."""

from __future__ import annotations

import datetime as dt
import random

import h5netcdf
import h5py
import numpy as np
import openpyxl
import pytest
import scipy.io
from nptdms import ChannelObject, GroupObject, RootObject, TdmsWriter

from tests.unit.test_ingest_formats import HDF5_TRICKS, add_hdf5_trick, codes, names, one, run, table, types
from workers.worker import JobFailed


def units(dataset):
    return {c["name"]: c["unit"] for c in dataset["schema"]}


def parts(result):
    assert not result["stored_only"]
    return {d.get("part"): d for d in result["datasets"]}


# -- header, units and title rows (every tabular format) ----------------------------------------------


def test_a_units_row_under_the_names(tmp_path):
    data = one(run(tmp_path, "p.csv", b"Time,Pressure\ns,Pa\n0,101325\n0.5,101300\n1,101290\n"))
    assert names(data) == ["Time", "Pressure"]
    assert units(data) == {"Time": "s", "Pressure": "Pa"}
    assert types(data) == {"Time": "number", "Pressure": "integer"}
    assert data["row_count"] == 3
    assert data["metadata"]["header_row"] == 1
    assert data["metadata"]["units_row"] == 2


def test_bracketed_units_under_tab_separated_names_with_a_title_above(tmp_path):
    content = b"Balance calibration, run 4\nOperator: K. Lee\n\ntime\tforce\tmoment\n[s]\t[N]\t(N m)\n0\t1.5\t0.1\n1\t2.5\t0.2\n"
    data = one(run(tmp_path, "b.txt", content))
    assert names(data) == ["time", "force", "moment"]
    assert units(data) == {"time": "s", "force": "N", "moment": "N m"}
    assert table(data)["force"] == [1.5, 2.5]
    assert data["metadata"]["comments"] == ["Balance calibration, run 4", "Operator: K. Lee"]
    assert data["metadata"]["skipped_rows"] == [1, 2]
    assert data["metadata"]["header_row"] == 4
    assert data["metadata"]["units_row"] == 5


def test_names_apart_from_a_short_row_are_not_taken_for_units(tmp_path):
    content = b"x y z\n\nu v w\n1 2 3\n4 5 6\n"  # a blank line between: "u v w" is the header, not units
    data = one(run(tmp_path, "s.dat", content))
    assert names(data) == ["u", "v", "w"]
    assert data["metadata"]["units_row"] is None


def test_rows_ending_in_a_delimiter_give_no_empty_column(tmp_path):
    data = one(run(tmp_path, "t.csv", b"a,b,c,\n1,2,3,\n4,5,6,\n"))
    assert names(data) == ["a", "b", "c"]
    data = one(run(tmp_path, "u.csv", b"a,b,c\n1,2,3,\n4,5,6,\n"))  # the header without it
    assert names(data) == ["a", "b", "c"]
    assert table(data) == {"a": [1, 4], "b": [2, 5], "c": [3, 6]}


def test_an_unnamed_column_that_fills_in_late_is_kept(tmp_path):
    rows = [f"{i},{i * 2}," for i in range(3000)]
    rows[2500] += "note"  # far past the lines sniffed, in a later block
    content = ("a,b,\n" + "\n".join(rows) + "\n").encode()
    data = one(run(tmp_path, "late.csv", content, limits={"block_bytes": 4096}))
    assert names(data) == ["a", "b", "column_3"]
    assert table(data)["column_3"][2500] == "note"
    assert data["row_count"] == 3000


def test_header_mode_still_overrides(tmp_path):
    content = b"Time,Pressure\ns,Pa\n0,101325\n1,101290\n"
    custom = one(run(tmp_path, "c.csv", content, header_mode="custom", custom_headers=["t", "p"]))
    assert names(custom) == ["t", "p"]
    assert custom["row_count"] == 2
    none = one(run(tmp_path, "n.csv", content, header_mode="none"))
    assert none["row_count"] == 4
    assert table(none)["column_1"][:2] == ["Time", "s"]


def _workbook(path, build):
    book = openpyxl.Workbook()
    build(book.active)
    book.save(path)


def test_excel_title_blank_row_header_and_an_empty_column(tmp_path):
    def build(sheet):
        sheet["A1"] = "Wind tunnel run 7: balance loads"
        sheet.append([])
        sheet.append(["alpha", "lift", None, "drag"])
        for i in range(5):
            sheet.append([i * 2.0, 0.1 * i, None, 0.01 * i])

    _workbook(tmp_path / "w.xlsx", build)
    data = one(run(tmp_path, "w.xlsx"))
    assert names(data) == ["alpha", "lift", "drag"]
    assert types(data) == {"alpha": "integer", "lift": "number", "drag": "number"}
    assert data["row_count"] == 5
    assert data["metadata"]["header_row"] == 3
    assert data["metadata"]["skipped_rows"] == [1]
    assert data["metadata"]["preamble"] == ["Wind tunnel run 7: balance loads"]
    assert data["metadata"]["dropped_empty_columns"] == 1


def test_excel_with_two_header_rows_and_units(tmp_path):
    def build(sheet):
        sheet.append(["Inlet", None, "Outlet", None])
        sheet.append(["T", "p", "T", "p"])
        sheet.append(["K", "kPa", "K", "kPa"])
        for i in range(3):
            sheet.append([300 + i, 101.3, 310 + i, 99.8])

    _workbook(tmp_path / "two.xlsx", build)
    data = one(run(tmp_path, "two.xlsx"))
    assert names(data) == ["Inlet T", "Inlet p", "Outlet T", "Outlet p"]
    assert units(data) == {"Inlet T": "K", "Inlet p": "kPa", "Outlet T": "K", "Outlet p": "kPa"}
    assert table(data)["Outlet T"] == [310, 311, 312]


# -- formats by content ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["run.asc", "scan.prn", "profile.xy", "solver.out", "noname"])
def test_text_tables_under_other_names_are_read(tmp_path, name):
    data = one(run(tmp_path, name, b"x y\n0 1.5\n1 2.5\n2 3.5\n"))
    assert names(data) == ["x", "y"]
    assert data["row_count"] == 3


def test_text_without_a_table_under_another_name_is_stored(tmp_path):
    result = run(tmp_path, "solver.log", b"Starting the solver\nIteration one converged quickly\nDone.\n")
    assert result["stored_only"] is True
    assert ".log" in result["reason"]


def test_hdf5_is_recognised_whatever_its_name(tmp_path):
    with h5py.File(tmp_path / "export.bin", "w") as handle:
        handle["time"] = np.arange(50.0)
        handle["u"] = np.arange(50.0) * 2
    data = one(run(tmp_path, "export.bin"))
    assert names(data) == ["time", "u"]


def test_a_matlab_v73_file_stays_matlab_under_another_name(tmp_path):
    path = tmp_path / "results.h5"
    with h5py.File(path, "w", userblock_size=512) as handle:
        handle.create_dataset("t", data=np.arange(5.0).reshape(1, 5)).attrs["MATLAB_class"] = np.bytes_(
            "double"
        )
    with path.open("r+b") as raw:
        raw.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116) + b"\x00" * 8 + b"\x00\x02IM")
    result = run(tmp_path, "results.h5")
    assert result["format"] == "matlab"
    assert result["datasets"][0]["metadata"]["mat_version"] == "7.3"


# -- HDF5 and NetCDF ------------------------------------------------------------------------------------


def test_hdf5_groups_become_datasets_with_units(tmp_path):
    with h5py.File(tmp_path / "cfd.h5", "w") as handle:
        handle.attrs["solver"] = "OpenFOAM 11"
        probe = handle.create_group("probe1")
        probe["time"] = np.linspace(0, 1, 1000)
        probe["time"].attrs["units"] = "s"
        probe["u"] = np.linspace(5, 6, 1000)
        probe["u"].attrs["units"] = np.bytes_("m/s")
        probe["position"] = np.array([0.1, 0.2, 0.0])  # short: metadata
        probe["Re"] = 1.2e6  # scalar: metadata
        probe["label"] = "inlet probe"  # string scalar
        other = handle.create_group("probe2")
        other["time"] = np.arange(300.0)
        other["p"] = np.ones((300, 3))  # a block of columns
        other["sensor"] = np.array([b"s%d" % (i % 3) for i in range(300)])  # strings
        other["flags"] = np.zeros(300, dtype=[("ok", "i1"), ("quality", "f4")])  # compound
        other["spectrum"] = np.ones(40)  # another length in the same group
    result = parts(run(tmp_path, "cfd.h5"))
    assert set(result) == {"probe1", "probe2 (300 rows)", "probe2 (40 rows)"}
    probe1 = result["probe1"]
    assert names(probe1) == ["time", "u"]
    assert units(probe1) == {"time": "s", "u": "m/s"}
    assert probe1["row_count"] == 1000
    assert probe1["metadata"]["short_arrays"]["probe1/position"] == [0.1, 0.2, 0.0]
    assert probe1["metadata"]["scalars"]["probe1/Re"] == 1.2e6
    assert probe1["metadata"]["scalars"]["probe1/label"] == "inlet probe"
    assert probe1["metadata"]["file_attributes"] == {"solver": "OpenFOAM 11"}
    probe2 = result["probe2 (300 rows)"]
    assert names(probe2) == ["time", "flags.ok", "flags.quality", "p_1", "p_2", "p_3", "sensor"]
    assert types(probe2)["sensor"] == "text"
    assert table(probe2)["sensor"][:3] == ["s0", "s1", "s2"]


def test_the_variables_option_picks_groups_or_arrays(tmp_path):
    with h5py.File(tmp_path / "v.h5", "w") as handle:
        handle["a/time"] = np.arange(10.0)
        handle["a/x"] = np.arange(10.0)
        handle["b/time"] = np.arange(20.0)
        handle["b/y"] = np.arange(20.0)
    picked = run(tmp_path, "v.h5", variables=["b"])
    assert [d["part"] for d in picked["datasets"]] == ["b"]
    arrays = one(run(tmp_path, "v.h5", variables=["a/x", "a/time"]))
    assert names(arrays) == ["x", "time"]
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "v.h5", variables=["a/x", "b/y"])
    assert caught.value.code == "invalid_options"
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "v.h5", variables=["nope"])
    assert caught.value.code == "invalid_options"


def test_netcdf4_with_cf_units_long_names_packing_and_time(tmp_path):
    with h5netcdf.File(tmp_path / "wind.nc", "w") as handle:
        handle.attrs["Conventions"] = "CF-1.8"
        handle.dimensions = {"time": 6, "height": 3}
        time = handle.create_variable("time", ("time",), "f8")
        time[:] = np.arange(6) * 600.0
        time.attrs["units"] = "seconds since 2024-03-01 00:00:00"
        speed = handle.create_variable("speed", ("time",), "f4")
        speed[:] = [1, 2, 3, 4, 5, 6]
        speed.attrs.update({"units": "m s-1", "long_name": "wind speed at 10 m"})
        temp = handle.create_variable("temp", ("time",), "i2", fillvalue=np.int16(-999))
        temp[:] = [0, 10, 20, -999, 40, 50]
        temp.attrs.update({"scale_factor": 0.1, "add_offset": 273.15, "units": "K"})
        handle.create_variable("height", ("height",), "f8")[:] = [10, 50, 100]
        handle.create_variable("profile", ("time", "height"), "f4")[:] = np.ones((6, 3))
    result = parts(run(tmp_path, "wind.nc"))
    assert set(result) == {"time", "height"}  # a dataset per dimension
    assert names(result["height"]) == ["height"]
    data = result["time"]
    assert names(data) == ["time", "speed", "temp", "profile_1", "profile_2", "profile_3"]
    assert types(data)["time"] == "datetime"
    assert table(data)["time"][1] == dt.datetime(2024, 3, 1, 0, 10)
    assert units(data)["speed"] == "m s-1"
    assert data["metadata"]["columns"]["speed"]["long_name"] == "wind speed at 10 m"
    temps = table(data)["temp"]
    assert temps[3] is None
    assert temps[1] == pytest.approx(274.15)
    assert data["metadata"]["format"] == "NetCDF-4"
    assert data["metadata"]["dimension"] == "time"


def test_netcdf3_classic(tmp_path):
    with scipy.io.netcdf_file(tmp_path / "met.nc", "w") as handle:
        handle.createDimension("time", None)
        time = handle.createVariable("time", "f8", ("time",))
        time[:] = np.arange(24.0)
        time.units = b"hours since 2020-01-01"
        pressure = handle.createVariable("pressure", "f4", ("time",))
        pressure[:] = np.arange(24.0) + 1000
        pressure.units = b"hPa"
    result = run(tmp_path, "met.nc")
    assert result["format"] == "netcdf"
    data = one(result)
    assert table(data)["time"][-1] == dt.datetime(2020, 1, 1, 23)
    assert units(data) == {"time": None, "pressure": "hPa"}
    assert data["metadata"]["format"] == "NetCDF-3"


@pytest.mark.parametrize("trick", HDF5_TRICKS)
def test_hdf5_links_and_external_data_are_refused(tmp_path, trick):
    with h5py.File(tmp_path / "trick.h5", "w") as handle:
        handle["t"] = np.arange(5.0)
        add_hdf5_trick(handle, trick, tmp_path)
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "trick.h5")
    assert caught.value.code == "corrupt_file"


def test_hdf5_huge_declared_shapes_and_link_cycles(tmp_path):
    with h5py.File(tmp_path / "huge.h5", "w") as handle:
        handle.create_dataset("t", shape=(10**12,), dtype="f8", chunks=(1024,))  # nothing written
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "huge.h5")
    assert caught.value.code == "limit_exceeded"
    with h5py.File(tmp_path / "cycle.h5", "w") as handle:
        handle["g/t"] = np.arange(30.0)
        handle["g/back"] = handle["/"]  # a hard link to the root: a cycle
    data = one(run(tmp_path, "cycle.h5"))
    assert data["row_count"] == 30


def test_a_damaged_hdf5_file_fails_with_a_code(tmp_path):
    with h5py.File(tmp_path / "ok.h5", "w") as handle:
        handle["t"] = np.arange(10_000.0)
    content = (tmp_path / "ok.h5").read_bytes()
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "cut.h5", content[: len(content) // 3])
    assert caught.value.code == "corrupt_file"
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "fake.nc", b"not a netcdf file at all")
    assert caught.value.code == "corrupt_file"


# -- TDMS -----------------------------------------------------------------------------------------------


def _tdms(path, segments=3):
    with TdmsWriter(path) as writer:
        for segment in range(segments):
            writer.write_segment([
                RootObject(properties={"title": "Flight 12", "aircraft": "D-EXYZ"}),
                GroupObject("Sensors", properties={"rig": "A"}),
                ChannelObject("Sensors", "Pressure", np.arange(100.0) + segment * 100,
                              properties={"unit_string": "Pa", "wf_increment": 0.01, "wf_start_offset": 2.0}),
                ChannelObject("Sensors", "Temp", np.arange(100, dtype=np.int32),
                              properties={"unit_string": "degC", "wf_increment": 0.01, "wf_start_offset": 2.0}),
                ChannelObject("GPS", "lat", np.full(10, 52.5)),
                ChannelObject("GPS", "status", np.array(["ok"] * 10)),
            ])  # fmt: skip


def test_tdms_groups_channels_units_and_waveform_time(tmp_path):
    _tdms(tmp_path / "flight.tdms")
    result = parts(run(tmp_path, "flight.tdms"))
    assert set(result) == {"Sensors", "GPS"}
    sensors = result["Sensors"]
    assert names(sensors) == ["time", "Pressure", "Temp"]
    assert units(sensors) == {"time": "s", "Pressure": "Pa", "Temp": "degC"}
    assert sensors["row_count"] == 300
    assert table(sensors)["time"][:2] == [2.0, 2.01]
    assert table(sensors)["Pressure"][250] == 250.0
    assert sensors["metadata"]["file_properties"]["aircraft"] == "D-EXYZ"
    assert sensors["metadata"]["group_properties"] == {"rig": "A"}
    gps = result["GPS"]
    assert types(gps) == {"lat": "number", "status": "text"}
    assert gps["row_count"] == 30


def test_a_truncated_tdms_file_fails_with_a_code(tmp_path):
    _tdms(tmp_path / "whole.tdms")
    content = (tmp_path / "whole.tdms").read_bytes()
    for cut in (len(content) * 2 // 3, 20):
        with pytest.raises(JobFailed) as caught:
            run(tmp_path, "cut.tdms", content[:cut])
        assert caught.value.code == "corrupt_file"
        assert "truncated" in caught.value.message


# -- LabVIEW LVM ----------------------------------------------------------------------------------------

LVM_HEADER = "LabVIEW Measurement\t\nWriter_Version\t2\nSeparator\tTab\nDecimal_Separator\t.\nX_Columns\tOne\nOperator\tK. Lee\nDate\t2024/05/01\n***End_of_Header***\t\n\t\n"


def _segment(columns, units_, rows):
    head = (
        f"Channels\t{len(columns)}\t\nY_Unit_Label\t"
        + "\t".join(units_)
        + "\t\nX_Dimension\t"
        + "\t".join("Time" for _ in columns)
    )
    lines = [head, "***End_of_Header***\t", "X_Value\t" + "\t".join(columns) + "\tComment"]
    lines += ["\t".join(str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n\t\n"


def test_lvm_segments_with_the_same_columns_are_one_dataset(tmp_path):
    content = LVM_HEADER + _segment(["Voltage", "Force"], ["V", "N"], [[0.0, 1.5, 2.5], [0.001, 1.6, 2.6]])
    content += _segment(["Voltage", "Force"], ["V", "N"], [[0.002, 1.7, 2.7]])
    result = run(tmp_path, "m.lvm", content.encode())
    assert result["format"] == "labview_lvm"
    data = one(result)
    assert names(data) == ["X_Value", "Voltage", "Force"]
    assert units(data) == {"X_Value": "s", "Voltage": "V", "Force": "N"}
    assert table(data)["Force"] == [2.5, 2.6, 2.7]
    assert data["metadata"]["file_header"]["Operator"] == "K. Lee"
    assert data["metadata"]["segments"] == [1, 2]


def test_lvm_segments_that_differ_become_datasets_of_their_own(tmp_path):
    content = LVM_HEADER + _segment(["Voltage"], ["V"], [[0.0, 1.5], [0.1, 1.6]])
    content += _segment(["Voltage", "Current"], ["V", "A"], [[0.2, 1.7, 0.3]])
    result = run(tmp_path, "two.data", content.encode())  # recognised by its first line
    assert [d["part"] for d in result["datasets"]] == ["segment 1", "segment 2"]
    assert names(result["datasets"][1]) == ["X_Value", "Voltage", "Current"]
    assert "segments_differ" in codes(result["datasets"][0])


# -- hostile text ---------------------------------------------------------------------------------------


def test_a_text_file_of_one_100_mb_line_fails_with_a_code(tmp_path):
    path = tmp_path / "line.csv"
    with path.open("wb") as handle:
        for _ in range(100):
            handle.write(b"1," * (512 * 1024))
    with pytest.raises(JobFailed) as caught:
        run(tmp_path, "line.csv")
    assert caught.value.code in ("corrupt_file", "limit_exceeded")


def test_a_short_row_of_names_under_a_preamble_line_is_the_header_not_units(tmp_path):
    data = one(run(tmp_path, "a.csv", b"Instrument,Anemometer 3\nTime,Speed\n0,1.5\n1,1.7\n"))
    assert names(data) == ["Time", "Speed"]
    assert units(data) == {"Time": None, "Speed": None}
    assert data["metadata"]["comments"] == ["Instrument,Anemometer 3"]
    data = one(run(tmp_path, "b.csv", b"Instrument,Anemometer 3\nTime,Speed\ns,m/s\n0,1.5\n1,1.7\n"))
    assert units(data) == {"Time": "s", "Speed": "m/s"}


def test_hdf5_row_and_column_vectors_are_columns_and_cf_origins_may_be_unpadded(tmp_path):
    with h5netcdf.File(tmp_path / "v.nc", "w") as handle:
        handle.dimensions = {"time": 3}
        time = handle.create_variable("time", ("time",), "i4")
        time[:] = [0, 1, 2]
        time.attrs["units"] = "days since 2000-1-1"
    assert table(one(run(tmp_path, "v.nc")))["time"][2] == dt.datetime(2000, 1, 3)
    with h5py.File(tmp_path / "vectors.h5", "w") as handle:
        handle["row"] = np.arange(20.0).reshape(1, 20)
        handle["column"] = np.arange(20.0).reshape(20, 1) * 2
    data = one(run(tmp_path, "vectors.h5"))
    assert names(data) == ["column", "row"]
    assert table(data)["column"][3] == 6.0
    assert table(data)["row"][19] == 19.0


def test_lvm_as_labview_writes_it_decimal_comma_no_x_columns_and_multi_x_columns(tmp_path):
    # the layouts of files LabVIEW wrote (as in openmodal/lvm_read's samples): the channel header's
    # values stand in their channel's column; X_Columns No leaves the X_Value column empty
    no_x = (
        "LabVIEW Measurement\t\nSeparator\tTab\nDecimal_Separator\t,\nMulti_Headings\tYes\nX_Columns\tNo\n"
        "***End_of_Header***\t\n\t\nChannels\t2\t\t\nSamples\t3\t3\t\nY_Unit_Label\tNewtons\tm/s^2\t\n"
        "X_Dimension\tTime\tTime\t\nDelta_X\t3,906250E-5\t3,906250E-5\t\n***End_of_Header***\t\t\t\n"
        "X_Value\tExcitation (Trigger)\tResponse (Trigger)\tComment\n\t0,914018\t1,204792\n\t0,537321\t1,208403\n"
        "\t0,616905\t1,213915\n"
    )
    data = one(run(tmp_path, "short.lvm", no_x.encode("latin-1")))
    assert names(data) == ["Excitation (Trigger)", "Response (Trigger)"]
    assert units(data) == {"Excitation (Trigger)": "Newtons", "Response (Trigger)": "m/s^2"}
    assert table(data)["Excitation (Trigger)"][0] == 0.914018
    multi = (
        "LabVIEW Measurement\t\nSeparator\tTab\nX_Columns\tMulti\n***End_of_Header***\t\n\t\n"
        "Channels\t3\t\t\t\t\t\nSamples\t2\t\t2\t\t0\t\nY_Unit_Label\tVolts\t\tg\t\tV\t\n"
        "X_Dimension\tTime\t\tTime\t\tTime\t\n***End_of_Header***\t\t\t\t\t\t\n"
        "X_Value\tVoltage\tX_Value\tAcceleration\tX_Value\tUntitled\tComment\n"
        "0.000000\t-0.035229\t0.000000\t0.532608\t\t\tLOST COMMUNICATION\n0.000020\t-0.034882\t0.000020\t0.502991\t\t\n"
    )
    data = one(run(tmp_path, "multi.lvm", multi.encode()))
    assert names(data) == ["X_Value", "Voltage", "X_Value_2", "Acceleration", "X_Value_3"]
    assert units(data) == {
        "X_Value": "s",
        "Voltage": "Volts",
        "X_Value_2": "s",
        "Acceleration": "g",
        "X_Value_3": "s",
    }
    assert data["metadata"]["comments"] == ["line 12: LOST COMMUNICATION"]


def _damaged(content: bytes, rng) -> bytes:
    data = bytearray(content)
    mode = rng.choice(["flip", "truncate", "zero"])
    if mode == "truncate":
        return bytes(data[: rng.randrange(1, len(data))])
    for _ in range(rng.randint(1, 12)):
        at = rng.randrange(len(data))
        data[at : at + (1 if mode == "flip" else 32)] = (
            bytes([rng.randrange(256)]) if mode == "flip" else bytes(32)
        )
    return bytes(data[: len(content)])


def test_damaged_files_of_every_new_format_fail_with_a_code_or_read(tmp_path):
    """Seeded byte flips, zeroed runs and cuts: the readers answer with a result or a JobFailed,
    never another exception (found h5py RuntimeErrors, scipy KeyErrors, npTDMS OverflowErrors and
    zlib errors from damaged workbook parts)."""
    rng = random.Random(16)
    with h5py.File(tmp_path / "a.h5", "w") as handle:
        handle.attrs["note"] = "x"
        handle["g/time"] = np.arange(200.0)
        handle["g/u"] = np.arange(200.0)
        handle["g/u"].attrs["units"] = "m/s"
        handle["g/rec"] = np.zeros(200, dtype=[("a", "i4"), ("b", "f8")])
    with h5netcdf.File(tmp_path / "b.nc", "w") as handle:
        handle.dimensions = {"time": 50}
        handle.create_variable("time", ("time",), "f8")[:] = np.arange(50.0)
    with scipy.io.netcdf_file(tmp_path / "c.nc", "w") as handle:
        handle.createDimension("t", 20)
        handle.createVariable("t", "f4", ("t",))[:] = np.arange(20.0)
    _tdms(tmp_path / "d.tdms", segments=2)
    (tmp_path / "e.lvm").write_text(LVM_HEADER + _segment(["Voltage"], ["V"], [[0.0, 1.5], [0.1, 1.6]]))
    _workbook(tmp_path / "f.xlsx", lambda sheet: [sheet.append([i, i * 2.5, "x"]) for i in range(50)])
    outcomes = set()
    for name in ("a.h5", "b.nc", "c.nc", "d.tdms", "e.lvm", "f.xlsx"):
        content = (tmp_path / name).read_bytes()
        for attempt in range(30):
            try:
                run(tmp_path, f"{attempt}-{name}", _damaged(content, rng))
                outcomes.add("read")
            except JobFailed as failure:
                outcomes.add(failure.code)
    assert "corrupt_file" in outcomes
