"""Backup and restore: a populated LabHub (every kind of data, an ingestion running) is backed up,
restored into empty services, and answers every read the same; archives are checked as mongodump
lays them out, and damage is caught."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import bson
import pytest
from bson.json_util import loads
from yarl import URL

from domain import __version__
from domain.infra.mongo import BACKUP_RULES, open_mongo
from domain.infra.objects import open_objects
from domain.jobs.store import JobStore
from handlers.keys import MONGO, OBJECTS, SCHEDULER
from ops.archive import ArchiveError, ArchiveReader, ArchiveWriter
from ops.backup import MANIFEST, BackupError, verify
from ops.backup import backup as run_backup
from ops.backup import restore as run_restore
from server import create_app
from tests.api.test_ingestion import finished, form
from tests.api.test_meetings import schedule
from tests.api.test_visualizations import CSV, plot
from tests.conftest import file_form, job_settings
from tests.sse_client import read_events

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    return await aiohttp_client(create_app(job_settings(services, tmp_path / "a")))


async def ok(response: Any, status: int = 201) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def populate(client, team) -> dict[str, str]:
    """One of each kind of data LabHub keeps, through the API; returns the ids to read back."""
    ids: dict[str, str] = {"project": team.project_id}
    h = team.member.headers
    ingestion = await ok(await client.post(f"/api/projects/{team.project_id}/ingestions",
                                           data=form([("wind.csv", CSV, "text/csv")]), headers=h), 202)  # fmt: skip
    job = await finished(client, team, ingestion["jobs"][0]["id"])
    assert job["status"] == "succeeded", job
    ids["ingestion"], ids["dataset"] = job["id"], job["result"]["dataset_id"]
    made = await ok(await plot(client, team, ids["dataset"], kind="line", x="time", y=["speed"]), 202)
    assert (await finished(client, team, made["job_id"]))["status"] == "succeeded"
    ids["visualization"] = made["id"]
    doc = await ok(await client.post(f"/api/projects/{team.project_id}/documents",
                                     data=file_form(b"protocol one", "protocol.txt", "text/plain"), headers=h))  # fmt: skip
    await ok(await client.post(f"/api/documents/{doc['id']}/versions",
                               data=file_form(b"protocol, version two", "protocol.txt", "text/plain"), headers=h))  # fmt: skip
    ids["document"] = doc["id"]
    record = await ok(await client.post(f"/api/projects/{team.project_id}/records",
                                        json={"kind": "measurement", "title": "Run 7", "data": {"rpm": 1200}}, headers=h))  # fmt: skip
    ids["record"] = record["id"]
    ids["meeting"] = (await schedule(client, team, attendee_ids=[team.member.id]))["id"]
    await ok(await client.post(f"/api/projects/{team.project_id}/engagement",
                               json={"date": "2026-11-30", "minutes": 90, "activity": "lab_work"}, headers=h))  # fmt: skip
    await ok(await client.post("/api/tokens", json={"name": "lab pc", "scopes": ["read"]}, headers=h))
    # a resumable upload half done: its parts are objects too
    created = await client.post("/api/uploads", headers={**TUS, **h, "Upload-Length": "10"})
    assert created.status == 201, await created.text()
    ids["upload"] = URL(created.headers["Location"]).path
    sent = await client.patch(ids["upload"], data=b"hello",
                              headers={**TUS, **h, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})  # fmt: skip
    assert sent.status == 204, await sent.text()
    return ids


def reads(ids: dict[str, str]) -> list[str]:
    p = ids["project"]
    return [
        "/api/auth/me", "/api/projects", f"/api/projects/{p}", f"/api/projects/{p}/members",
        f"/api/projects/{p}/datasets", f"/api/datasets/{ids['dataset']}", f"/api/datasets/{ids['dataset']}/rows",
        f"/api/datasets/{ids['dataset']}/download", f"/api/datasets/{ids['dataset']}/raw",
        f"/api/projects/{p}/ingestions", f"/api/ingestions/{ids['ingestion']}",
        f"/api/projects/{p}/visualizations", f"/api/visualizations/{ids['visualization']}",
        f"/api/visualizations/{ids['visualization']}/image",
        f"/api/projects/{p}/documents", f"/api/documents/{ids['document']}",
        f"/api/documents/{ids['document']}/versions", f"/api/documents/{ids['document']}/content",
        f"/api/documents/{ids['document']}/content?version=1",
        f"/api/projects/{p}/records", f"/api/records/{ids['record']}",
        f"/api/projects/{p}/meetings", f"/api/meetings/{ids['meeting']}",
        f"/api/projects/{p}/engagement", f"/api/engagement/summary?project_id={p}",
        "/api/notifications", "/api/tokens", f"/api/projects/{p}/audit",
    ]  # fmt: skip


async def answers(client, team, urls: list[str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for account in (team.lead, team.member):
        for url in urls:
            response = await client.get(url, headers=account.headers)
            body = await response.read()
            if response.content_type.endswith("json"):
                body = json.loads(body)
                body.pop("request_id", None)  # a problem's: new on every request
            seen[f"{account.role} {url}"] = (response.status, body)
    for url in ("/api/users", f"/api/jobs?project_id={team.project_id}"):
        response = await client.get(url, headers=team.head.headers)
        seen[f"head {url}"] = (response.status, await response.json())
    return seen


def store_settings(settings):
    s3 = settings.s3
    return (settings.mongo.uri, settings.mongo.database), (
        s3.endpoint_url,
        s3.access_key,
        s3.secret_key,
        s3.bucket,
        s3.region,
    )


def without(answer: tuple[int, Any], job_id: str) -> tuple[int, Any]:
    status, body = answer
    if isinstance(body, dict) and isinstance(body.get("items"), list):
        body = {
            **body,
            "items": [i for i in body["items"] if job_id not in json.dumps(i)],
        }
    return status, body


async def restore_into(settings, archive: Path, *, force: bool = False) -> dict[str, Any]:
    mongo, s3 = store_settings(settings)
    reader = ArchiveReader(archive)
    try:
        async with open_mongo(*mongo) as db, open_objects(*s3) as objects:
            return await run_restore(reader, db, objects, force=force, part_size=5 * 1024 * 1024)
    finally:
        reader.close()


async def take_backup(client, archive: Path) -> dict[str, Any]:
    writer = ArchiveWriter(archive)
    manifest = await run_backup(client.app[MONGO], client.app[OBJECTS], writer, version=__version__)
    writer.close()
    return manifest


async def test_backup_restore_round_trip_with_an_ingestion_running(
    client, team, aiohttp_client, services, tmp_path
):
    ids = await populate(client, team)
    # an ingestion mid-run on some instance: queued, then claimed with a lease, as a busy instance holds it
    await client.app[SCHEDULER].stop(grace_s=0)
    queued = await ok(await client.post(f"/api/projects/{team.project_id}/ingestions",
                                        data=form([("gust.csv", CSV.replace(b"speed", b"gust2"), "text/csv")]),
                                        headers=team.member.headers), 202)  # fmt: skip
    running_id = queued["jobs"][0]["id"]
    claimed = await JobStore(client.app[MONGO]).claim("instance-mid-job", ["ingest"], lease_s=3600)
    assert claimed is not None
    assert claimed.id == running_id
    urls = reads(ids)
    before = await answers(client, team, urls)

    archive = (
        tmp_path / "backup"
    )  # a directory (the .tar form is restored in tests/system/test_backup_cli.py)
    manifest = await take_backup(client, archive)
    assert manifest["requeued_jobs"] == [running_id]
    assert manifest["missing_objects"] == []
    # every object LabHub holds is in the archive: a new kind of data must list its references
    stored = set(await client.app[OBJECTS].keys())
    assert stored == set(manifest["objects"]), "objects no backup rule names: " + repr(
        stored ^ set(manifest["objects"])
    )

    target = job_settings(services, tmp_path / "b")  # a new database and bucket: empty services
    await restore_into(target, archive)
    restored = await aiohttp_client(create_app(target))
    after = await answers(restored, team, urls)
    for key, (status, body) in before.items():
        # the job that was running runs again (below): listings are compared without what names it
        assert without(after[key], running_id) == without((status, body), running_id), key
    # every read answered (the member is not allowed the audit log): the comparison compared data
    assert [key for key, (status, _) in before.items() if status != 200] == [
        f"student /api/projects/{ids['project']}/audit"
    ]
    # Redis started empty: a finished job's event stream is told from MongoDB
    response = await restored.get(f"/api/jobs/{ids['ingestion']}/events", headers=team.member.headers)
    events, ended = await read_events(response)
    assert ended
    assert events[0].event == "snapshot"
    assert events[0].data["status"] == "succeeded"
    # the job that was running runs again on the restored server and finishes
    job = await finished(restored, team, running_id)
    assert job["status"] == "succeeded", job
    assert job["result"]["dataset_id"]
    # the half-done resumable upload goes on where it stopped
    sent = await restored.patch(ids["upload"], data=b"world",
                                headers={**TUS, **team.member.headers, "Upload-Offset": "5",
                                         "Content-Type": "application/offset+octet-stream"})  # fmt: skip
    assert sent.status == 204, await sent.text()


async def test_archive_is_laid_out_as_mongodump_writes_it(client, team, tmp_path):
    await populate(client, team)
    db = client.app[MONGO]
    archive = tmp_path / "backup.tar"
    manifest = await take_backup(client, archive)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        for name, count in manifest["collections"].items():
            data = tar.extractfile(f"mongo/{db.name}/{name}.bson")
            docs = list(bson.decode_file_iter(data))
            assert len(docs) == count == await db[name].count_documents({})
            assert {d["_id"] for d in docs} == {d["_id"] async for d in db[name].find({}, {"_id": 1})}
            metadata = loads(tar.extractfile(f"mongo/{db.name}/{name}.metadata.json").read())
            assert metadata["collectionName"] == name
            assert metadata["type"] == "collection"
            assert isinstance(metadata["options"], dict)
            expected = {ix["name"]: dict(ix["key"]) async for ix in await db[name].list_indexes()}
            assert {ix["name"]: dict(ix["key"]) for ix in metadata["indexes"]} == expected
            assert "_id_" in expected
        for key in manifest["objects"]:
            assert f"objects/{key}" in names
    assert set(manifest["collections"]) >= {"users", "projects", "datasets", "documents", "document_versions",
                                            "visualizations", "meetings", "records", "engagement", "jobs"}  # fmt: skip
    assert {c for c, rule in BACKUP_RULES.items() if rule.references} <= set(manifest["collections"])
    assert manifest["counts"]["documents"] == sum(manifest["collections"].values())
    assert manifest["labhub_version"] == __version__


async def test_verify_catches_a_flipped_byte_and_restore_refuses_it(client, team, services, tmp_path):
    await populate(client, team)
    archive = tmp_path / "backup"
    manifest = await take_backup(client, archive)
    reader = ArchiveReader(archive)
    assert verify(reader)[1] == []
    key = next(k for k in manifest["objects"] if k.startswith("datasets/"))
    damaged = archive / "objects" / key
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))
    problems = verify(reader)[1]
    assert len(problems) == 1
    assert f"objects/{key}" in problems[0]
    assert "sha256" in problems[0]
    (archive / "mongo" / "stray.bson").write_bytes(b"")
    assert any("stray.bson" in p for p in verify(reader)[1])
    target = job_settings(services, tmp_path / "b")
    with pytest.raises(BackupError, match="damaged"):
        await restore_into(target, archive)


async def test_restore_refuses_a_target_that_is_not_empty_unless_forced(client, team, services, tmp_path):
    await populate(client, team)
    archive = tmp_path / "backup"
    await take_backup(client, archive)
    target = job_settings(services, tmp_path / "b")
    await restore_into(target, archive)
    with pytest.raises(BackupError, match="not empty"):
        await restore_into(target, archive)
    # forced: replaces what is there, so a second restore gives the same state, not twice the data
    manifest = await restore_into(target, archive, force=True)
    mongo, _ = store_settings(target)
    async with open_mongo(*mongo) as db:
        for name, count in manifest["collections"].items():
            assert await db[name].count_documents({}) == count


def test_archives_are_never_half_written_or_overwritten(tmp_path):
    archive = tmp_path / "backup"
    archive.mkdir()
    (archive / "something").write_text("keep me")
    with pytest.raises(ArchiveError, match="already exists"):
        ArchiveWriter(archive)
    assert (archive / "something").read_text() == "keep me"
    broken = tmp_path / "broken.tar"
    writer = ArchiveWriter(broken)
    with writer.open("mongo/x.bson") as handle:
        handle.write(b"partial")
    writer.abort()
    assert not list(tmp_path.glob("broken*"))
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    with pytest.raises(BackupError, match=MANIFEST):
        verify(ArchiveReader(empty))


def test_unsafe_paths_in_an_archive_are_refused(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        member = tarfile.TarInfo(MANIFEST)
        body = json.dumps({"format": 1, "files": {"../../etc/passwd": {"size": 1, "sha256": "0"}}}).encode()
        member.size = len(body)
        tar.addfile(member, io.BytesIO(body))
    with pytest.raises(BackupError, match="unsafe"):
        verify(ArchiveReader(archive))
