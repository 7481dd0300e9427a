"""FAIR packages through the API, checked by outside validators: RO-Crates by roc-validator (offline,
its cache fed the context the rocrate package bundles) and read back with rocrate; BagIt bags by
bagit; DataCite JSON against DataCite's schema 4.5; public pages' schema.org JSON-LD by pyld."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile

import bagit
import pytest
from datacite import schema45
from pyld import jsonld
from rocrate.rocrate import ROCrate

from server import create_app
from tests.api.test_ingestion import finished, form
from tests.conftest import file_form, job_settings, problem
from tests.validators import (
    failures,
    schema_org_loader,
    seed_validator_cache,
    unzip,
    validate_crate,
    validate_crate_text,
)

RUN = b"time,speed,temp,site\ns,m/s,degC,-\n" + b"".join(
    b"%d,%.2f,%.1f,%s\n" % (i, (i % 17) * 0.5, 20 + (i % 5) * 0.1, b"ab"[i % 2 : i % 2 + 1]) for i in range(400)
)
SCHEMA_ORG = "http://schema.org/"
# what RO-Crate 1.3 recommends that LabHub cannot know: people's ORCIDs, the lab's ROR id, a contact
UNKNOWABLE = {"ro-crate-1.3_89.0", "ro-crate-1.3_90.1", "ro-crate-1.3_91.0", "ro-crate-1.3_93.0"}


def assert_valid(report, recommended=None):
    assert report["passed"] is True, failures(report)
    assert report["exit_code"] == 0
    assert report["statistics"]["total_failed_checks"] == 0
    if recommended is not None:
        left = {i["check"]["identifier"] for i in recommended["issues"]}
        assert left <= UNKNOWABLE, failures(recommended)


@pytest.fixture(scope="module")
def validator_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("roc-validator") / "http_cache"
    seed_validator_cache(cache)
    return cache


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    return await aiohttp_client(create_app(job_settings(services, tmp_path, {"app": {"publisher": "Wind Lab, Example University"}})))


async def ingested(client, team, name="tunnel-run.csv", data=RUN, **fields):
    response = await client.post(f"/api/projects/{team.project_id}/ingestions",
                                 data=form([(name, data, "text/csv")], **fields), headers=team.member.headers)  # fmt: skip
    assert response.status == 202, await response.text()
    job = await finished(client, team, (await response.json())["jobs"][0]["id"])
    assert job["status"] == "succeeded", job
    return job["result"]["dataset_id"]


async def body_of(response, status=200):
    assert response.status == status, await response.text()
    return await response.read()


def crate_entities(crate_dir):
    crate = ROCrate(str(crate_dir))
    return crate, {e.id: e for e in crate.get_entities()}


async def test_a_dataset_exports_as_a_valid_ro_crate_with_its_lineage(client, team, tmp_path, validator_cache):
    dataset_id = await ingested(client, team, dataset_type="wind", tag="run 7")
    body = await body_of(await client.get(f"/api/datasets/{dataset_id}/export",
                                          params={"format": "ro-crate", "license": "CC-BY-4.0"}, headers=team.viewer.headers))  # fmt: skip
    crate_dir = unzip(body, tmp_path / "crate")
    report = validate_crate(crate_dir, validator_cache, "required")
    assert_valid(report, validate_crate(crate_dir, validator_cache))
    assert "ro-crate-1.3" in report["statistics"]["profiles"]
    zipped = tmp_path / "crate.zip"
    zipped.write_bytes(body)
    code, said = validate_crate_text(zipped, validator_cache)  # the zip as it was downloaded
    assert code == 0, said[-3000:]
    assert "RO-Crate is a valid ro-crate-1.3" in said

    crate, entities = crate_entities(crate_dir)
    root = crate.root_dataset
    assert root["name"] == "tunnel-run.csv"
    assert root["license"].id == "https://spdx.org/licenses/CC-BY-4.0"
    assert root["version"] == "1"
    assert root["keywords"] == "wind, run 7"
    assert root["author"]["name"] == "Mia Member"
    assert root["author"]["affiliation"]["name"] == "Wind Lab, Example University"
    assert root["publisher"]["name"] == "Wind Lab, Example University"
    variables = {v["name"]: v for v in root["variableMeasured"]}
    assert set(variables) == {"time", "speed", "temp", "site"}
    assert variables["speed"]["unitText"] == "m/s"
    assert variables["speed"]["maxValue"] == 8.0
    assert "mean" in variables["temp"]["description"]
    parts = {p.id: p for p in root["hasPart"]}
    assert set(parts) == {"tunnel-run.parquet", "tunnel-run.csv", "raw/tunnel-run.csv"}
    assert (crate_dir / "raw" / "tunnel-run.csv").read_bytes() == RUN
    rows = list(csv.reader(io.StringIO((crate_dir / "tunnel-run.csv").read_text())))
    assert rows[0] == ["time", "speed", "temp", "site"]
    assert len(rows) == 401
    [action] = [e for e in entities.values() if e.type == "CreateAction"]
    assert action["object"].id == "raw/tunnel-run.csv"
    assert {r.id for r in action["result"]} == {"tunnel-run.parquet", "tunnel-run.csv"}
    software = {s["name"]: s["version"] for s in action["instrument"]}
    assert software["LabHub"]
    assert software["pyarrow"]
    assert action["agent"]["name"] == "Mia Member"
    # what was packed shows in the lineage
    graph = await (await client.get("/api/lineage", params={"kind": "dataset", "id": dataset_id, "direction": "down"},
                                    headers=team.member.headers)).json()  # fmt: skip
    assert [n["details"]["format"] for n in graph["nodes"] if n["kind"] == "export"] == ["ro-crate"]


async def test_bagit_datacite_and_a_project_package(client, team, tmp_path, validator_cache):
    dataset_id = await ingested(client, team)
    bag_body = await body_of(await client.get(f"/api/datasets/{dataset_id}/export", params={"format": "bagit"},
                                              headers=team.member.headers))  # fmt: skip
    unzip(bag_body, tmp_path / "bag")
    [bag_dir] = list((tmp_path / "bag").iterdir())
    bag = bagit.Bag(str(bag_dir))
    bag.validate()  # raises BagValidationError with what is wrong
    assert bag.is_valid()
    assert bag.info["Source-Organization"] == "Wind Lab, Example University"
    assert (bag_dir / "data" / "ro-crate-metadata.json").exists()
    assert_valid(validate_crate(bag_dir / "data", validator_cache, "required"))

    datacite = await (await client.get(f"/api/datasets/{dataset_id}/export", params={"format": "datacite",
                                                                                   "license": "CC0-1.0"},
                                       headers=team.member.headers)).json()  # fmt: skip
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in schema45.validator.iter_errors(datacite)]
    assert errors == []
    assert schema45.validate(datacite)
    assert datacite["types"]["resourceTypeGeneral"] == "Dataset"
    assert datacite["creators"] == [{"name": "Member, Mia", "nameType": "Personal", "givenName": "Mia", "familyName": "Member"}]
    assert datacite["rightsList"][0]["rightsUri"] == "https://spdx.org/licenses/CC0-1.0"
    assert datacite["publisher"] == {"name": "Wind Lab, Example University"}

    # a project package: the dataset, a report citing it and a record about it
    document = await (await client.post(f"/api/projects/{team.project_id}/documents?dataset_ids={dataset_id}",
                                        data=file_form(b"%PDF-1.4 findings", "Findings.pdf", "application/pdf"),
                                        headers=team.member.headers)).json()  # fmt: skip
    record = await (await client.post(f"/api/projects/{team.project_id}/records", headers=team.member.headers,
                                      json={"kind": "run", "title": "Run 7", "data": {"fan": 3},
                                            "dataset_ids": [dataset_id]})).json()  # fmt: skip
    package = await body_of(await client.post(f"/api/projects/{team.project_id}/exports", headers=team.viewer.headers,
                                              json={"dataset_ids": [dataset_id], "document_ids": [document["id"]],
                                                    "record_ids": [record["id"]], "license": "CC-BY-4.0",
                                                    "title": "Wind tunnel, spring runs"}))  # fmt: skip
    crate_dir = unzip(package, tmp_path / "project")
    assert_valid(validate_crate(crate_dir, validator_cache, "required"), validate_crate(crate_dir, validator_cache))
    crate, entities = crate_entities(crate_dir)
    assert crate.root_dataset["name"] == "Wind tunnel, spring runs"
    assert {p.id for p in crate.root_dataset["hasPart"]} >= {
        "datasets/tunnel-run/", "documents/Findings.pdf", f"records/{record['id']}.json"}
    assert entities["documents/Findings.pdf"]["mentions"].id == "datasets/tunnel-run/"
    assert (crate_dir / "documents" / "Findings.pdf").read_bytes() == b"%PDF-1.4 findings"
    assert entities["datasets/tunnel-run/"]["variableMeasured"]
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert "datasets/tunnel-run/raw/tunnel-run.csv" in archive.namelist()
    refused = await client.post(f"/api/projects/{team.project_id}/exports", headers=team.member.headers, json={})
    await problem(refused, 422)
    await problem(await client.get(f"/api/datasets/{dataset_id}/export", params={"license": "not a licence!"},
                                   headers=team.member.headers), 422)  # fmt: skip


async def test_a_published_version_has_a_public_page_search_engines_read(client, team):
    dataset_id = await ingested(client, team)
    await ingested(client, team, "tunnel-run-2.csv", RUN.replace(b"\n3,", b"\n3000,"), version_of=dataset_id)
    request = {"version": 1, "license": "CC-BY-4.0", "description": "Wind speeds & temperatures of run 7 <fan 3>",
               "title": "Tunnel run 7"}  # fmt: skip
    await problem(await client.post(f"/api/datasets/{dataset_id}/publication", json=request, headers=team.member.headers), 403)
    bad = await client.post(f"/api/datasets/{dataset_id}/publication", json={**request, "slug": "No Spaces"}, headers=team.lead.headers)
    assert (await problem(bad, 422))["errors"][0]["path"] == "$.slug"
    made = await client.post(f"/api/datasets/{dataset_id}/publication", json=request, headers=team.lead.headers)
    assert made.status == 201, await made.text()
    published = await made.json()
    assert published["slug"] == "tunnel-run-v1"
    assert published["url"].endswith("/d/tunnel-run-v1")
    again = await client.post(f"/api/datasets/{dataset_id}/publication", json=request, headers=team.lead.headers)
    assert (await problem(again, 409))["code"] == "published"
    described = await (await client.get(f"/api/datasets/{dataset_id}", params={"version": "1"}, headers=team.viewer.headers)).json()
    assert described["published"]["slug"] == "tunnel-run-v1"

    page = await client.get("/d/tunnel-run-v1")  # no session
    assert page.status == 200
    assert page.content_type == "text/html"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    text = await page.text()
    assert "Wind speeds &amp; temperatures of run 7 &lt;fan 3&gt;" in text
    [ld_text] = re.findall(r'<script type="application/ld\+json">(.*?)</script>', text, re.S)
    expanded = jsonld.expand(json.loads(ld_text), {"documentLoader": schema_org_loader()})
    [dataset] = expanded
    assert dataset["@type"] == [f"{SCHEMA_ORG}Dataset"]
    assert dataset[f"{SCHEMA_ORG}name"][0]["@value"] == "Tunnel run 7"
    assert dataset[f"{SCHEMA_ORG}description"][0]["@value"] == request["description"]
    [licence] = dataset[f"{SCHEMA_ORG}license"]
    assert licence.get("@id", licence.get("@value")) == "https://spdx.org/licenses/CC-BY-4.0"
    assert dataset[f"{SCHEMA_ORG}version"][0]["@value"] == "1"
    creators = dataset[f"{SCHEMA_ORG}creator"]
    assert creators[0][f"{SCHEMA_ORG}name"][0]["@value"] == "Mia Member"
    variables = {v[f"{SCHEMA_ORG}name"][0]["@value"]: v for v in dataset[f"{SCHEMA_ORG}variableMeasured"]}
    assert variables["speed"][f"{SCHEMA_ORG}unitText"][0]["@value"] == "m/s"
    downloads = dataset[f"{SCHEMA_ORG}distribution"]
    assert {d[f"{SCHEMA_ORG}encodingFormat"][0]["@value"] for d in downloads} >= {"text/csv", "application/vnd.apache.parquet"}
    csv_url = next(d[f"{SCHEMA_ORG}contentUrl"][0] for d in downloads if d[f"{SCHEMA_ORG}encodingFormat"][0]["@value"] == "text/csv")
    assert (csv_url.get("@id") or csv_url.get("@value")).endswith("/d/tunnel-run-v1/download?format=csv")

    table = list(csv.reader(io.StringIO(await (await client.get("/d/tunnel-run-v1/download", params={"format": "csv"})).text())))
    assert len(table) == 401  # version 1, not the newer one
    assert await (await client.get("/d/tunnel-run-v1/raw")).read() == RUN
    parquet = await client.get("/d/tunnel-run-v1/download", params={"format": "parquet"})
    assert parquet.status == 200
    assert (await parquet.read())[:4] == b"PAR1"

    # a published version is never removed: unpublish first
    for response in (await client.delete(f"/api/datasets/{dataset_id}", headers=team.lead.headers),):
        assert (await problem(response, 409))["code"] == "published"
    ingestions = await (await client.get(f"/api/projects/{team.project_id}/ingestions", headers=team.lead.headers)).json()
    first = ingestions["items"][-1]["id"]
    await problem(await client.delete(f"/api/ingestions/{first}", headers=team.lead.headers), 409)
    assert (await client.get("/d/tunnel-run-v1")).status == 200
    gone = await client.delete(f"/api/datasets/{dataset_id}/publication", headers=team.lead.headers)
    assert gone.status == 204
    for path in ("/d/tunnel-run-v1", "/d/tunnel-run-v1/raw", "/d/tunnel-run-v1/download"):
        assert (await client.get(path)).status == 404
    assert (await client.delete(f"/api/datasets/{dataset_id}", headers=team.lead.headers)).status == 204
