"""Dataset versions through the API: a file ingested as a new version of a dataset, reads of the
latest or of a numbered version, what plots and saved queries say when a newer version comes."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest

from handlers.keys import OBJECTS
from server import create_app
from tests.api.test_ingestion import finished, form, hdf5_with_two_groups
from tests.conftest import job_settings, problem

FIRST = b"time,speed,site\n" + b"".join(b"%d,%d,%s\n" % (i, i % 17, b"ab"[i % 2 : i % 2 + 1]) for i in range(500))
# the instrument's next run: one more column, speed as decimals, more rows
SECOND = b"time,speed,site,gust\n" + b"".join(
    b"%d,%d.5,%s,%d\n" % (i, i % 13, b"ab"[i % 2 : i % 2 + 1], i % 7) for i in range(800)
)


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    return await aiohttp_client(create_app(job_settings(services, tmp_path)))


async def ingest(client, team, name, data, who=None, project_id=None, content_type="text/csv", **fields):
    response = await client.post(
        f"/api/projects/{project_id or team.project_id}/ingestions",
        data=form([(name, data, content_type)], **fields), headers=(who or team.member).headers,
    )  # fmt: skip
    assert response.status == 202, await response.text()
    job = await finished(client, team, (await response.json())["jobs"][0]["id"])
    assert job["status"] == "succeeded", job
    return job


async def get(client, who, path, **params):
    response = await client.get(path, params=params, headers=who.headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def test_a_new_version_is_kept_beside_the_first_and_reads_default_to_it(client, team):
    first = await ingest(client, team, "Wind.csv", FIRST, dataset_type="wind", tag="roof")
    dataset_id = first["result"]["dataset_id"]
    assert first["result"]["version"] == 1
    second = await ingest(client, team, "Wind-run-2.csv", SECOND, version_of=dataset_id)
    assert second["result"]["dataset_id"] == dataset_id
    assert second["result"]["version"] == 2
    assert second["result"]["version_ids"][0] != dataset_id

    latest = await get(client, team.viewer, f"/api/datasets/{dataset_id}")
    assert (latest["id"], latest["version"], latest["latest_version"]) == (dataset_id, 2, 2)
    assert latest["name"] == "Wind.csv"  # the dataset keeps its name; the version knows its file
    assert latest["source"]["name"] == "Wind-run-2.csv"
    assert (latest["dataset_type"], latest["tag"]) == ("wind", "roof")
    assert latest["row_count"] == 800
    assert [c["name"] for c in latest["schema"]] == ["time", "speed", "site", "gust"]
    older = await get(client, team.viewer, f"/api/datasets/{dataset_id}", version=1)
    assert (older["version"], older["latest_version"], older["row_count"]) == (1, 2, 500)
    assert older["source"]["name"] == "Wind.csv"

    versions = await get(client, team.viewer, f"/api/datasets/{dataset_id}/versions")
    assert [(v["version"], v["id"], v["row_count"], v["source_name"]) for v in versions] == [
        (1, dataset_id, 500, "Wind.csv"), (2, dataset_id, 800, "Wind-run-2.csv"),
    ]  # fmt: skip
    assert versions[1]["version_id"] == second["result"]["version_ids"][0]
    listed = await get(client, team.viewer, f"/api/projects/{team.project_id}/datasets")
    assert [(d["id"], d["version"]) for d in listed["items"]] == [(dataset_id, 2)]

    rows = await get(client, team.viewer, f"/api/datasets/{dataset_id}/rows", limit="3", version="1")
    assert rows["columns"] == ["time", "speed", "site"]
    assert rows["total"] == 500
    rows = await get(client, team.viewer, f"/api/datasets/{dataset_id}/rows", limit="3")
    assert rows["total"] == 800
    assert rows["rows"][1] == {"time": 1, "speed": 1.5, "site": "b", "gust": 1}
    download = await client.get(f"/api/datasets/{dataset_id}/download", params={"version": "1", "format": "csv"},
                                headers=team.viewer.headers)  # fmt: skip
    assert download.status == 200
    table = list(csv.reader(io.StringIO(await download.text())))
    assert table[0] == ["time", "speed", "site"]
    assert len(table) == 501
    raw = await client.get(f"/api/datasets/{dataset_id}/raw", params={"version": "1"}, headers=team.viewer.headers)
    assert await raw.read() == FIRST
    raw = await client.get(f"/api/datasets/{dataset_id}/raw", headers=team.viewer.headers)
    assert await raw.read() == SECOND

    missing = await problem(
        await client.get(f"/api/datasets/{dataset_id}", params={"version": "3"}, headers=team.viewer.headers), 404
    )
    assert "no version 3" in missing["detail"]
    await problem(await client.get(f"/api/datasets/{dataset_id}", params={"version": "0"},
                                   headers=team.viewer.headers), 422)  # fmt: skip
    await problem(await client.get(f"/api/datasets/{dataset_id}/versions", headers=team.outsider.headers), 404)

    third = await ingest(client, team, "Wind-run-3.csv", FIRST, version_of=dataset_id)
    assert third["result"]["version"] == 3
    # a version's own id names exactly that version to a job, never to a reader
    assert (await get(client, team.viewer, f"/api/datasets/{second['result']['version_ids'][0]}"))["version"] == 3


async def test_a_new_version_must_name_one_file_and_a_dataset_of_the_project(client, team, make_account):
    dataset_id = (await ingest(client, team, "Wind.csv", FIRST))["result"]["dataset_id"]
    other = await client.post("/api/projects", json={"name": "Other"}, headers=team.member.headers)
    assert other.status == 201, await other.text()
    elsewhere = (await ingest(client, team, "Else.csv", FIRST, project_id=(await other.json())["id"]))["result"]

    async def refused(files, **fields):
        response = await client.post(f"/api/projects/{team.project_id}/ingestions", data=form(files, **fields),
                                     headers=team.member.headers)  # fmt: skip
        body = await problem(response, 422)
        assert [e["path"] for e in body["errors"]] == ["$.version_of"], body
        return body

    one = [("Wind.csv", SECOND, "text/csv")]
    await refused(one, version_of="not-an-id")
    await refused(one, version_of="0" * 24)
    await refused(one, version_of=elsewhere["dataset_id"])
    await refused([*one, ("More.csv", FIRST, "text/csv")], version_of=dataset_id)
    await refused(one, version_of=dataset_id, manifest=[{"ingest": False}])
    # nothing of the refused uploads was kept or queued
    versions = await get(client, team.member, f"/api/datasets/{dataset_id}/versions")
    assert len(versions) == 1
    viewer = await client.post(f"/api/projects/{team.project_id}/ingestions",
                               data=form(one, version_of=dataset_id), headers=team.viewer.headers)  # fmt: skip
    await problem(viewer, 403)


async def test_plots_and_saved_queries_say_which_version_they_were_made_from(client, team):
    dataset_id = (await ingest(client, team, "Wind.csv", FIRST))["result"]["dataset_id"]
    made = await client.post(f"/api/datasets/{dataset_id}/visualizations",
                             json={"kind": "line", "x": "time", "y": ["speed"]}, headers=team.member.headers)  # fmt: skip
    assert made.status == 202, await made.text()
    plot_id = (await made.json())["id"]
    assert (await finished(client, team, plot_id))["status"] == "succeeded"
    saved = await client.post(f"/api/projects/{team.project_id}/datasets",
                              json={"from_sql": "SELECT site, max(speed) AS top FROM wind GROUP BY site",
                                    "name": "Tops"}, headers=team.member.headers)  # fmt: skip
    assert saved.status == 202, await saved.text()
    derived = (await finished(client, team, (await saved.json())["id"]))["result"]["dataset_id"]
    plot = await get(client, team.viewer, f"/api/visualizations/{plot_id}")
    assert (plot["version"], plot["newer_version"]) == (1, None)
    [source] = (await get(client, team.viewer, f"/api/datasets/{derived}"))["provenance"]["inputs"]
    assert (source["dataset_id"], source["version"], source["newer_version"]) == (dataset_id, 1, False)

    await ingest(client, team, "Wind-2.csv", SECOND, version_of=dataset_id)
    plot = await get(client, team.viewer, f"/api/visualizations/{plot_id}")
    assert (plot["version"], plot["newer_version"]) == (1, 2)
    [source] = (await get(client, team.viewer, f"/api/datasets/{derived}"))["provenance"]["inputs"]
    assert (source["version"], source["latest_version"], source["newer_version"]) == (1, 2, True)
    # a plot of an older version, asked for by number, is drawn from that version
    older = await client.post(f"/api/datasets/{dataset_id}/visualizations", params={"version": "1"},
                              json={"kind": "histogram", "y": ["speed"]}, headers=team.member.headers)  # fmt: skip
    assert older.status == 202, await older.text()
    older_id = (await older.json())["id"]
    assert (await finished(client, team, older_id))["status"] == "succeeded"
    assert (await get(client, team.viewer, f"/api/visualizations/{older_id}"))["version"] == 1
    # SQL reads the latest version under the dataset's own table name
    answer = await client.post("/api/sql", json={"sql": "SELECT count(*), max(gust) FROM wind",
                                                 "project_id": team.project_id}, headers=team.viewer.headers)  # fmt: skip
    assert answer.status == 200, await answer.text()
    assert (await answer.json())["rows"] == [[800, 6]]


async def test_removing_a_version_makes_the_one_before_the_latest_and_deleting_removes_all(client, team):
    first = await ingest(client, team, "Wind.csv", FIRST)
    dataset_id = first["result"]["dataset_id"]
    second = await ingest(client, team, "Wind-2.csv", SECOND, version_of=dataset_id)
    # the ingestion that made version 2 goes: the dataset is back to version 1
    gone = await client.delete(f"/api/ingestions/{second['id']}", headers=team.member.headers)
    assert gone.status == 204, await gone.text()
    latest = await get(client, team.viewer, f"/api/datasets/{dataset_id}")
    assert (latest["version"], latest["latest_version"], latest["row_count"]) == (1, 1, 500)
    assert len(await get(client, team.viewer, f"/api/datasets/{dataset_id}/versions")) == 1
    # a number is never given twice: the next version is 3
    third = await ingest(client, team, "Wind-3.csv", SECOND, version_of=dataset_id)
    assert third["result"]["version"] == 3
    deleted = await client.delete(f"/api/datasets/{dataset_id}", headers=team.member.headers)
    assert deleted.status == 204, await deleted.text()
    for version in ("1", "3"):
        await problem(await client.get(f"/api/datasets/{dataset_id}", params={"version": version},
                                       headers=team.viewer.headers), 404)  # fmt: skip
    assert await client.app[OBJECTS].keys("datasets/") == []


def workbook(rows: int, sheets=("Run A", "Run B")) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for n, title in enumerate(sheets):
        sheet = book.create_sheet(title)
        sheet.append(["t", "value"])
        for i in range(rows + n):
            sheet.append([i, i * (n + 1)])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


async def test_a_workbook_or_hdf5_file_becomes_a_new_version_of_the_part_the_dataset_came_from(client, team):
    book = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    [_a, b] = (await ingest(client, team, "runs.xlsx", workbook(10), content_type=book))["result"]["dataset_ids"]
    done = await ingest(client, team, "runs-day2.xlsx", workbook(30), content_type=book, version_of=b)
    assert done["result"]["dataset_id"] == b
    assert done["result"]["version"] == 2
    latest = await get(client, team.viewer, f"/api/datasets/{b}")
    assert (latest["name"], latest["sheet"], latest["row_count"]) == ("runs.xlsx — Run B", "Run B", 31)
    # the next file has no sheet of that name: the job says so and the dataset stays as it was
    response = await client.post(
        f"/api/projects/{team.project_id}/ingestions",
        data=form([("other.xlsx", workbook(5, ("X", "Y")), book)], version_of=b), headers=team.member.headers,
    )  # fmt: skip
    failed = await finished(client, team, (await response.json())["jobs"][0]["id"])
    assert (failed["status"], failed["error"]["code"]) == ("failed", "version_mismatch"), failed
    assert "Run B" in failed["error"]["message"]
    assert (await get(client, team.viewer, f"/api/datasets/{b}"))["version"] == 2
    # choosing the one sheet makes it the new version whatever its name
    chosen = await ingest(client, team, "other.xlsx", workbook(5, ("X", "Y")), content_type=book, version_of=b,
                          manifest=[{"sheets": ["Y"]}])  # fmt: skip
    assert chosen["result"]["version"] == 3
    assert (await get(client, team.viewer, f"/api/datasets/{b}"))["row_count"] == 6

    probes = hdf5_with_two_groups()
    ids = (await ingest(client, team, "probes.h5", probes, content_type="application/x-hdf5"))["result"]["dataset_ids"]
    by_part = {(await get(client, team.viewer, f"/api/datasets/{i}"))["name"]: i for i in ids}
    probe2 = next(i for name, i in by_part.items() if "probe2" in name)
    again = await ingest(client, team, "probes-2.h5", probes, content_type="application/x-hdf5", version_of=probe2)
    assert again["result"]["version"] == 2
    assert (await get(client, team.viewer, f"/api/datasets/{probe2}"))["row_count"] == 25


def run_file(ids, *, speed, units, columns=("id", "time", "speed", "temp", "site")) -> bytes:
    """An instrument's export: names, a row of units, then one row per sample."""
    values = {
        "id": str, "time": lambda i: f"{i * 0.5:.1f}", "speed": speed,
        "temp": lambda i: f"{20 + (i % 7) * 0.25:.2f}", "site": lambda i: "ab"[i % 2], "gust": lambda i: str(i % 5),
    }  # fmt: skip
    lines = [",".join(columns), ",".join(units[c] for c in columns)]
    lines += [",".join(values[c](i) for c in columns) for i in ids]
    return ("\n".join(lines) + "\n").encode()


