"""GET /api/datasets/{id}/series on real ingested datasets: exact extremes from the summary, raw rows
when zoomed in, JSON and Arrow, the refusals, and a summary made on first use for a dataset stored
without one."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.ipc
import pytest
from bson import ObjectId

from handlers.keys import LOCAL_FILES, MONGO, OBJECTS
from server import create_app
from tests.api.test_sql import ingested
from tests.conftest import job_settings, problem

ROWS = 120_000
START = datetime(2026, 3, 1, 9, 0, 0)
SPIKE = 77_777


def speed(i: int) -> float:
    return 500.0 if i == SPIKE else -300.0 if i == SPIKE + 5000 else round(math.sin(i / 900) * 10, 3)


CSV = b"time,speed [m/s],gust,site\n" + b"".join(
    b"%s,%s,%d,%s\n" % ((START + timedelta(milliseconds=10 * i)).isoformat(timespec="milliseconds").encode(),
                        b"" if 20_000 <= i < 20_500 else repr(speed(i)).encode(), (i * 7) % 23, b"ab"[i % 2 : i % 2 + 1])
    for i in range(ROWS)
)  # fmt: skip


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    return await aiohttp_client(create_app(job_settings(services, tmp_path)))


def iso(i: int) -> str:
    return (START + timedelta(milliseconds=10 * i)).isoformat()


async def series(client, who, dataset_id, **query):
    return await client.get(f"/api/datasets/{dataset_id}/series", params=query, headers=who.headers)


async def test_a_chart_gets_every_extreme_at_every_zoom(client, team):
    dataset_id = await ingested(client, team, "Run.csv", CSV)
    dataset = await (await client.get(f"/api/datasets/{dataset_id}", headers=team.member.headers)).json()
    assert dataset["sorted_columns"] == ["time"]
    # a whole view of many rows per point comes from the summary alone: the Parquet is not fetched
    whole = await series(client, team.viewer, dataset_id, y="speed [m/s]", points=100)
    assert max((await whole.json())["series"][0]["y"]) == 500.0
    cached = [p.name for p in client.app[LOCAL_FILES].cache.iterdir() if p.name.startswith(dataset_id)]
    assert cached == [f"{dataset_id}-{cached[0].split('-')[1].split('.')[0]}.summary.parquet"]
    response = await series(client, team.viewer, dataset_id, y="speed [m/s],gust", points=500)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["x"] == {"name": "time", "unit": None, "type": "time", "timezone": None, "lab_timezone": "UTC",
                         "extent": [iso(0), iso(ROWS - 1)]}  # fmt: skip
    assert body["source"] == "summary"
    assert body["rows"] == [0, ROWS]
    speed_line, gust = body["series"]
    assert speed_line["name"] == "speed [m/s]"
    assert speed_line["unit"] == "m/s"
    for line in (speed_line, gust):
        assert len(line["x"]) == len(line["y"]) <= 1000
        assert line["x"] == sorted(line["x"])
    values = [v for v in speed_line["y"] if v is not None]
    assert max(values) == 500.0
    assert min(values) == -300.0
    assert speed_line["x"][speed_line["y"].index(500.0)] == iso(SPIKE)  # the spike where it happened
    assert None in speed_line["y"]  # the 500 empty cells break the line
    assert max(gust["y"]) == 22
    assert min(gust["y"]) == 0
    assert all(isinstance(v, int) for v in gust["y"])
    # zoomed onto the spike, at every width down to the raw rows
    for width_ms, points in ((60_000, 500), (5_000, 200), (1_000, 400)):
        low = (START + timedelta(milliseconds=10 * SPIKE - width_ms / 2)).isoformat()
        high = (START + timedelta(milliseconds=10 * SPIKE + width_ms / 2)).isoformat()
        zoom = await (await series(client, team.viewer, dataset_id, y="speed [m/s]", points=points,
                                   **{"from": low, "to": high})).json()  # fmt: skip
        [line] = zoom["series"]
        assert max(v for v in line["y"] if v is not None) == 500.0
        assert iso(SPIKE) in line["x"]
        first, last = zoom["rows"]
        assert zoom["source"] == ("raw" if last - first <= points else "summary")
    raw = await (await series(client, team.viewer, dataset_id, y="gust", points=400,
                              **{"from": iso(1000), "to": iso(1099)})).json()  # fmt: skip
    assert raw["source"] == "raw"
    assert raw["rows"] == [1000, 1100]
    assert raw["series"][0]["x"] == [iso(i) for i in range(1000, 1100)]
    assert raw["series"][0]["y"] == [(i * 7) % 23 for i in range(1000, 1100)]
    # the row number as x, and defaults (the first columns of numbers)
    by_row = await (await series(client, team.viewer, dataset_id, x="_row", points=100)).json()
    assert by_row["x"]["type"] == "row"
    assert by_row["x"]["extent"] == [0, ROWS - 1]
    assert [line["name"] for line in by_row["series"]] == ["speed [m/s]", "gust"]
    assert by_row["series"][0]["x"][by_row["series"][0]["y"].index(500.0)] == SPIKE


async def test_arrow_and_the_refusals(client, team):
    dataset_id = await ingested(client, team, "Run.csv", CSV)
    response = await series(client, team.member, dataset_id, y="speed [m/s]", points=300, format="arrow")
    assert response.status == 200
    assert response.content_type == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(await response.read()).read_all()
    assert table.column_names == ["series", "x", "y"]
    assert pa.types.is_timestamp(table.schema.field("x").type)
    assert table.schema.metadata[b"labhub.source"] == b"summary"
    assert pa.compute.max(table.column("y")).as_py() == 500.0
    accept = await client.get(f"/api/datasets/{dataset_id}/series", params={"y": "gust"},
                              headers={**team.member.headers, "Accept": "application/vnd.apache.arrow.stream"})  # fmt: skip
    assert accept.content_type == "application/vnd.apache.arrow.stream"
    for query, field, words in (
        ({"y": "nope"}, "query.y", "unknown column"),
        ({"x": "nope"}, "query.x", "unknown column"),
        ({"y": "site"}, "query.y", "does not hold numbers"),
        ({"x": "gust", "y": "speed [m/s]"}, "query.x", "not monotonic"),
        ({"x": "site"}, "query.x", "neither numbers nor times"),
        ({"points": "1"}, "query.points", "between 2 and 4000"),
        ({"points": "4001"}, "query.points", "between 2 and 4000"),
        ({"from": "last tuesday"}, "query.from", "ISO 8601"),
    ):
        body = await problem(await series(client, team.member, dataset_id, **query), 422)
        assert body["errors"][0]["path"] == field, (query, body)
        assert words in body["errors"][0]["message"], (query, body)
    await problem(await series(client, team.outsider, dataset_id), 404)
    await problem(await series(client, team.member, "0" * 24), 404)


async def test_a_dataset_stored_without_a_summary_gets_one_on_first_use(client, team):
    dataset_id = await ingested(client, team, "Run.csv", CSV)
    db, objects = client.app[MONGO], client.app[OBJECTS]
    doc = await db["datasets"].find_one({"_id": ObjectId(dataset_id)})
    await db["datasets"].update_one({"_id": doc["_id"]}, {"$unset": {"summary_key": 1, "sorted_columns": 1}})
    await objects.delete([doc["summary_key"]])  # as it was before summaries existed
    response = await series(client, team.viewer, dataset_id, y="speed [m/s]", points=300)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert max(v for v in body["series"][0]["y"] if v is not None) == 500.0
    again = await db["datasets"].find_one({"_id": doc["_id"]})
    assert again["summary_key"] == doc["summary_key"]
    assert again["sorted_columns"] == ["time"]
    job = await db["jobs"].find_one({"kind": "dataset_summary", "params.dataset_id": dataset_id})
    assert job["status"] == "succeeded"
    # a second ask is answered from the summary; no second job
    assert (await series(client, team.member, dataset_id, y="gust")).status == 200
    assert await db["jobs"].count_documents({"kind": "dataset_summary"}) == 1
