"""GET /metrics: who may read it (404 to everyone else), what it counts, read back with
prometheus-client's own parser, and labels that stay bounded whatever paths clients send."""

from __future__ import annotations

import random
import string

import pytest
from prometheus_client.parser import text_string_to_metric_families

from domain.core.metrics import KNOWN_METHODS, UNMATCHED_ROUTE
from server import create_app
from tests.api.test_ingestion import finished, form
from tests.api.test_tokens import bearer, make_token
from tests.conftest import job_settings, problem, wait_until
from tests.sse_client import read_events

SCRAPER_SECRET = "scraper-secret-of-a-good-length-0123456789"


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    settings = job_settings(services, tmp_path, {"metrics": {"bearer_secret": SCRAPER_SECRET}})
    return await aiohttp_client(create_app(settings))


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, sorted labels), parsed by prometheus-client's parser."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def scrape(client, headers) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    assert response.headers["Cache-Control"] == "no-store"
    return samples(await response.text())


def value(found, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_only_heads_admin_tokens_and_the_scraper_see_metrics(client, team):
    unknown = await problem(await client.get("/api/no-such-route"), 404)
    for headers in (
        {},
        team.member.headers,
        team.lead.headers,  # a researcher leading a project is not a head
        {"Authorization": "Bearer not-a-token"},
        {"Authorization": f"Bearer {SCRAPER_SECRET}x"},
        {"Authorization": f"Basic {SCRAPER_SECRET}"},
        bearer(await make_token(client, team.head, scopes=["read"])),
        bearer(await make_token(client, team.head, scopes=["write"])),
    ):
        hidden = await problem(await client.get("/metrics", headers=headers), 404)
        assert hidden["title"] == unknown["title"]  # nothing tells it apart from a path that does not exist
    await scrape(client, team.head.headers)
    await scrape(client, bearer(await make_token(client, team.head, scopes=["admin"])))
    await scrape(client, {"Authorization": f"Bearer {SCRAPER_SECRET}"})


async def test_metrics_can_be_turned_off(aiohttp_client, services, tmp_path, make_account):
    settings = job_settings(
        services, tmp_path, {"metrics": {"enabled": False, "bearer_secret": SCRAPER_SECRET}}
    )
    client = await aiohttp_client(create_app(settings))
    await problem(await client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPER_SECRET}"}), 404)


async def test_requests_jobs_ingestion_streams_and_services_are_counted(client, team):
    scraper = {"Authorization": f"Bearer {SCRAPER_SECRET}"}
    before = await scrape(client, scraper)
    csv = b"t,v\n" + b"".join(b"%d,%d\n" % (i, i) for i in range(300))
    response = await client.post(f"/api/projects/{team.project_id}/ingestions",
                                 data=form([("run.csv", csv, "text/csv")]), headers=team.member.headers)  # fmt: skip
    job_id = (await response.json())["jobs"][0]["id"]
    assert (await finished(client, team, job_id))["status"] == "succeeded"
    events, ended = await read_events(
        await client.get(f"/api/jobs/{job_id}/events", headers=team.member.headers)
    )
    assert ended
    await client.get(f"/api/projects/{team.project_id}", headers=team.member.headers)
    await client.get("/api/projects/0123456789abcdef01234567", headers=team.member.headers)
    after = await scrape(client, scraper)
    route = "/api/projects/{pid}"
    assert value(after, "labhub_http_requests_total", method="GET", route=route, status="200") >= 1
    assert value(after, "labhub_http_requests_total", method="GET", route=route, status="404") >= 1
    assert value(after, "labhub_http_request_duration_seconds_count", method="GET", route=route) >= 2
    assert value(after, "labhub_jobs_finished_total", kind="ingest", status="succeeded") == 1
    assert value(after, "labhub_job_duration_seconds_count", kind="ingest", status="succeeded") == 1
    assert value(after, "labhub_ingested_rows_total") - value(before, "labhub_ingested_rows_total") == 300
    # what the ingestion cost: its MongoDB commands, Redis round trips, S3 requests and one pool task
    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("labhub_backend_calls_total", service="mongodb", operation="insert") >= 2  # record, job
    # the job's end (and its claim, unless it was inserted already claimed: a slot was idle)
    assert grew("labhub_backend_calls_total", service="mongodb", operation="findAndModify") >= 1
    assert grew("labhub_backend_calls_total", service="redis", operation="round_trip") >= 1
    # the raw file, the Parquet (once, though the job was too quick for the upload that follows the
    # worker: the commit stored it) and its summary; one look whether the raw bytes were there already
    assert grew("labhub_backend_calls_total", service="s3", operation="PutObject") == 3
    assert grew("labhub_backend_calls_total", service="s3", operation="HeadObject") == 1
    assert grew("labhub_pool_tasks_total", kind="ingest") == 1
    assert value(after, "labhub_ingested_bytes_total") - value(before, "labhub_ingested_bytes_total") == len(
        csv
    )
    assert value(after, "labhub_sse_events_delivered_total") >= len(events)
    assert value(after, "labhub_jobs", status="succeeded") == 1
    assert value(after, "labhub_job_queue_depth") == 0

    # the job's status is out before its runner lets go of it (notices, clean-up): wait for that
    async def let_go():
        return value(await scrape(client, scraper), "labhub_jobs_running") == 0

    await wait_until(let_go)
    assert value(after, "labhub_pool_workers") == 2
    for service in ("mongo", "redis", "s3", "pool"):
        assert value(after, "labhub_service_up", service=service) == 1
    assert ("labhub_build_info", (("version", "0.1.0"),)) in after


def junk(rng: random.Random) -> str:
    return "".join(
        rng.choice(string.ascii_letters + string.digits + "-_.~%") for _ in range(rng.randrange(1, 40))
    )


async def test_labels_stay_bounded_whatever_paths_and_methods_are_sent(client, team):
    rng = random.Random(20261201)
    sent: list[str] = []
    for _ in range(150):
        word = junk(rng)
        sent.append(word)
        path = rng.choice([f"/api/projects/{word}", f"/api/{word}", f"/{word}", f"/api/datasets/{word}/rows",
                           f"/metrics/{word}", f"/api/jobs/{word}/events"])  # fmt: skip
        method = rng.choice(["GET", "POST", "PATCH", "DELETE", "PROPFIND", "BREW"])
        await client.request(method, path, headers=team.member.headers)
    found = await scrape(client, team.head.headers)
    routes = {r.resource.canonical for r in client.app.router.routes() if r.resource is not None}
    labels = {(name, dict(pairs).get("route"), dict(pairs).get("method")) for name, pairs in found}
    for name, route, method in labels:
        if route is not None:
            assert route in routes | {UNMATCHED_ROUTE}, (name, route)
        if method is not None:
            assert method in KNOWN_METHODS | {"OTHER"}, (name, method)
    text = repr(found)
    assert not [word for word in sent if len(word) > 6 and word in text]
    http_series = [k for k in found if k[0] == "labhub_http_requests_total"]
    assert len(http_series) < 60, http_series