async def test_the_diff_tells_schema_statistics_and_keyed_rows_apart(client, team):
    first = run_file(range(1000), speed=lambda i: str(i % 17),
                     units={"id": "-", "time": "s", "speed": "m/s", "temp": "degC", "site": "-"})  # fmt: skip
    # the next run: ids 0-9 gone, 1000-1009 new, five speeds changed (and written as decimals),
    # temperature now in kelvin (same numbers: a relabelled unit), site dropped, gust added
    second = run_file(range(10, 1010), speed=lambda i: f"{i % 17 + (0.5 if 500 <= i < 505 else 0)}",
                      units={"id": "-", "time": "s", "speed": "m/s", "temp": "K", "gust": "m/s"},
                      columns=("id", "time", "speed", "temp", "gust"))  # fmt: skip
    dataset_id = (await ingest(client, team, "tunnel.csv", first))["result"]["dataset_id"]
    schema = (await get(client, team.viewer, f"/api/datasets/{dataset_id}"))["schema"]
    assert {c["name"]: c["unit"] for c in schema}["temp"] == "degC", schema
    await problem(await client.get(f"/api/datasets/{dataset_id}/diff", headers=team.viewer.headers), 422)
    await ingest(client, team, "tunnel-2.csv", second, version_of=dataset_id)

    diff = await get(client, team.viewer, f"/api/datasets/{dataset_id}/diff")
    assert (diff["from_version"]["version"], diff["to_version"]["version"]) == (1, 2)
    assert diff["schema"]["added"] == [{"name": "gust", "type": "integer", "unit": "m/s"}]
    assert [c["name"] for c in diff["schema"]["dropped"]] == ["site"]
    assert diff["schema"]["retyped"] == [{"name": "speed", "before": "integer", "after": "number"}]
    assert diff["schema"]["units_changed"] == [{"name": "temp", "before": "degC", "after": "K"}]
    assert diff["row_count_delta"] == 0
    stats = {s["column"]: s for s in diff["stats"]}
    assert set(stats) == {"id", "time", "speed", "temp"}
    assert stats["id"]["delta"]["min"] == 10
    assert stats["id"]["delta"]["max"] == 10
    assert stats["speed"]["delta"]["mean"] == pytest.approx(stats["speed"]["after"]["mean"] - stats["speed"]["before"]["mean"])
    assert diff["rows"] is None  # no key columns declared

    # keys asked for in the request, then declared on the dataset
    keyed = await get(client, team.viewer, f"/api/datasets/{dataset_id}/diff", key="id")
    rows = keyed["rows"]
    assert rows["keys"] == ["id"]
    assert rows["error"] is None
    assert rows["added"]["count"] == 10
    assert [r["id"] for r in rows["added"]["rows"]] == list(range(1000, 1010))
    assert rows["added"]["rows"][0]["gust"] == 0
    assert rows["removed"]["count"] == 10
    assert [r["id"] for r in rows["removed"]["rows"]] == list(range(10))
    assert rows["changed"]["count"] == 5
    assert rows["changed"]["rows"][0] == {"key": {"id": 500}, "changes": {"speed": [500 % 17, 500 % 17 + 0.5]}}
    assert rows["compared_columns"] == 3  # time, speed, temp
    refused = await client.patch(f"/api/datasets/{dataset_id}", json={"key_columns": ["id"]}, headers=team.viewer.headers)
    await problem(refused, 403)
    wrong = await client.patch(f"/api/datasets/{dataset_id}", json={"key_columns": ["nope"]}, headers=team.member.headers)
    assert (await problem(wrong, 422))["errors"][0]["path"] == "$.key_columns[0]"
    declared = await client.patch(f"/api/datasets/{dataset_id}", json={"key_columns": ["id"]}, headers=team.member.headers)
    assert declared.status == 200, await declared.text()
    assert (await declared.json())["key_columns"] == ["id"]
    backwards = await get(client, team.viewer, f"/api/datasets/{dataset_id}/diff", **{"from": "2", "to": "1"})
    assert backwards["rows"]["added"]["count"] == 10
    assert [r["id"] for r in backwards["rows"]["added"]["rows"]] == list(range(10))
    assert backwards["rows"]["changed"]["rows"][0]["changes"] == {"speed": [500 % 17 + 0.5, 500 % 17]}

    # a key that is not one: said in the answer; a key not in both versions: refused
    loose = await get(client, team.viewer, f"/api/datasets/{dataset_id}/diff", key="temp")
    assert loose["rows"]["error"]["code"] == "keys_not_unique"
    assert loose["schema"]["units_changed"]  # the rest of the diff is still there
    gone = await client.get(f"/api/datasets/{dataset_id}/diff", params={"key": "site"}, headers=team.viewer.headers)
    assert (await problem(gone, 422))["errors"][0]["path"] == "query.key"
    missing = await client.get(f"/api/datasets/{dataset_id}/diff", params={"from": "7"}, headers=team.viewer.headers)
    await problem(missing, 404)
    await problem(await client.get(f"/api/datasets/{dataset_id}/diff", headers=team.outsider.headers), 404)

    # the next version keeps the declared keys: compared with version 2 by default
    third = run_file(range(10, 1011), speed=lambda i: f"{i % 17}.0",
                     units={"id": "-", "time": "s", "speed": "m/s", "temp": "K", "gust": "m/s"},
                     columns=("id", "time", "speed", "temp", "gust"))  # fmt: skip
    await ingest(client, team, "tunnel-3.csv", third, version_of=dataset_id)
    latest = await get(client, team.viewer, f"/api/datasets/{dataset_id}/diff")
    assert (latest["from_version"]["version"], latest["to_version"]["version"]) == (2, 3)
    assert latest["rows"]["keys"] == ["id"]
    assert latest["rows"]["added"]["count"] == 1
    assert latest["rows"]["changed"]["count"] == 5
