"""Records: validation, filters without operator injection, sorting, stable cursors, safe exports."""

from __future__ import annotations

import asyncio
import csv
import io
import json

import pytest

from domain.records.models import RecordInput
from handlers.keys import ACCOUNTS, RECORDS
from tests.conftest import problem


async def create(client, team, who=None, **fields):
    body = {"kind": "measurement", "title": "Run", **fields}
    response = await client.post(
        f"/api/projects/{team.project_id}/records", json=body, headers=(who or team.member).headers
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def listing(client, team, params, who=None):
    response = await client.get(
        f"/api/projects/{team.project_id}/records", params=params, headers=(who or team.viewer).headers
    )
    assert response.status == 200, await response.text()
    return await response.json()


async def test_create_get_patch_delete(client, team):
    record = await create(
        client, team, title="Blade 3", data={"rpm": 1200, "ok": True}, tags=["rotor", "rotor", "b3"]
    )
    assert record["tags"] == ["rotor", "b3"]
    assert record["created_by"] == team.member.id
    assert record["dataset_id"] is None
    url = f"/api/records/{record['id']}"
    assert (await (await client.get(url, headers=team.viewer.headers)).json())["data"] == {
        "rpm": 1200,
        "ok": True,
    }
    patched = await client.patch(url, json={"data": {"rpm": 1300}, "tags": []}, headers=team.member.headers)
    assert (await patched.json())["data"] == {"rpm": 1300}
    await problem(await client.patch(url, json={"title": "x"}, headers=team.viewer.headers), 403)
    other = await create(client, team, who=team.lead)
    await problem(
        await client.patch(
            f"/api/records/{other['id']}", json={"title": "mine"}, headers=team.member.headers
        ),
        403,
    )
    assert (await client.patch(url, json={"title": "lead edit"}, headers=team.lead.headers)).status == 200
    assert (await client.delete(url, headers=team.member.headers)).status == 204
    await problem(await client.get(url, headers=team.member.headers), 404)


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"kind": "", "title": "t"}, "$.kind"),
        ({"kind": "k", "title": "x" * 301}, "$.title"),
        ({"kind": "k", "title": "t", "data": {"$where": 1}}, "$.data.$where"),
        ({"kind": "k", "title": "t", "data": {"a.b": 1}}, "$.data.a.b"),
        ({"kind": "k", "title": "t", "data": {"n": {"$gt": 1}}}, "$.data.n.$gt"),
        ({"kind": "k", "title": "t", "tags": [""]}, "$.tags[0]"),
        ({"kind": "k", "title": "t", "dataset_id": "nope"}, "$.dataset_id"),
        ({"kind": "k", "title": "t", "data": [1, 2]}, "$.data"),
        ({"kind": "k"}, "$.title"),
    ],
)
async def test_validation_names_the_field(client, team, body, path):
    response = await client.post(
        f"/api/projects/{team.project_id}/records", json=body, headers=team.member.headers
    )
    result = await problem(response, 422)
    assert result["errors"][0]["path"] == path


async def test_filters(client, team):
    a = await create(
        client,
        team,
        kind="run",
        title="Baseline 100%",
        data={"speed": 10, "site": "north", "cal": {"ok": True}},
        tags=["wind", "2026"],
    )
    b = await create(
        client,
        team,
        kind="run",
        title="Gusty afternoon",
        data={"speed": 25.5, "site": "south"},
        tags=["wind"],
        who=team.lead,
    )
    c = await create(client, team, kind="note", title="Calibration", data={"speed": "fast"}, tags=["2026"])

    def ids(page):
        return {r["id"] for r in page["items"]}

    assert ids(await listing(client, team, {"kind": "run"})) == {a["id"], b["id"]}
    assert ids(await listing(client, team, [("kind", "run"), ("kind", "note")])) == {
        a["id"],
        b["id"],
        c["id"],
    }
    assert ids(await listing(client, team, [("tag", "wind"), ("tag", "2026")])) == {a["id"]}
    assert ids(await listing(client, team, {"q": "GUST"})) == {b["id"]}
    assert ids(await listing(client, team, {"q": "100%"})) == {a["id"]}
    assert ids(await listing(client, team, {"q": ".*"})) == set()
    assert ids(await listing(client, team, {"data.site": "north"})) == {a["id"]}
    assert ids(await listing(client, team, {"data.speed": "10"})) == {a["id"]}
    assert ids(await listing(client, team, {"data.speed": "fast"})) == {c["id"]}
    assert ids(await listing(client, team, {"data.cal.ok": "true"})) == {a["id"]}
    assert ids(await listing(client, team, {"data.speed__gte": "11"})) == {b["id"]}
    assert ids(await listing(client, team, {"data.speed__gte": "5", "data.speed__lte": "20"})) == {a["id"]}
    assert ids(await listing(client, team, {"created_by": team.lead.id})) == {b["id"]}
    assert ids(
        await listing(client, team, {"created_at__gte": "2000-01-01", "created_at__lte": "2999-12-31"})
    ) == {a["id"], b["id"], c["id"]}
    assert ids(await listing(client, team, {"created_at__lte": "2001-01-01"})) == set()
    # inclusive bounds include a record created at exactly that moment
    exactly = {"created_at__gte": b["created_at"], "created_at__lte": b["created_at"]}
    assert ids(await listing(client, team, exactly)) == {b["id"]}


