"""Ingestion through the API: uploads, options, jobs, datasets and everything read back from them."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import zipfile

import aiohttp
import h5py
import numpy as np
import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from handlers.keys import INGESTIONS, LOCAL_FILES, METRICS, MONGO, OBJECTS
from server import create_app
from tests.conftest import job_settings, problem, wait_until
from tests.sse_client import read_events

CSV = b"time,speed [m/s],label\n0,1.5,=cmd|' /C calc'!A0\n1,2.5,calm\n2,3.5,+gust\n"


@pytest.fixture
async def client(aiohttp_client, services, tmp_path, request):
    # a low unpacked-size limit lets the zip bomb below be small enough to build quickly
    # a short raw lease: a job learns quickly that nobody stores its raw file (raw_wait_s stays 600 s)
    sections = {"ingest": {"max_uncompressed_bytes": 64 * 1024 * 1024, "raw_lease_s": 3.0}}
    marker = request.node.get_closest_marker("jobs")  # job settings a test needs (@pytest.mark.jobs(...))
    jobs = marker.kwargs if marker else {}
    return await aiohttp_client(create_app(job_settings(services, tmp_path, sections, **jobs)))


def form(files, **fields):
    """Options first, then the files: the order a browser's FormData keeps."""
    data = aiohttp.FormData()
    for name, value in fields.items():
        data.add_field(name, value if isinstance(value, str) else json.dumps(value))
    for name, content, content_type in files:
        data.add_field("files", content, filename=name, content_type=content_type)
    return data


async def ingest(client, team, files, who=None, **fields):
    return await client.post(
        f"/api/projects/{team.project_id}/ingestions",
        data=form(files, **fields),
        headers=(who or team.member).headers,
    )


async def finished(client, team, job_id):
    seen = {}

    async def check():
        seen["job"] = await (await client.get(f"/api/jobs/{job_id}", headers=team.member.headers)).json()
        return seen["job"] if seen["job"]["status"] in {"succeeded", "failed", "cancelled"} else None

    try:
        return await wait_until(check)
    except AssertionError as unfinished:  # say where the job stood (queued, running, which attempt)
        raise AssertionError(f"{unfinished}; the job: {seen.get('job')!r}") from None


async def test_csv_becomes_a_dataset_with_everything_readable(client, team):
    response = await ingest(client, team, [("wind.csv", CSV, "text/csv")], dataset_type="wind", tag="roof")
    assert response.status == 202
    batch = await response.json()
    assert batch["batch_id"]
    [entry] = batch["jobs"]
    assert entry["file"] == "wind.csv"
    assert entry["sheet"] is None
    assert entry["status"] in {"queued", "running"}
    job = await finished(client, team, entry["id"])
    assert job["status"] == "succeeded", job
    dataset_id = job["result"]["dataset_id"]
    dataset = await (await client.get(f"/api/datasets/{dataset_id}", headers=team.viewer.headers)).json()
    assert dataset["name"] == "wind.csv"
    assert dataset["dataset_type"] == "wind"
    assert dataset["tag"] == "roof"
    assert dataset["row_count"] == 3
    assert dataset["schema"] == [
        {"name": "time", "type": "integer", "unit": None},
        {"name": "speed [m/s]", "type": "number", "unit": "m/s"},
        {"name": "label", "type": "text", "unit": None},
    ]
    assert dataset["stats"]["speed [m/s]"]["mean"] == 2.5
    assert dataset["sample"][1] == {"time": 1, "speed [m/s]": 2.5, "label": "calm"}
    assert dataset["source"]["sha256"] == hashlib.sha256(CSV).hexdigest()
    assert dataset["source"]["size"] == len(CSV)
    assert dataset["provenance"]["versions"]["pyarrow"]
    assert dataset["provenance"]["format"] == "text"

    rows = await (await client.get(f"/api/datasets/{dataset_id}/rows", params={"offset": "1", "limit": "5",
                                   "columns": "label,time"}, headers=team.viewer.headers)).json()  # fmt: skip
    assert rows == {"columns": ["label", "time"], "rows": [{"label": "calm", "time": 1}, {"label": "+gust", "time": 2}],
                    "offset": 1, "limit": 5, "total": 3}  # fmt: skip
    await problem(
        await client.get(
            f"/api/datasets/{dataset_id}/rows", params={"columns": "nope"}, headers=team.viewer.headers
        ),
        422,
    )

    parquet = await client.get(f"/api/datasets/{dataset_id}/download", headers=team.viewer.headers)
    assert parquet.headers["Content-Disposition"].startswith("attachment")
    table = pq.read_table(pa.BufferReader(await parquet.read()))
    assert table.column("speed [m/s]").to_pylist() == [1.5, 2.5, 3.5]

    exported = await client.get(
        f"/api/datasets/{dataset_id}/download", params={"format": "csv"}, headers=team.viewer.headers
    )
    assert exported.headers["Content-Type"].startswith("text/csv")
    lines = list(csv.reader(io.StringIO((await exported.read()).decode())))
    assert lines[0] == ["time", "speed [m/s]", "label"]
    assert lines[1][2] == "'=cmd|' /C calc'!A0"  # formula neutralised
    assert lines[3][2] == "'+gust"

    raw = await client.get(f"/api/datasets/{dataset_id}/raw", headers=team.viewer.headers)
    assert await raw.read() == CSV


