"""Lineage through the API: an ingested dataset, plotted, queried into another project, cited by a
record and a document, and given a new version; the graph up and down, filtered by who asks, and as
W3C PROV-JSON read back with the prov package."""

from __future__ import annotations

import hashlib
import json

import aiohttp
import pytest
from prov.model import ProvDocument

from server import create_app
from tests.api.test_ingestion import finished, form
from tests.conftest import file_form, job_settings, problem

CSV = b"time,speed,site\n" + b"".join(b"%d,%d,%s\n" % (i, i % 17, b"ab"[i % 2 : i % 2 + 1]) for i in range(300))
CSV_2 = b"time,speed,site\n" + b"".join(b"%d,%d,%s\n" % (i, i % 13, b"ab"[i % 2 : i % 2 + 1]) for i in range(400))


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    return await aiohttp_client(create_app(job_settings(services, tmp_path)))


async def ok(response, status=200):
    assert response.status == status, await response.text()
    return await response.json()


async def ingest(client, team, name, data, who=None, project_id=None, **fields):
    response = await client.post(f"/api/projects/{project_id or team.project_id}/ingestions",
                                 data=form([(name, data, "text/csv")], **fields), headers=(who or team.member).headers)  # fmt: skip
    job = await finished(client, team, (await ok(response, 202))["jobs"][0]["id"])
    assert job["status"] == "succeeded", job
    return job


async def lineage(client, who, **params):
    return await ok(await client.get("/api/lineage", params={k: str(v) for k, v in params.items()}, headers=who.headers))


def by_kind(graph):
    kinds = {}
    for node in graph["nodes"]:
        kinds.setdefault(node["kind"], []).append(node)
    return kinds


def relations(graph):
    return {(e["source"].split(":")[0], e["relation"], e["target"].split(":")[0]) for e in graph["edges"]}


