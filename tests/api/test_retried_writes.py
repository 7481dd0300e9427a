"""A write that lands while its answer is lost (MongoDB killed right after it): the driver tries it
again on the restarted server, which, unlike a replica set, has forgotten the first try. Every insert and numbered update is still the one success it was: no 500, no duplicate, no
orphan."""

from __future__ import annotations

import asyncio
import os
import signal
from urllib.parse import urlsplit, urlunsplit

import pytest

from handlers.keys import MONGO, OBJECTS
from ops import embedded
from ops.embedded import EmbeddedServices
from server import create_app
from tests.conftest import S3_KEY, S3_SECRET, file_form, make_settings
from tests.faults import AnswerDropper


@pytest.fixture
async def mongo(tmp_path, monkeypatch):
    """A MongoDB-compatible server of this test's own, supervised (restarted when killed). It is
    killed several times a minute here, which the supervisor would take for a failing service and
    restart ever more slowly: its back-off is kept short."""
    monkeypatch.setattr(embedded, "RESTART_BACKOFF_S", (0.2, 0.5))
    services = EmbeddedServices(
        tmp_path / "mongo-service", s3_access_key=S3_KEY, s3_secret_key=S3_SECRET, only=frozenset({"mongo"})
    )
    services.spawn()
    supervisor = None
    try:
        await asyncio.to_thread(services.wait_ready)
        supervisor = asyncio.create_task(services.supervise(max_failures=50))
        yield services
    finally:
        if supervisor is not None:
            supervisor.cancel()
        await asyncio.to_thread(services.stop)


@pytest.fixture
async def dropper(mongo):
    """Drops the answer to a chosen request and kills the server under it: the restarted server
    has forgotten the write's session, so the driver's retry is a new write to it."""

    async def kill() -> None:
        os.kill(mongo.pids["mongo"], signal.SIGKILL)

    uri = urlsplit(mongo.endpoints().mongo_uri)
    proxy = AnswerDropper(uri.hostname or "127.0.0.1", uri.port or 27017, on_drop=kill)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def client(aiohttp_client, services, tmp_path, mongo, dropper):
    uri = urlsplit(mongo.endpoints().mongo_uri)
    via_proxy = urlunsplit(uri._replace(netloc=uri.netloc.replace(f":{uri.port}", f":{dropper.port}")))
    settings = make_settings(services, tmp_path)
    settings = make_settings(
        services, tmp_path, mongo={"uri": via_proxy, "database": settings.mongo.database}
    )
    return await aiohttp_client(create_app(settings))


async def document_and_version_stored_once(client, team, dropper):
    dropper.drop_answer_to(b"insert", b"document_versions")
    response = await client.post(
        f"/api/projects/{team.project_id}/documents",
        data=file_form(b"first", "a.txt"),
        headers=team.member.headers,
    )
    assert response.status == 201, await response.text()
    assert dropper.dropped == 1  # the first answer really was lost
    document = await response.json()
    db = client.app[MONGO]
    assert await db["documents"].count_documents({}) == 1
    assert await db["document_versions"].count_documents({}) == 1
    content = await client.get(f"/api/documents/{document['id']}/content", headers=team.member.headers)
    assert await content.read() == b"first"

    # a new version: its number is taken once, however often the update is sent
    dropper.drop_answer_to(b"findAndModify", b"documents")
    again = await client.post(
        f"/api/documents/{document['id']}/versions",
        data=file_form(b"second", "a.txt"),
        headers=team.member.headers,
    )
    assert again.status == 201, await again.text()
    assert dropper.dropped == 2
    assert (await again.json())["version"] == 2
    versions = await (
        await client.get(f"/api/documents/{document['id']}/versions", headers=team.member.headers)
    ).json()
    assert [v["version"] for v in versions["items"]] == [2, 1]
    assert len(await client.app[OBJECTS].keys("documents/")) == 2


RETRIED = [  # what is inserted, by which request (the markers find the insert on the wire)
    ((b"insert", b"records"), "POST", "/api/projects/{pid}/records", {"kind": "k", "title": "t"}, "records"),
    ((b"insert", b"meetings"), "POST", "/api/projects/{pid}/meetings",
     {"title": "m", "starts_at": "2030-01-01T10:00:00+00:00"}, "meetings"),
    ((b"insert", b"projects"), "POST", "/api/projects", {"name": "Retried"}, "projects"),
    ((b"insert", b"audit"), "POST", "/api/projects/{pid}/records", {"kind": "k", "title": "u"}, "audit"),
]  # fmt: skip


async def test_every_retried_write_answers_as_the_first_would_have(client, team, dropper):
    """One server of its own, killed again and again (each kill and restart takes seconds)."""
    await document_and_version_stored_once(client, team, dropper)
    for markers, method, path, body, collection in RETRIED:
        before = await client.app[MONGO][collection].count_documents({})
        dropped = dropper.dropped
        dropper.drop_answer_to(*markers)
        response = await client.request(
            method, path.format(pid=team.project_id), json=body, headers=team.lead.headers
        )
        assert response.status == 201, f"{collection}: {await response.text()}"
        assert dropper.dropped == dropped + 1, collection
        assert await client.app[MONGO][collection].count_documents({}) == before + 1, collection

    # treating a retried insert as a success must not let a real duplicate through
    body = {"email": "once@lab.example", "password": "long enough pass", "name": "Once"}
    dropper.drop_answer_to(b"insert", b"users")
    assert (await client.post("/api/auth/register", json=body)).status == 201
    again = await client.post("/api/auth/register", json=body)
    assert again.status == 409
    assert (await again.json())["code"] == "email_taken"
    assert await client.app[MONGO]["users"].count_documents({"email": "once@lab.example"}) == 1