@pytest.mark.parametrize(
    "params",
    [
        {"$where": "1"},
        {"data.$where": "1"},
        {"data.a.$gt": "1"},
        {"data.": "1"},
        {"data..x": "1"},
        {"title__regex": ".*"},
        {"kind__gte": "a"},
        {"unknown": "1"},
        {"sort": "$natural"},
        {"sort": "password_hash"},
        {"sort": "data.$x"},
        {"created_by": "not-an-id"},
        {"created_at__gte": "yesterday"},
        {"format": "xml"},
        {"limit": "501"},
        {"limit": "abc"},
    ],
)
async def test_unsafe_or_unknown_filters_are_422(client, team, params):
    await create(client, team)
    response = await client.get(
        f"/api/projects/{team.project_id}/records", params=params, headers=team.viewer.headers
    )
    await problem(response, 422)


async def test_a_cursor_not_from_this_list_is_400(client, team):
    await create(client, team)
    response = await client.get(
        f"/api/projects/{team.project_id}/records", params={"cursor": "garbage"}, headers=team.viewer.headers
    )
    assert (await problem(response, 400))["code"] == "invalid_cursor"


async def test_sorting(client, team):
    for title, speed in [("b", 3), ("A", 1), ("c", 2)]:
        await create(client, team, title=title, data={"speed": speed})
    await create(client, team, title="d", data={})
    assert [r["title"] for r in (await listing(client, team, {"sort": "title"}))["items"]] == [
        "A",
        "b",
        "c",
        "d",
    ]
    assert [r["title"] for r in (await listing(client, team, {"sort": "-title"}))["items"]] == [
        "d",
        "c",
        "b",
        "A",
    ]
    by_speed = [r["title"] for r in (await listing(client, team, {"sort": "data.speed"}))["items"]]
    assert by_speed == ["d", "A", "c", "b"]  # a missing value sorts first, as in MongoDB
    assert [r["title"] for r in (await listing(client, team, {}))["items"]] == ["d", "c", "A", "b"]


@pytest.mark.parametrize("sort", ["-created_at", "title", "data.n", "-data.n"])
async def test_cursor_is_stable_under_concurrent_inserts(client, team, sort):
    originals = {(await create(client, team, title=f"r{i:02d}", data={"n": i % 4}))["id"] for i in range(23)}
    seen: list[str] = []
    cursor = None
    inserted = 0

    async def insert_more():
        nonlocal inserted
        for i in range(3):
            await create(client, team, title=f"late{inserted}-{i}", data={"n": 2})
            inserted += 1

    while True:
        params = {"limit": "5", "sort": sort, **({"cursor": cursor} if cursor else {})}
        page, _ = await asyncio.gather(listing(client, team, params), insert_more())
        seen += [r["id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)), "a record was returned twice"
    assert originals <= set(seen), "a record that existed before paging started was skipped"


async def test_csv_export_streams_everything_and_neutralises_formulas(client, team):
    dangerous = ['=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1)", "\tTab", "\rCR"]
    for i, text in enumerate(dangerous):
        await create(
            client,
            team,
            kind=text,
            title=text,
            data={"cell": text, "value": -i, "nested": {"a": 1}},
            tags=[text],
        )
    # more rows than one write batch, created through the service to keep the test quick
    member = await client.app[ACCOUNTS].get_active(team.member.id)
    for i in range(600):
        await client.app[RECORDS].create(
            member, team.project_id, RecordInput(kind="bulk", title=f"bulk {i}", data={"value": i})
        )
    response = await client.get(f"/api/projects/{team.project_id}/records", params={"format": "csv", "sort": "title"},
                                headers=team.viewer.headers)  # fmt: skip
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert response.headers["Content-Disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO((await response.read()).decode())))
    assert len(rows) == len(dangerous) + 600
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(("=", "+", "@", "\t", "\r")), (column, cell)
            if cell.startswith("-"):
                assert column == "data.value", (column, cell)
                assert cell.lstrip("-").isdigit(), (column, cell)
    formula_rows = [r for r in rows if r["data.cell"].startswith("'")]
    # titles are whitespace-normalised on input, so only the formula ones keep their first character
    assert {r["title"] for r in formula_rows} == {"'" + t if t.strip() == t else t.strip() for t in dangerous}
    assert {r["data.cell"] for r in formula_rows} == {"'" + t for t in dangerous}
    assert "data.nested" in rows[0]


async def test_jsonl_export_follows_the_filters(client, team):
    for i in range(7):
        await create(client, team, kind="even" if i % 2 == 0 else "odd", title=f"t{i}", data={"i": i})
    response = await client.get(f"/api/projects/{team.project_id}/records", params={"format": "jsonl", "kind": "even", "sort": "data.i"},
                                headers=team.viewer.headers)  # fmt: skip
    assert response.status == 200
    lines = [json.loads(line) for line in (await response.read()).decode().splitlines()]
    assert [line["data"]["i"] for line in lines] == [0, 2, 4, 6]
