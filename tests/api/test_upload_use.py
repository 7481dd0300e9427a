"""Finished resumable uploads used in place of a multipart body: ingestions from `upload_ids`,
documents and new versions from `upload_id`. The bytes move inside the object store; an upload is
used once; a refused use leaves it as it was, to be used again."""

from __future__ import annotations

import asyncio
import hashlib
import io
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest
from tusclient import client as tus

from handlers.keys import OBJECTS
from server import create_app
from tests.conftest import job_settings, problem, wait_until

PART = 5 * 1024 * 1024


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    sections = {"uploads": {"part_size_bytes": PART, "max_bytes": 20 * 1024 * 1024},
                "ingest": {"max_file_bytes": 16 * 1024 * 1024}}  # fmt: skip
    return await aiohttp_client(create_app(job_settings(services, tmp_path, sections)))


def big_csv(rows: int) -> bytes:
    lines = ["time,pressure [Pa],probe"] + [
        f"{i * 0.001:.3f},{101325 + i % 977},p{i % 7}" for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def workbook() -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Run 1"
    sheet.append(["alpha [deg]", "CL", "CD"])
    for i in range(50):
        sheet.append([i * 0.5, 0.1 * i, 0.01 + 0.001 * i])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def tus_upload(
    client, account, tmp_path, name: str, data: bytes, content_type: str, *, finish=True
) -> str:
    path = tmp_path / name
    path.write_bytes(data)

    def run() -> str:
        uploader = tus.TusClient(
            str(client.make_url("/api/uploads")), headers={"Authorization": f"Bearer {account.token}"}
        ).uploader(
            str(path), chunk_size=2 * 1024 * 1024, metadata={"filename": name, "content_type": content_type}
        )
        uploader.upload(stop_at=None if finish else len(data) // 2)
        return uploader.url

    url = await asyncio.to_thread(run)
    return url.rstrip("/").rsplit("/", 1)[1]


async def finished(client, account, job_id):
    async def check():
        body = await (await client.get(f"/api/jobs/{job_id}", headers=account.headers)).json()
        return body if body["status"] in {"succeeded", "failed", "cancelled"} else None

    return await wait_until(check, timeout_s=120)


async def test_ingestion_from_uploads_makes_the_same_datasets_and_uses_the_uploads_up(client, team, tmp_path):
    data = big_csv(650_000)  # several parts: streamed into raw/ in order
    assert len(data) > 2 * PART
    book = workbook()
    csv_id = await tus_upload(client, team.member, tmp_path, "tunnel run 7.csv", data, "text/csv")
    xlsx_id = await tus_upload(client, team.member, tmp_path, "polar.xlsx", book, "")
    response = await client.post(
        f"/api/projects/{team.project_id}/ingestions", headers=team.member.headers,
        json={"upload_ids": [csv_id, xlsx_id], "dataset_type": "wind", "tag": "run7",
              "manifest": [{"ingest": True}, {"sheets": ["Run 1"]}]},
    )  # fmt: skip
    assert response.status == 202, await response.text()
    batch = await response.json()
    assert [(j["file"], j["sheet"]) for j in batch["jobs"]] == [
        ("tunnel run 7.csv", None),
        ("polar.xlsx", "Run 1"),
    ]
    for entry in batch["jobs"]:
        job = await finished(client, team.member, entry["id"])
        assert job["status"] == "succeeded", job
    csv_job, book_job = [await finished(client, team.member, j["id"]) for j in batch["jobs"]]
    dataset = await (
        await client.get(f"/api/datasets/{csv_job['result']['dataset_id']}", headers=team.viewer.headers)
    ).json()
    assert dataset["row_count"] == 650_000
    assert (dataset["dataset_type"], dataset["tag"]) == ("wind", "run7")
    assert [c["name"] for c in dataset["schema"]] == ["time", "pressure [Pa]", "probe"]
    assert dataset["source"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert dataset["source"]["size"] == len(data)
    raw = await client.app[OBJECTS].read_bytes(f"raw/{hashlib.sha256(data).hexdigest()}")
    assert raw == data
    sheet = await (
        await client.get(f"/api/datasets/{book_job['result']['dataset_id']}", headers=team.viewer.headers)
    ).json()
    assert sheet["row_count"] == 50
    assert sheet["source"]["content_type"].endswith("spreadsheetml.sheet")
    for upload_id in (csv_id, xlsx_id):  # used up: the record and its parts are gone
        await problem(await client.get(f"/api/uploads/{upload_id}", headers=team.member.headers), 404)
        assert await client.app[OBJECTS].keys(f"uploads/{upload_id}/") == []
    # asked again (the answer was lost on the way): the same batch, no second ingestion
    again = await client.post(
        f"/api/projects/{team.project_id}/ingestions", headers=team.member.headers,
        json={"upload_ids": [csv_id, xlsx_id], "dataset_type": "wind"},
    )  # fmt: skip
    assert again.status == 202
    assert await again.json() == {**batch, "jobs": [{**j, "status": "succeeded"} for j in batch["jobs"]]}
    listed = await (
        await client.get(f"/api/projects/{team.project_id}/ingestions", headers=team.member.headers)
    ).json()
    assert sorted(i["upload_id"] for i in listed["items"]) == sorted([csv_id, xlsx_id])
    # ...but only as a whole, by its owner, in its project
    for who, body in (
        (team.member, {"upload_ids": [csv_id]}),
        (team.lead, {"upload_ids": [csv_id, xlsx_id]}),
    ):
        await problem(
            await client.post(f"/api/projects/{team.project_id}/ingestions", headers=who.headers, json=body),
            404,
        )


async def test_documents_and_versions_from_uploads(client, team, tmp_path):
    small = b"%PDF-1.4\n" + bytes(range(256)) * 100  # one part: copied inside the store
    doc_id = await tus_upload(client, team.member, tmp_path, "protocol.pdf", small, "application/pdf")
    created = await client.post(
        f"/api/projects/{team.project_id}/documents", headers=team.member.headers, json={"upload_id": doc_id}
    )
    assert created.status == 201, await created.text()
    document = await created.json()
    assert document["name"] == "protocol.pdf"
    assert document["content_type"] == "application/pdf"
    assert document["size"] == len(small)
    assert document["sha256"] == hashlib.sha256(small).hexdigest()
    content = await client.get(f"/api/documents/{document['id']}/content", headers=team.viewer.headers)
    assert await content.read() == small

    large = bytes(range(251)) * (11 * 1024 * 1024 // 251)  # three parts: streamed through in order
    version_id = await tus_upload(client, team.member, tmp_path, "protocol-v2.pdf", large, "application/pdf")
    added = await client.post(
        f"/api/documents/{document['id']}/versions", headers=team.member.headers,
        json={"upload_id": version_id, "name": "protocol (signed).pdf"},
    )  # fmt: skip
    assert added.status == 201, await added.text()
    second = await added.json()
    assert (second["version"], second["name"], second["size"]) == (2, "protocol (signed).pdf", len(large))
    content = await client.get(f"/api/documents/{document['id']}/content", headers=team.viewer.headers)
    assert await content.read() == large
    await problem(await client.get(f"/api/uploads/{version_id}", headers=team.member.headers), 404)


async def test_a_refused_use_leaves_the_upload_to_be_used_again(client, team, tmp_path):
    data = big_csv(2000)
    upload_id = await tus_upload(client, team.member, tmp_path, "probe.csv", data, "text/csv")
    url = f"/api/projects/{team.project_id}/ingestions"
    # bad options: refused before the upload is touched
    body = await problem(await client.post(url, headers=team.member.headers,
                                           json={"upload_ids": [upload_id], "header_mode": "custom"}), 422)  # fmt: skip
    assert body["errors"][0]["path"] == "$.custom_headers"
    # the upload is someone else's, and outsiders learn nothing
    await problem(await client.post(url, headers=team.lead.headers, json={"upload_ids": [upload_id]}), 404)
    await problem(
        await client.post(url, headers=team.outsider.headers, json={"upload_ids": [upload_id]}), 404
    )
    await problem(await client.post(url, headers=team.viewer.headers, json={"upload_ids": [upload_id]}), 403)
    # the same upload twice, none, an id that is not one, too many entries in the manifest
    await problem(
        await client.post(url, headers=team.member.headers, json={"upload_ids": [upload_id, upload_id]}), 422
    )
    await problem(await client.post(url, headers=team.member.headers, json={"upload_ids": []}), 422)
    await problem(
        await client.post(url, headers=team.member.headers, json={"upload_ids": [upload_id, "nope"]}), 404
    )
    await problem(await client.post(url, headers=team.member.headers, json={"upload_ids": "x"}), 422)
    manifest = [{"ingest": True}, {"ingest": True}]
    await problem(await client.post(url, headers=team.member.headers,
                                    json={"upload_ids": [upload_id], "manifest": manifest}), 422)  # fmt: skip
    # still there, still complete, with its whole time to live, and usable
    upload = await (await client.get(f"/api/uploads/{upload_id}", headers=team.member.headers)).json()
    assert upload["status"] == "complete"
    left = datetime.fromisoformat(upload["expires_at"]) - datetime.now(UTC)
    assert left > timedelta(hours=23), left
    used = await client.post(url, headers=team.member.headers, json={"upload_ids": [upload_id]})
    assert used.status == 202, await used.text()
    [entry] = (await used.json())["jobs"]
    assert (await finished(client, team.member, entry["id"]))["status"] == "succeeded"


async def test_unfinished_and_too_large_uploads_are_refused_with_their_reason(client, team, tmp_path):
    half = await tus_upload(
        client, team.member, tmp_path, "half.csv", big_csv(100_000), "text/csv", finish=False
    )
    body = await problem(
        await client.post(f"/api/projects/{team.project_id}/documents", headers=team.member.headers,
                          json={"upload_id": half}), 409,
    )  # fmt: skip
    assert body["code"] == "upload_incomplete"
    # bigger than ingest.max_file_bytes (16 MiB) but within Tus-Max-Size (20 MiB): refused when used
    data = big_csv(1_000_000)
    assert 16 * 1024 * 1024 < len(data) < 20 * 1024 * 1024
    large = await tus_upload(client, team.member, tmp_path, "large.csv", data, "text/csv")
    body = await problem(
        await client.post(f"/api/projects/{team.project_id}/ingestions", headers=team.member.headers,
                          json={"upload_ids": [large]}), 413,
    )  # fmt: skip
    assert body["code"] == "upload_too_large"
    # ...while documents (uploads.max_bytes, 20 MiB) take it
    document = await client.post(
        f"/api/projects/{team.project_id}/documents", headers=team.member.headers, json={"upload_id": large}
    )
    assert document.status == 201, await document.text()


async def test_two_uses_of_one_upload_at_once_make_one_document(client, team, tmp_path):
    data = bytes(range(256)) * (11 * 1024 * 1024 // 256)
    upload_id = await tus_upload(client, team.member, tmp_path, "scan.tif", data, "image/tiff")
    answers = await asyncio.gather(*(
        client.post(f"/api/projects/{team.project_id}/documents", headers=team.member.headers,
                    json={"upload_id": upload_id})
        for _ in range(3)
    ))  # fmt: skip
    statuses = sorted(a.status for a in answers)
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {201, 404, 409}
    listed = await (
        await client.get(f"/api/projects/{team.project_id}/documents", headers=team.member.headers)
    ).json()
    assert [d["name"] for d in listed["items"]] == ["scan.tif"]


async def test_an_empty_file_is_whole_once_created(client, team, tmp_path):
    upload_id = await tus_upload(client, team.member, tmp_path, "empty.txt", b"", "text/plain")
    upload = await (await client.get(f"/api/uploads/{upload_id}", headers=team.member.headers)).json()
    assert (upload["status"], upload["sha256"]) == ("complete", hashlib.sha256(b"").hexdigest())
    created = await client.post(
        f"/api/projects/{team.project_id}/documents",
        headers=team.member.headers,
        json={"upload_id": upload_id},
    )
    assert created.status == 201, await created.text()
    assert (await created.json())["size"] == 0
