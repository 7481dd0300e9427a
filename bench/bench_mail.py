"""Mail costs the request nothing it can wait on, and the outbox sends about as fast as a bare loop.

1. Request path: creating a meeting with N attendees (each gets an invitation), mail on vs mail off,
   same server and data: p50/p99 latency and the on/off ratio (the difference is the outbox inserts).
2. Delivery: a backlog of M mails (queued while the relay was down) from the outbox to a local SMTP
   server (aiosmtpd) vs a bare aiosmtplib loop sending the same messages over one connection to the
   same server, in the same run: mails/s and the ratio.

    .venv/bin/python bench/bench_mail.py --attendees 20 --rounds 40 --mails 300
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402
from harness import labhub_server  # noqa: E402

from domain.accounts.models import Role  # noqa: E402
from handlers.keys import ACCOUNTS, MONGO  # noqa: E402
from tests.mailbox import Mailbox, mail_settings  # noqa: E402

PASSWORD = "bench password 1"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def meeting_latencies(base: str, app, attendees: int, rounds: int) -> list[float]:
    import aiohttp

    accounts = app[ACCOUNTS]
    lead_email = f"lead-{time.monotonic_ns()}@lab.example"
    await accounts.create(email=lead_email, password=PASSWORD, name="Lead", role=Role.RESEARCHER)
    async with aiohttp.ClientSession(base) as http:
        login = await (
            await http.post("/api/auth/login", json={"email": lead_email, "password": PASSWORD})
        ).json()
        headers = {"Authorization": f"Bearer {login['access_token']}"}
        project = await (await http.post("/api/projects", json={"name": "Bench"}, headers=headers)).json()
        people = []
        for n in range(attendees):
            user = await accounts.create(
                email=f"a{n}-{time.monotonic_ns()}@lab.example", password=PASSWORD, name=f"Attendee {n}",
                role=Role.STUDENT,
            )  # fmt: skip
            await http.post(f"/api/projects/{project['id']}/members", json={"user_id": user.id, "role": "member"},
                            headers=headers)  # fmt: skip
            people.append(user.id)
        starts = (datetime.now(UTC) + timedelta(days=2)).isoformat()
        body = {"title": "Weekly", "starts_at": starts, "attendee_ids": people, "agenda": "1. Results"}
        latencies = []
        for _ in range(rounds):
            began = time.perf_counter()
            response = await http.post(f"/api/projects/{project['id']}/meetings", json=body, headers=headers)
            await response.read()
            latencies.append(time.perf_counter() - began)
            assert response.status == 201, await response.text()
    return latencies


async def outbox_rate(app, mailbox: Mailbox, mails: int) -> tuple[float, list[bytes]]:
    """Wait for the invitations already queued to reach the mailbox; mails/s from first to last."""
    outbox = app[MONGO]["mail_outbox"]
    began = time.perf_counter()
    while len(mailbox.received) < mails:
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - began
    messages = [bytes(doc["message"]) async for doc in outbox.find({}).limit(mails)]
    return mails / elapsed, messages


async def bare_rate(port: int, messages: list[bytes]) -> float:
    began = time.perf_counter()
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) as smtp:
        for message in messages:
            await smtp.sendmail("labhub@lab.example", ["someone@lab.example"], message)
    return len(messages) / (time.perf_counter() - began)


async def main(args: argparse.Namespace) -> None:
    mailbox = Mailbox()
    mailbox.start()
    try:
        with tempfile.TemporaryDirectory() as off_dir:
            async with labhub_server(Path(off_dir)) as server:
                off = await meeting_latencies(
                    str(server.make_url("")), server.app, args.attendees, args.rounds
                )
        with tempfile.TemporaryDirectory() as on_dir:
            # the relay is up: the requests are timed while the outbox sends what they queue
            async with labhub_server(Path(on_dir), mail=mail_settings(mailbox.port)) as server:
                on = await meeting_latencies(
                    str(server.make_url("")), server.app, args.attendees, args.rounds
                )
            mailbox.received.clear()
            mailbox.stop()  # then a backlog: queued while the relay is down, timed from when it is back
            async with labhub_server(
                Path(on_dir) / "backlog", mail=mail_settings(mailbox.port, retry_base_s=0.05, retry_max_s=0.1)
            ) as server:
                await meeting_latencies(
                    str(server.make_url("")), server.app, args.attendees, args.mails // args.attendees + 1
                )
                mailbox.start()
                rate, messages = await outbox_rate(server.app, mailbox, args.mails)
        bare = await bare_rate(mailbox.port, messages)
    finally:
        mailbox.stop()
    p50_on, p50_off = percentile(on, 0.5) * 1000, percentile(off, 0.5) * 1000
    p99_on, p99_off = percentile(on, 0.99) * 1000, percentile(off, 0.99) * 1000
    print(
        f"meeting with {args.attendees} attendees, {args.rounds} rounds: mail on p50 {p50_on:.1f} ms p99 {p99_on:.1f} ms; "
        f"mail off p50 {p50_off:.1f} ms p99 {p99_off:.1f} ms; on/off p50 {p50_on / p50_off:.2f}x p99 {p99_on / p99_off:.2f}x"
    )
    print(
        f"delivery of {len(messages)} mails: outbox {rate:.0f} mails/s, bare aiosmtplib loop {bare:.0f} mails/s; "
        f"outbox/bare {rate / bare:.2f}x"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attendees", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--mails", type=int, default=300)
    asyncio.run(main(parser.parse_args()))
