"""Resumable uploads with tus 1.0.0, driven by tuspy (a real tus client) and by httpx for the protocol's
edges: discovery, creation (with and without a body), resuming at several offsets, a connection cut
mid-part, checksums, termination, expiry, limits and ownership."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import os
import socket
import struct

import httpx
import pytest
from tusclient import client as tus

from handlers.keys import OBJECTS
from server import create_app
from tests.conftest import create_account, make_settings, problem, wait_until

PART = 5 * 1024 * 1024  # the smallest part size S3 allows, so tests need few megabytes
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def settings(services, tmp_path):
    return make_settings(services, tmp_path, uploads={"part_size_bytes": PART})


def payload(size: int, seed: int = 1) -> bytes:
    return (
        (hashlib.sha256(str(seed).encode()).digest() * (size // 32 + 1))[:size] if seed else os.urandom(size)
    )


def write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def base(client) -> str:
    return str(client.make_url("/api/uploads"))


def tus_client(client, account) -> tus.TusClient:
    return tus.TusClient(base(client), headers={"Authorization": f"Bearer {account.token}"})


async def state(client, account, url: str) -> dict:
    response = await client.get(url.split(str(client.make_url("")), 1)[1], headers=account.headers)
    assert response.status == 200, await response.text()
    return await response.json()


async def parts_stored(client, upload_id: str) -> list[str]:
    return await client.app[OBJECTS].keys(f"uploads/{upload_id}/")


async def test_discovery_answers_what_the_server_speaks(client):
    async with httpx.AsyncClient() as http:
        response = await http.options(base(client))
    assert response.status_code == 204
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) >= {
        "creation", "creation-with-upload", "termination", "expiration", "checksum"}  # fmt: skip
    assert int(response.headers["Tus-Max-Size"]) == 5 * 1024**3  # the larger of the two limits
    assert "sha256" in response.headers["Tus-Checksum-Algorithm"].split(",")


async def test_tuspy_uploads_a_file_and_the_server_knows_its_sha256(client, make_account, tmp_path):
    member = await make_account("student")
    data = payload(12 * 1024 * 1024 + 123)
    path = write(tmp_path, "run-042.csv", data)
    uploader = tus_client(client, member).uploader(
        str(path), chunk_size=PART + 1000, metadata={"filename": "run-042.csv", "content_type": "text/csv"}
    )
    await asyncio.to_thread(uploader.upload)
    upload = await state(client, member, uploader.url)
    assert upload["status"] == "complete"
    assert upload["offset"] == upload["length"] == len(data)
    assert upload["sha256"] == hashlib.sha256(data).hexdigest()
    assert upload["metadata"] == {"filename": "run-042.csv", "content_type": "text/csv"}
    stored = await parts_stored(client, upload["id"])
    joined = b"".join([await client.app[OBJECTS].read_bytes(k) for k in sorted(stored)])
    assert joined == data


@pytest.mark.parametrize(
    "stops", [[1], [PART - 1, PART + 1], [3 * 1024 * 1024, 9 * 1024 * 1024, 11 * 1024 * 1024]]
)
async def test_an_upload_stopped_at_several_offsets_resumes_to_the_same_bytes(
    client, make_account, tmp_path, stops
):
    member = await make_account("student")
    data = payload(11 * 1024 * 1024 + 7)
    path = write(tmp_path, "tunnel.dat", data)
    url = None

    def upload(url: str | None, stop: int | None) -> str:
        # in a thread, from the constructor on: given a url, tuspy asks the server for the offset at once
        uploader = tus_client(client, member).uploader(str(path), url=url, chunk_size=1024 * 1024)
        uploader.upload(stop_at=stop)
        return uploader.url

    for stop in stops:
        url = await asyncio.to_thread(upload, url, stop)
        assert (await state(client, member, url))["offset"] >= min(stop, len(data))
    await asyncio.to_thread(upload, url, None)
    assert (await state(client, member, url))["sha256"] == hashlib.sha256(data).hexdigest()


async def test_a_connection_cut_mid_part_keeps_every_whole_part(client, make_account, caplog):
    member = await make_account("student")
    data = payload(2 * PART + 4096)
    created = await client.post(
        "/api/uploads", headers={**TUS, **member.headers, "Upload-Length": str(len(data))}
    )
    assert created.status == 201, await created.text()
    path = created.headers["Location"].split(str(client.make_url("")), 1)[1]
    # a raw client sends the headers of the whole file, 1.5 parts of it, and then the line goes dead
    host, port = client.make_url("").host, client.make_url("").port
    head = (f"PATCH {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {member.token}\r\n"
            f"Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode()  # fmt: skip
    sent = PART + PART // 2

    async def offset():
        response = await client.head(path, headers={**TUS, **member.headers})
        return int(response.headers["Upload-Offset"]) if response.headers["Upload-Offset"] != "0" else None

    # the line goes dead once the server has stored the first part: closed with a reset, as a killed
    # client leaves it (the kernel drops what the server had not read yet)
    with socket.create_connection((host, port)) as sock:
        await asyncio.to_thread(sock.sendall, head + data[:sent])
        assert await wait_until(offset) == PART  # what was acknowledged is stored: re-send at most one part
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    upload_id = path.rsplit("/", 1)[1]
    await wait_until(lambda: _just_parts(client, upload_id, 1))  # the half part was not kept
    rest = await client.patch(path, data=data[PART:], headers={
        **TUS, **member.headers, "Upload-Offset": str(PART), "Content-Type": "application/offset+octet-stream"})  # fmt: skip
    assert rest.status == 204, await rest.text()
    assert rest.headers["Upload-Offset"] == str(len(data))
    assert (await state(client, member, created.headers["Location"]))["sha256"] == hashlib.sha256(
        data
    ).hexdigest()
    # the lost connection is the client's doing: an access-log line, not a server error with a traceback
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records
    ]


async def _just_parts(client, upload_id: str, count: int) -> bool:
    return len(await parts_stored(client, upload_id)) == count


def digest(algorithm: str, data: bytes) -> str:
    return f"{algorithm} {base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


async def test_a_wrong_checksum_answers_460_and_keeps_nothing(client, make_account, tmp_path):
    member = await make_account("student")
    data = payload(PART + 10)
    created = await client.post(
        "/api/uploads", headers={**TUS, **member.headers, "Upload-Length": str(len(data))}
    )
    path = created.headers["Location"].split(str(client.make_url("")), 1)[1]
    patch = {**TUS, **member.headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    wrong = await client.patch(
        path, data=data, headers={**patch, "Upload-Checksum": digest("sha256", data + b"x")}
    )
    body = await problem(wrong, 460)
    assert body["code"] == "checksum_mismatch"
    assert wrong.headers["Tus-Resumable"] == "1.0.0"
    assert (await client.head(path, headers={**TUS, **member.headers})).headers["Upload-Offset"] == "0"
    assert await parts_stored(client, path.rsplit("/", 1)[1]) == []
    right = await client.patch(path, data=data, headers={**patch, "Upload-Checksum": digest("sha1", data)})
    assert right.status == 204
    assert right.headers["Upload-Offset"] == str(len(data))
    # tuspy's own checksums
    path2 = write(tmp_path, "checked.bin", payload(3 * 1024 * 1024, seed=2))
    uploader = tus_client(client, member).uploader(str(path2), chunk_size=1024 * 1024, upload_checksum=True)
    await asyncio.to_thread(uploader.upload)
    assert (await state(client, member, uploader.url))["status"] == "complete"


async def test_termination_removes_what_was_stored(client, make_account, tmp_path):
    member = await make_account("student")
    path = write(tmp_path, "big.bin", payload(2 * PART))
    uploader = tus_client(client, member).uploader(str(path), chunk_size=PART)
    await asyncio.to_thread(uploader.upload, stop_at=PART)
    upload_id = uploader.url.rsplit("/", 1)[1]
    assert len(await parts_stored(client, upload_id)) == 1
    route = f"/api/uploads/{upload_id}"
    assert (await client.delete(route, headers={**TUS, **member.headers})).status == 204
    assert await parts_stored(client, upload_id) == []
    await problem(await client.get(route, headers=member.headers), 404)


async def test_another_user_gets_404_for_everything(client, make_account):
    owner, other = await make_account("student"), await make_account("DH")  # not even a head sees it
    created = await client.post("/api/uploads", headers={**TUS, **owner.headers, "Upload-Length": "10"})
    route = created.headers["Location"].split(str(client.make_url("")), 1)[1]
    patch = {**TUS, **other.headers, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    assert (await client.head(route, headers={**TUS, **other.headers})).status == 404
    await problem(await client.get(route, headers=other.headers), 404)
    await problem(await client.patch(route, data=b"0123456789", headers=patch), 404)
    await problem(await client.delete(route, headers={**TUS, **other.headers}), 404)
    await problem(await client.post("/api/uploads", headers={**TUS, "Upload-Length": "10"}), 401)


async def test_protocol_mistakes_get_clear_answers(client, make_account):
    member = await make_account("student")
    auth = member.headers
    old = await problem(await client.post("/api/uploads", headers={**auth, "Upload-Length": "10"}), 412)
    assert old["code"] == "tus_version"
    await problem(await client.post("/api/uploads", headers={**TUS, **auth}), 400)  # no Upload-Length
    await problem(await client.post("/api/uploads", headers={**TUS, **auth, "Upload-Length": "-1"}), 400)
    huge = await problem(
        await client.post("/api/uploads", headers={**TUS, **auth, "Upload-Length": str(6 * 1024**3)}), 413
    )
    assert huge["code"] == "upload_too_large"
    await problem(await client.post("/api/uploads", headers={**TUS, **auth, "Upload-Length": "1",
                                                              "Upload-Metadata": "filename not-base64!"}), 400)  # fmt: skip
    created = await client.post("/api/uploads", headers={**TUS, **auth, "Upload-Length": "10"})
    route = created.headers["Location"].split(str(client.make_url("")), 1)[1]
    patch = {**TUS, **auth, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    await problem(
        await client.patch(route, data=b"abc", headers={**patch, "Content-Type": "text/plain"}), 415
    )
    moved = await problem(
        await client.patch(route, data=b"abc", headers={**patch, "Upload-Offset": "5"}), 409
    )
    assert moved["code"] == "offset_mismatch"
    over = await problem(await client.patch(route, data=b"0123456789X", headers=patch), 413)
    assert over["code"] == "upload_length_exceeded"
    assert (await client.patch(route, data=b"0123456789", headers=patch)).status == 204


async def test_creation_with_upload_takes_the_first_bytes(client, make_account):
    member = await make_account("student")
    data = b"time,speed\n0,1.5\n1,1.7\n"
    response = await client.post("/api/uploads", data=data, headers={
        **TUS, **member.headers, "Upload-Length": str(len(data)), "Content-Type": "application/offset+octet-stream",
        "Upload-Metadata": "filename " + base64.b64encode("wind ü.csv".encode()).decode()})  # fmt: skip
    assert response.status == 201
    assert response.headers["Upload-Offset"] == str(len(data))
    assert "Upload-Expires" in response.headers
    upload = await state(client, member, response.headers["Location"])
    assert upload["metadata"] == {"filename": "wind ü.csv"}
    assert upload["sha256"] == hashlib.sha256(data).hexdigest()


async def test_unfinished_uploads_expire_and_the_sweep_removes_their_parts(
    aiohttp_client, services, tmp_path
):
    settings = make_settings(services, tmp_path, uploads={"part_size_bytes": PART, "resumable_ttl_s": 1,
                                                          "resumable_sweep_s": 0.2})  # fmt: skip
    client = await aiohttp_client(create_app(settings))
    member = await create_account(client)
    data = payload(PART + 1)
    created = await client.post("/api/uploads", data=data[:PART], headers={
        **TUS, **member.headers, "Upload-Length": str(len(data)), "Content-Type": "application/offset+octet-stream"})  # fmt: skip
    upload_id = created.headers["Location"].rsplit("/", 1)[1]
    assert len(await parts_stored(client, upload_id)) == 1
    await wait_until(lambda: _just_parts(client, upload_id, 0), timeout_s=30)

    async def gone():
        return (await client.get(f"/api/uploads/{upload_id}", headers=member.headers)).status in {404, 410}

    assert await wait_until(gone)