# a lease long enough that a busy machine never hands the job to a second attempt: a watcher that
# connects after a retry is (rightly) not replayed the first attempt's stages, "upload" among them
@pytest.mark.jobs(lease_s=30.0, heartbeat_s=1.0)
async def test_progress_events_name_the_stages(client, team):
    big = b"a,b\n" + b"".join(b"%d,%d\n" % (i, i * 2) for i in range(200_000))
    [entry] = (await (await ingest(client, team, [("big.csv", big, "text/csv")])).json())["jobs"]
    response = await client.get(f"/api/jobs/{entry['id']}/events", headers=team.member.headers)
    events, ended = await read_events(response, timeout_s=180)
    assert ended
    stages = {e.data["stage"] for e in events if e.event == "progress"}
    assert {"upload", "parse", "stats", "write", "commit"} <= stages
    assert events[-1].data["status"] == "succeeded"


async def test_the_same_bytes_are_stored_once(client, team):
    for _ in range(2):
        [entry] = (await (await ingest(client, team, [("same.csv", CSV, "text/csv")])).json())["jobs"]
        await finished(client, team, entry["id"])
    assert len(await client.app[OBJECTS].keys("raw/")) == 1
    datasets = await (
        await client.get(f"/api/projects/{team.project_id}/datasets", headers=team.viewer.headers)
    ).json()
    assert len(datasets["items"]) == 2


async def test_ingest_false_stores_raw_only_and_other_formats_are_stored(client, team):
    response = await ingest(client, team, [("notes.csv", CSV, "text/csv"), ("photo.png", b"\x89PNG....", "image/png")],
                            manifest=[{"ingest": False}])  # fmt: skip
    jobs = (await response.json())["jobs"]
    assert jobs[0]["status"] == "stored"
    stored = await (await client.get(f"/api/ingestions/{jobs[0]['id']}", headers=team.viewer.headers)).json()
    assert stored["status"] == "stored"
    assert stored["stored_only"] is True
    photo = await finished(client, team, jobs[1]["id"])
    assert photo["status"] == "succeeded"
    assert photo["result"]["stored_only"] is True
    assert ".png" in photo["result"]["reason"]
    seen = await (await client.get(f"/api/ingestions/{jobs[1]['id']}", headers=team.viewer.headers)).json()
    assert (seen["status"], seen["stored_only"], seen["reason"], seen["dataset_ids"]) == (
        "succeeded", True, photo["result"]["reason"], []
    )
    assert len(await client.app[OBJECTS].keys("raw/")) == 2
    listing = await (
        await client.get(f"/api/projects/{team.project_id}/ingestions", headers=team.viewer.headers)
    ).json()
    assert {i["status"] for i in listing["items"]} == {"stored", "succeeded"}


