"""Event streams as strangers' clients read them, on the real server with a ping every 0.2 s.

httpx (a strict HTTP/1.1 client, as a Python frontend or a lab script would use), a raw socket that
checks every chunk of the chunked encoding, and an HTTP/1.0 client that gets no chunking at all.
The hub writes pings and events straight to sockets, past aiohttp's writer: these are the tests that
notice when those bytes are not framed as aiohttp framed the response.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
import redis.asyncio as aioredis

from domain.infra.events import stream_id
from ops.children import free_port
from tests.sse_client import Event, SseParser, collect
from tests.system.conftest import queue_test_job, service_endpoints, start, wait_ready

pytestmark = pytest.mark.system

PING_S = 0.2
ENV = {"LABHUB_JOBS_PLUGINS": "tests.jobkinds:SYSTEM_KINDS", "LABHUB_SSE_PING_S": str(PING_S)}
FINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
async def lab(tmp_path):
    """The real server (./labhub serve) and a signed-in user with a project."""
    port = free_port()
    process = start(tmp_path, port, **ENV)
    try:
        await asyncio.to_thread(wait_ready, port, process)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            account = {"email": "streams@lab.example", "password": "event stream password", "name": "S"}
            user = (await http.post("/api/auth/register", json=account)).json()
            login = await http.post("/api/auth/login", json={k: account[k] for k in ("email", "password")})
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            project = (await http.post("/api/projects", json={"name": "Streams"}, headers=headers)).json()
        yield {"data_dir": tmp_path, "port": port, "base": base, "headers": headers, "user": user,
               "project": project}  # fmt: skip
    finally:
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, 60)
        except Exception:
            process.kill()
            raise


async def stored_ids(data_dir, job_id):
    redis = aioredis.from_url(service_endpoints(data_dir)["redis_url"])
    try:
        return [entry_id.decode() for entry_id, _ in await redis.xrange(f"labhub:job:{job_id}:events")]
    finally:
        await redis.aclose()


def is_final(event: Event) -> bool:
    return event.event == "status" and event.data["status"] in FINAL


async def test_httpx_reads_job_and_notification_streams_across_pings_and_a_reconnect(lab):
    headers = lab["headers"]
    async with httpx.AsyncClient(base_url=lab["base"], timeout=httpx.Timeout(60, read=30)) as http:
        notes_parser = SseParser()
        async with http.stream("GET", "/api/notifications/events", headers=headers) as notes:
            assert notes.status_code == 200
            assert notes.headers["content-type"].startswith("text/event-stream")
            note_lines = notes.aiter_lines()
            opening, _ = await collect(note_lines, notes_parser, stop=lambda events: len(events) >= 1)
            assert opening[0].event == "snapshot"

            job_id = await queue_test_job(
                lab["data_dir"], lab["project"]["id"], lab["user"]["id"], steps=30, delay=0.1
            )
            parser = SseParser()
            async with http.stream("GET", f"/api/jobs/{job_id}/events", headers=headers) as first:
                assert first.status_code == 200
                assert first.headers["transfer-encoding"] == "chunked"
                seen, ended = await collect(
                    first.aiter_lines(), parser,
                    stop=lambda events: parser.comments >= 3 and sum(e.id is not None for e in events) >= 2,
                )  # fmt: skip
            assert not ended, "the job ended before three pings passed; it runs for three seconds"
            assert seen[0].event == "snapshot"
            assert seen[0].id is None  # the snapshot never moves Last-Event-ID
            last_id = [e.id for e in seen if e.id][-1]

            again_parser = SseParser()
            async with http.stream(
                "GET", f"/api/jobs/{job_id}/events", headers={**headers, "Last-Event-ID": last_id}
            ) as again:
                assert again.status_code == 200
                rest, ended = await collect(again.aiter_lines(), again_parser, timeout_s=120)
            assert ended, "the stream did not end after the terminal event"
            assert again_parser.comments >= 3, "the job ran for seconds: pings passed during it"
            assert is_final(rest[-1])
            assert rest[-1].data["status"] == "succeeded"

            # and the notifications stream, open all along, carried the job's notice through the pings
            notices, _ = await collect(
                note_lines, notes_parser, stop=lambda events: any(e.event == "notification" for e in events),
                timeout_s=60,
            )  # fmt: skip
            assert notices[-1].data["title"] == "Test job finished"
            assert notes_parser.comments >= 6

    received = [e.id for e in seen[1:] + rest[1:]]
    assert len(received) == len(set(received)), "an event was delivered twice"
    assert received == sorted(received, key=stream_id)
    assert received == await stored_ids(lab["data_dir"], job_id), "the client missed an event"


async def read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    status, *lines = head[:-4].split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


CHUNK_SIZE = re.compile(rb"[0-9a-fA-F]+\r\n")


async def read_chunked_strictly(reader: asyncio.StreamReader) -> tuple[bytes, int]:
    """The body of a chunked response, checked chunk by chunk: a size line of hex digits and CRLF,
    exactly that many bytes, CRLF; the last chunk empty, then CRLF. Returns (body, chunks)."""
    body, chunks = b"", 0
    while True:
        size_line = await reader.readuntil(b"\r\n")
        assert CHUNK_SIZE.fullmatch(size_line), (
            f"illegal chunk header {size_line[:80]!r} after {body[-80:]!r}"
        )
        size = int(size_line[:-2], 16)
        data = await reader.readexactly(size)
        assert await reader.readexactly(2) == b"\r\n", f"chunk of {size} bytes not followed by CRLF"
        if size == 0:
            return body, chunks
        body += data
        chunks += 1


async def test_raw_http11_client_sees_every_chunk_well_formed_and_http10_gets_no_chunking(lab):
    job_id = await queue_test_job(
        lab["data_dir"], lab["project"]["id"], lab["user"]["id"], steps=20, delay=0.1
    )
    auth = lab["headers"]["Authorization"]

    async def request(version: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", lab["port"])
        writer.write(
            f"GET /api/jobs/{job_id}/events HTTP/{version}\r\nHost: 127.0.0.1:{lab['port']}\r\n"
            f"Authorization: {auth}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        await writer.drain()
        return reader, writer

    async def http11() -> tuple[list[Event], SseParser, int]:
        reader, writer = await request("1.1")
        try:
            status, headers = await read_head(reader)
            assert status.startswith("HTTP/1.1 200"), status
            assert headers["transfer-encoding"] == "chunked"
            assert "content-length" not in headers
            body, chunks = await asyncio.wait_for(read_chunked_strictly(reader), 120)
        finally:
            writer.close()
        parser = SseParser()
        return parser.feed_text(body.decode()), parser, chunks

    async def http10() -> tuple[list[Event], SseParser, dict[str, str]]:
        reader, writer = await request("1.0")
        try:
            status, headers = await read_head(reader)
            assert re.match(r"HTTP/1\.[01] 200", status), status
            body = await asyncio.wait_for(reader.read(), 120)  # the server closes it after the last event
        finally:
            writer.close()
        parser = SseParser()
        return parser.feed_text(body.decode()), parser, headers

    (events, parser, chunks), (old_events, old_parser, old_headers) = await asyncio.gather(http11(), http10())

    assert parser.comments >= 3
    assert chunks > parser.comments
    assert events[0].event == "snapshot"
    assert is_final(events[-1])
    stored = await stored_ids(lab["data_dir"], job_id)
    assert [e.id for e in events[1:]] == stored

    assert "transfer-encoding" not in old_headers, "HTTP/1.0 has no chunked encoding"
    assert old_headers.get("connection", "").lower() == "close"
    assert old_parser.comments >= 3
    assert old_events[0].event == "snapshot"
    assert is_final(old_events[-1])
    assert [e.id for e in old_events[1:]] == stored