async def test_the_graph_of_an_ingested_plotted_queried_and_cited_dataset(client, team, make_account):
    job = await ingest(client, team, "wind.csv", CSV, manifest=[{"visualize": True}])
    dataset_id = job["result"]["dataset_id"]
    # another project, which only the member shares: a saved query there reads the wind tunnel's dataset
    other = await ok(await client.post("/api/projects", json={"name": "Analysis"}, headers=team.member.headers), 201)
    stranger = await make_account("student", name="Sam Stranger")
    await ok(await client.post(f"/api/projects/{other['id']}/members", json={"user_id": stranger.id, "role": "viewer"},
                               headers=team.member.headers), 201)  # fmt: skip
    saved = await client.post(f"/api/projects/{other['id']}/datasets", headers=team.member.headers,
                              json={"from_sql": "SELECT site, max(speed) AS top FROM wind_tunnel.wind GROUP BY site",
                                    "name": "Tops"})  # fmt: skip
    derived_job = await finished(client, team, (await ok(saved, 202))["id"])
    assert derived_job["status"] == "succeeded", derived_job
    derived = derived_job["result"]["dataset_id"]
    record = await ok(await client.post(f"/api/projects/{team.project_id}/records", headers=team.member.headers,
                                        json={"kind": "note", "title": "Run 7 looks windy", "dataset_ids": [dataset_id]}), 201)  # fmt: skip
    assert record["dataset_ids"] == [dataset_id]
    document = await ok(await client.post(f"/api/projects/{team.project_id}/documents?dataset_ids={dataset_id}",
                                          data=file_form(b"%PDF-1.4 report", "report.pdf", "application/pdf"),
                                          headers=team.member.headers), 201)  # fmt: skip
    assert document["dataset_ids"] == [dataset_id]
    # the same as a form field before the file, as a browser's FormData sends it
    form_data = aiohttp.FormData()
    form_data.add_field("dataset_ids", json.dumps([dataset_id]))
    form_data.add_field("file", b"notes", filename="notes.txt", content_type="text/plain")
    noted = await ok(await client.post(f"/api/projects/{team.project_id}/documents", data=form_data,
                                       headers=team.member.headers), 201)  # fmt: skip
    assert noted["dataset_ids"] == [dataset_id]
    wrong = aiohttp.FormData()
    wrong.add_field("dataset_ids", "not-an-id")
    wrong.add_field("file", b"x", filename="x.txt", content_type="text/plain")
    refused = await client.post(f"/api/projects/{team.project_id}/documents", data=wrong, headers=team.member.headers)
    assert (await problem(refused, 422))["errors"][0]["path"] == "$.dataset_ids[0]"

    down = await lineage(client, team.member, kind="dataset", id=dataset_id, direction="down", depth=2)
    kinds = by_kind(down)
    assert down["root"] == f"dataset:{dataset_id}"
    assert [n["label"] for n in kinds["record"]] == ["Run 7 looks windy"]
    assert sorted(n["label"] for n in kinds["document"]) == ["notes.txt", "report.pdf"]
    assert len(kinds["plot"]) == 1  # the one ingestion's visualize made
    assert [n["label"] for n in kinds["query"]] == ["Query saved as Tops"]
    assert {n["id"] for n in kinds["dataset"]} == {dataset_id, derived}
    assert {("plot", "wasDerivedFrom", "dataset"), ("query", "used", "dataset"), ("dataset", "wasGeneratedBy", "query"),
            ("record", "wasInfluencedBy", "dataset"), ("document", "wasInfluencedBy", "dataset")} <= relations(down)  # fmt: skip

    up = await lineage(client, team.member, kind="dataset", id=derived, direction="up", depth=5)
    kinds = by_kind(up)
    [query] = kinds["query"]
    assert "max(speed)" in query["details"]["sql"]
    assert query["details"]["versions"]["duckdb"]
    [ingestion] = kinds["ingestion"]
    assert ingestion["details"]["versions"]["pyarrow"]
    assert ingestion["created_by"] == {"id": team.member.id, "name": "Mia Member"}
    [raw] = kinds["file"]
    assert raw["label"] == "wind.csv"
    assert raw["details"]["sha256"] == hashlib.sha256(CSV).hexdigest()
    assert {("dataset", "wasGeneratedBy", "query"), ("query", "used", "dataset"),
            ("dataset", "wasGeneratedBy", "ingestion"), ("ingestion", "used", "file")} == relations(up)  # fmt: skip

    # the stranger reads Analysis only: the wind tunnel's dataset is a hidden node, and the walk stops there
    seen = await lineage(client, stranger, kind="dataset", id=derived, direction="up", depth=5)
    hidden = [n for n in seen["nodes"] if n["hidden"]]
    assert [(n["kind"], n["id"], n["label"], n["project_id"]) for n in hidden] == [("dataset", None, "", None)]
    assert "ingestion" not in by_kind(seen)
    assert "wind.csv" not in json.dumps(seen)  # (the query names its table: the stranger reads that SQL anyway)
    assert ("query", "used", "hidden") in relations(seen)
    # a raw file by its bytes' sha256: its ingestion and what came of it
    by_bytes = await lineage(client, team.member, kind="file", id=hashlib.sha256(CSV).hexdigest(), direction="down", depth=2)
    assert by_bytes["root"] == f"file:{job['id']}"
    assert {("ingestion", "used", "file"), ("dataset", "wasGeneratedBy", "ingestion")} <= relations(by_bytes)
    sha_params = {"kind": "file", "id": hashlib.sha256(CSV).hexdigest()}
    await problem(await client.get("/api/lineage", params=sha_params, headers=stranger.headers), 404)
    await problem(await client.get("/api/lineage", params={"kind": "dataset", "id": dataset_id}, headers=stranger.headers), 404)
    await problem(await client.get("/api/lineage", params={"kind": "dataset", "id": dataset_id}, headers=team.outsider.headers), 404)
    for params, path in (({"kind": "table", "id": dataset_id}, "query.kind"), ({"kind": "dataset", "id": "x"}, "query.id"),
                         ({"kind": "dataset", "id": dataset_id, "depth": "0"}, "query.depth")):  # fmt: skip
        body = await problem(await client.get("/api/lineage", params=params, headers=team.member.headers), 422)
        assert body["errors"][0]["path"] == path

    # a new version: a revision of the first, and what is cited hangs from the latest
    await ingest(client, team, "wind-2.csv", CSV_2, version_of=dataset_id)
    latest = await lineage(client, team.member, kind="dataset", id=dataset_id, direction="both", depth=1)
    assert ("dataset", "wasRevisionOf", "dataset") in relations(latest)
    assert {n["version"] for n in by_kind(latest)["dataset"]} == {1, 2}
    assert "record" in by_kind(latest)
    first = await lineage(client, team.member, kind="dataset", id=dataset_id, version=1, direction="down", depth=1)
    assert "record" not in by_kind(first)

    # W3C PROV-JSON, read back by the prov package
    response = await client.get("/api/lineage", params={"kind": "dataset", "id": derived, "direction": "up",
                                                        "depth": "5", "format": "prov-json"}, headers=team.member.headers)  # fmt: skip
    assert response.status == 200
    assert response.content_type == "application/prov+json"
    text = await response.text()
    document = ProvDocument.deserialize(content=text, format="json")
    records = {type(r).__name__ for r in document.get_records()}
    assert {"ProvEntity", "ProvActivity", "ProvAgent", "ProvUsage", "ProvGeneration", "ProvAssociation"} <= records
    body = json.loads(text)
    assert len(body["activity"]) == 2  # the ingestion and the saved query
    assert any(a.get("prov:label") == "Mia Member" for a in body["agent"].values())
    assert ProvDocument.deserialize(content=document.serialize(format="json"), format="json") == document