def xlsx() -> bytes:
    book = openpyxl.Workbook()
    book.active.title = "A"
    book.active.append(["x", "y"])
    book.active.append([1, 2])
    book.create_sheet("B").append(["p", "q"])
    book["B"].append([3, 4])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def test_workbooks_one_job_per_chosen_sheet_or_one_for_all(client, team):
    content = xlsx()
    chosen = await ingest(
        client, team, [("book.xlsx", content, "application/vnd.ms-excel")], manifest=[{"sheets": ["B", "A"]}]
    )
    jobs = (await chosen.json())["jobs"]
    assert [(j["file"], j["sheet"]) for j in jobs] == [("book.xlsx", "B"), ("book.xlsx", "A")]
    for job in jobs:
        done = await finished(client, team, job["id"])
        dataset = await (
            await client.get(f"/api/datasets/{done['result']['dataset_id']}", headers=team.member.headers)
        ).json()
        assert dataset["sheet"] == job["sheet"]
        assert dataset["name"] == f"book.xlsx — {job['sheet']}"
    [whole] = (
        await (await ingest(client, team, [("book.xlsx", content, "application/vnd.ms-excel")])).json()
    )["jobs"]
    done = await finished(client, team, whole["id"])
    assert len(done["result"]["dataset_ids"]) == 2


def hdf5_with_two_groups() -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as handle:
        for group, rows in (("probe1", 40), ("probe2", 25)):
            handle[f"{group}/time"] = np.arange(rows) * 0.1
            handle[f"{group}/u"] = np.arange(rows) * 2.0
            handle[f"{group}/u"].attrs["units"] = "m/s"
    return buffer.getvalue()


async def test_an_hdf5_file_under_any_name_gives_a_dataset_per_group(client, team):
    [job] = (
        await (await ingest(client, team, [("probes.bin", hdf5_with_two_groups(), "application/octet-stream")],
                            manifest=[{"variables": ["probe2", "probe1"]}])).json()
    )["jobs"]  # fmt: skip
    done = await finished(client, team, job["id"])
    assert done["status"] == "succeeded", done
    datasets = [
        await (await client.get(f"/api/datasets/{i}", headers=team.member.headers)).json()
        for i in done["result"]["dataset_ids"]
    ]
    assert [d["name"] for d in datasets] == ["probes.bin — probe2", "probes.bin — probe1"]
    assert [d["row_count"] for d in datasets] == [25, 40]
    assert datasets[0]["schema"][1] == {"name": "u", "type": "number", "unit": "m/s"}
    assert datasets[0]["provenance"]["format"] == "hdf5"


async def test_lvm_profile_can_be_asked_for(client, team):
    content = (
        b"LabVIEW Measurement\t\nSeparator\tTab\n***End_of_Header***\t\n\t\nChannels\t1\t\n"
        b"Y_Unit_Label\tV\t\n***End_of_Header***\t\nX_Value\tVoltage\tComment\n0\t1.5\n1\t1.6\n"
    )
    [job] = (
        await (
            await ingest(
                client, team, [("scope.txt", content, "text/plain")], manifest=[{"profile": "labview_lvm"}]
            )
        ).json()
    )["jobs"]
    done = await finished(client, team, job["id"])
    dataset = await (
        await client.get(f"/api/datasets/{done['result']['dataset_id']}", headers=team.member.headers)
    ).json()
    assert [c["unit"] for c in dataset["schema"]] == [None, "V"]
    assert dataset["metadata"]["profile"] == "labview_lvm"


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"header_mode": "sideways"}, "$.header_mode"),
        ({"header_mode": "custom"}, "$.custom_headers"),
        ({"manifest": "not json"}, "$.manifest"),
        ({"manifest": [{"ingest": "yes"}]}, "$.manifest[0].ingest"),
        ({"manifest": [{"parse_range": {"start_line": 0}}]}, "$.manifest[0].parse_range.start_line"),
        ({"manifest": [{"profile": "radar"}]}, "$.manifest[0].profile"),
        ({"manifest": [{"colour": "red"}]}, "$.manifest[0]"),
        ({"manifest": [{}, {}]}, "$.manifest"),
        ({"dataset_type": "x" * 100}, "$.dataset_type"),
    ],
)
async def test_bad_options_are_422_and_nothing_is_stored(client, team, fields, path):
    response = await ingest(client, team, [("wind.csv", CSV, "text/csv")], **fields)
    body = await problem(response, 422)
    assert any(e["path"].startswith(path) for e in body["errors"]), body
    assert await client.app[OBJECTS].keys("raw/") == []
    assert await client.app[MONGO]["jobs"].count_documents({}) == 0


async def test_options_after_the_files_are_refused(client, team):
    data = aiohttp.FormData()
    data.add_field("files", CSV, filename="wind.csv", content_type="text/csv")
    data.add_field("tag", "late")
    body = await problem(
        await client.post(
            f"/api/projects/{team.project_id}/ingestions", data=data, headers=team.member.headers
        ),
        422,
    )
    assert body["errors"][0]["path"] == "$.tag"
    assert await client.app[OBJECTS].keys("raw/") == []


async def test_custom_headers_that_do_not_fit_fail_the_job_with_a_message(client, team):
    [entry] = (await (await ingest(client, team, [("wind.csv", CSV, "text/csv")], header_mode="custom",
                                   custom_headers=["only", "two"])).json())["jobs"]  # fmt: skip
    job = await finished(client, team, entry["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_options"
    assert "3 columns" in job["error"]["message"]


@pytest.mark.jobs(poll_s=0.2)
async def test_a_job_whose_raw_file_nobody_stores_fails_at_once(client, team):
    """Found by the chaos test: a job whose batch's request died (a restart, an outage answered 503)
    waited raw_wait_s (600 s) for raw bytes nobody was storing any more, holding a pool slot. The
    request's raw lease (renewed while it stores them) ends with it, and the job then fails at once
    with a clear code."""
    [entry] = (await (await ingest(client, team, [("wind.csv", CSV, "text/csv")], header_mode="custom",
                                   custom_headers=["only", "two"])).json())["jobs"]  # fmt: skip
    assert (await finished(client, team, entry["id"]))["status"] == "failed"
    sha = hashlib.sha256(CSV).hexdigest()
    await wait_until(lambda: asyncio.sleep(0, result=not client.app[LOCAL_FILES].spool_path(sha).exists()))
    await client.app[OBJECTS].delete(["raw/" + sha])  # the bytes never reached storage

    retried = await client.post(f"/api/jobs/{entry['id']}/retry", headers=team.member.headers)
    assert retried.status == 202, await retried.text()
    job = await finished(client, team, entry["id"])
    assert job["status"] == "failed"
    assert job["error"]["code"] == "upload_incomplete"
    assert "upload it again" in job["error"]["message"]


async def test_jobs_queued_here_hold_their_spooled_bytes_until_the_last_one_ends(client, team):
    """The same bytes twice in one upload share one spool file: the first job's end leaves it to the
    second (which reads it instead of fetching the raw object from S3), and the last one removes it."""
    content = b"t,v\n" + b"".join(b"%d,%d\n" % (i, i * 3) for i in range(300))
    sha = hashlib.sha256(content).hexdigest()
    fetches = client.app[METRICS].backend_calls.labels("s3", "GetObject")
    before = fetches._value.get()
    response = await ingest(client, team, [("a.csv", content, "text/csv"), ("b.csv", content, "text/csv")])
    assert response.status == 202
    jobs = [await finished(client, team, entry["id"]) for entry in (await response.json())["jobs"]]
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"]
    assert fetches._value.get() == before, "a job fetched the raw object although its bytes were spooled here"
    await wait_until(lambda: asyncio.sleep(0, result=not client.app[LOCAL_FILES].spool_path(sha).exists()))


async def test_a_hold_whose_job_ran_elsewhere_lapses(client, team, monkeypatch):
    """A job queued here but run by another instance never lets go of its spooled file here: its
    hold lapses (after an hour; at once here) and the file goes when holds are next looked over."""
    monkeypatch.setattr("domain.datasets.ingestion.SPOOL_HOLD_S", 0.0)
    monkeypatch.setattr("domain.datasets.ingestion.HOLDS_BEFORE_PRUNING", 1)
    service, files = client.app[INGESTIONS], client.app[LOCAL_FILES]
    elsewhere = "9" * 64
    files.spool_path(elsewhere).write_bytes(b"t,v\n1,2\n")
    service._hold("000000000000000000000000", elsewhere)  # as _record does; the job then ran elsewhere
    assert files.held(elsewhere)
    [entry] = (await (await ingest(client, team, [("w.csv", CSV, "text/csv")])).json())["jobs"]
    assert (await finished(client, team, entry["id"]))["status"] == "succeeded"
    assert not files.held(elsewhere)
    assert not files.spool_path(elsewhere).exists()


async def test_viewers_and_outsiders_cannot_upload(client, team):
    await problem(await ingest(client, team, [("w.csv", CSV, "text/csv")], who=team.viewer), 403)
    await problem(await ingest(client, team, [("w.csv", CSV, "text/csv")], who=team.outsider), 404)
    assert await client.app[OBJECTS].keys("raw/") == []


async def test_hostile_files_fail_their_job_and_nothing_else(client, team):
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr(
            "xl/worksheets/sheet1.xml", b"\0" * (1100 * 1024 * 1024)
        )  # 1.1 GB of zeros, ~1 MB packed
    laughs = io.BytesIO()
    entity = '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]><sst>&lol2;</sst>'
    with zipfile.ZipFile(laughs, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        archive.writestr("xl/sharedStrings.xml", entity)
    files = [
        ("bomb.xlsx", bomb.getvalue(), "application/octet-stream"),
        ("laughs.xlsx", laughs.getvalue(), "application/octet-stream"),
        ("noise.csv", bytes(range(256)) * 100, "text/csv"),
        ("fine.csv", CSV, "text/csv"),
    ]
    jobs = (await (await ingest(client, team, files)).json())["jobs"]
    outcomes = {j["file"]: await finished(client, team, j["id"]) for j in jobs}
    assert outcomes["bomb.xlsx"]["error"]["code"] == "limit_exceeded"
    assert outcomes["laughs.xlsx"]["error"]["code"] == "corrupt_file"
    assert outcomes["noise.csv"]["error"]["code"] == "corrupt_file"
    assert outcomes["fine.csv"]["status"] == "succeeded"
    for outcome in outcomes.values():
        if outcome["error"]:
            assert "Traceback" not in outcome["error"]["message"]
    assert (await client.get("/ready")).status == 200


async def test_deleting_an_ingestion_removes_its_datasets_and_unused_raw_bytes(client, team):
    [entry] = (await (await ingest(client, team, [("wind.csv", CSV, "text/csv")])).json())["jobs"]
    job = await finished(client, team, entry["id"])
    dataset_id = job["result"]["dataset_id"]
    store = client.app[OBJECTS]
    assert sorted(await store.keys("datasets/")) == [f"datasets/{dataset_id}/data.parquet",
                                                     f"datasets/{dataset_id}/summary.parquet"]  # fmt: skip
    await problem(await client.delete(f"/api/ingestions/{entry['id']}", headers=team.viewer.headers), 403)
    assert (await client.delete(f"/api/ingestions/{entry['id']}", headers=team.member.headers)).status == 204
    await problem(await client.get(f"/api/datasets/{dataset_id}", headers=team.member.headers), 404)
    await problem(await client.get(f"/api/ingestions/{entry['id']}", headers=team.member.headers), 404)
    assert await store.keys("datasets/") == []
    assert await store.keys("raw/") == []


async def test_dataset_list_filters_and_dataset_delete(client, team):
    made = {}
    for tag in ("a", "b"):
        [entry] = (
            await (
                await ingest(client, team, [(f"{tag}.csv", CSV, "text/csv")], tag=tag, dataset_type="cfd")
            ).json()
        )["jobs"]
        made[tag] = (entry["id"], (await finished(client, team, entry["id"]))["result"]["dataset_id"])
    url = f"/api/projects/{team.project_id}/datasets"
    tagged = await (await client.get(url, params={"tag": "a"}, headers=team.viewer.headers)).json()
    assert [d["name"] for d in tagged["items"]] == ["a.csv"]
    assert tagged["items"][0]["columns"] == 3
    typed = await (await client.get(url, params={"dataset_type": "cfd"}, headers=team.viewer.headers)).json()
    assert len(typed["items"]) == 2
    target = tagged["items"][0]["id"]
    await problem(await client.delete(f"/api/datasets/{target}", headers=team.viewer.headers), 403)
    ingestions = f"/api/projects/{team.project_id}/ingestions"
    listed = (await (await client.get(ingestions, headers=team.viewer.headers)).json())["items"]
    assert {i["id"]: i["dataset_ids"] for i in listed} == {made["a"][0]: [target], made["b"][0]: [made["b"][1]]}
    assert (await client.delete(f"/api/datasets/{target}", headers=team.member.headers)).status == 204
    assert len((await (await client.get(url, headers=team.viewer.headers)).json())["items"]) == 1
    # an ingestion lists only the datasets it made that are still there
    listed = (await (await client.get(ingestions, headers=team.viewer.headers)).json())["items"]
    assert {i["id"]: i["dataset_ids"] for i in listed} == {made["a"][0]: [], made["b"][0]: [made["b"][1]]}
    one = await (await client.get(f"/api/ingestions/{made['a'][0]}", headers=team.viewer.headers)).json()
    assert (one["status"], one["dataset_ids"], one["stored_only"]) == ("succeeded", [], False)


async def test_an_upload_keeps_its_spooled_bytes_while_another_ingestion_of_them_ends(client, team):
    """Found by the fuzzer: the same bytes uploaded twice share one spool file, and the first
    ingestion's end removed it while the second request was still reading its body, so the second
    had nothing left to store (a 503 and a traceback)."""
    content = b"t,v\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(200))
    sha = hashlib.sha256(content).hexdigest()
    spool = client.app[LOCAL_FILES].spool_path(sha)
    boundary = "HeldOpen"
    first_part = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="held.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}\r\n".encode()
    )
    # the request stops in the middle of its second file (aiohttp reads a part one read ahead, so the
    # second file trickles in until the first one is spooled)
    second_part = b'Content-Disposition: form-data; name="files"; filename="other.csv"\r\n\r\nx,y\n'
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        f"POST /api/projects/{team.project_id}/ingestions HTTP/1.1\r\nHost: labhub\r\n"
        f"Authorization: {team.member.headers['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n".encode()
    )

    async def send(data: bytes) -> None:
        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
        await writer.drain()

    await send(first_part + second_part)

    async def first_file_spooled() -> bool:
        if not spool.exists():
            await send(b"1,2\n" * 64)
        return spool.exists()

    await wait_until(first_file_spooled)

    # meanwhile the same bytes are ingested start to end and that ingestion is deleted (so S3 holds
    # them no more), and its job's cleanup lets go of the spool file
    [entry] = (await (await ingest(client, team, [("same.csv", content, "text/csv")])).json())["jobs"]
    assert (await finished(client, team, entry["id"]))["status"] == "succeeded"
    deleted = await client.delete(f"/api/ingestions/{entry['id']}", headers=team.member.headers)
    assert deleted.status == 204
    assert await client.app[OBJECTS].keys("raw/" + sha) == []
    client.app[INGESTIONS]._release(sha)
    assert spool.exists(), "a request still reading its body holds its spooled files"

    await send(b"1,2\n" + f"\r\n--{boundary}--\r\n".encode())
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 60)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 202"), answer[:500]
    jobs = json.loads(answer.split(b"\r\n\r\n", 1)[1])["jobs"]
    held = next(job for job in jobs if job["file"] == "held.csv")
    assert (await finished(client, team, held["id"]))["status"] == "succeeded"
    await wait_until(lambda: asyncio.sleep(0, result=not spool.exists()))  # gone once no job needs it
