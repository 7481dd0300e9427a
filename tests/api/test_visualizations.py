"""Visualizations through the API: checked specs, render jobs, safe images, ingestion's visualize."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from handlers.keys import OBJECTS
from server import create_app
from tests.api.test_ingestion import finished, form
from tests.conftest import job_settings, problem

CSV = b"time,speed,gust,site\n" + b"".join(
    b"%d,%d,%d,%s\n" % (i, i % 17, (i * 7) % 23, b"ab"[i % 2 : i % 2 + 1]) for i in range(2000)
)


@pytest.fixture
async def client(aiohttp_client, services, tmp_path):
    return await aiohttp_client(create_app(job_settings(services, tmp_path)))


async def dataset(client, team, **manifest):
    response = await client.post(
        f"/api/projects/{team.project_id}/ingestions",
        data=form([("wind.csv", CSV, "text/csv")], **({"manifest": [manifest]} if manifest else {})),
        headers=team.member.headers,
    )
    job = await finished(client, team, (await response.json())["jobs"][0]["id"])
    assert job["status"] == "succeeded", job
    return job["result"]["dataset_id"]


async def plot(client, team, dataset_id, who=None, **spec):
    return await client.post(
        f"/api/datasets/{dataset_id}/visualizations", json=spec, headers=(who or team.member).headers
    )


async def test_a_line_plot_is_rendered_and_served(client, team):
    dataset_id = await dataset(client, team)
    response = await plot(client, team, dataset_id, kind="line", x="time", y=["speed", "gust"], title="Wind $ & co",
                          width=800, height=500, dpi=100)  # fmt: skip
    assert response.status == 202
    created = await response.json()
    assert created["job_id"] == created["id"]
    assert created["spec"]["kind"] == "line"
    assert created["status"] in {"queued", "running"}
    job = await finished(client, team, created["job_id"])
    assert job["status"] == "succeeded", job
    viz = await (await client.get(f"/api/visualizations/{created['id']}", headers=team.viewer.headers)).json()
    assert viz["status"] == "succeeded"
    assert viz["dataset_id"] == dataset_id
    assert viz["dataset_version"]
    assert viz["library_versions"]["matplotlib"]
    assert viz["created_by"] == team.member.id
    image = await client.get(f"/api/visualizations/{created['id']}/image", headers=team.viewer.headers)
    assert image.status == 200
    assert image.headers["Content-Type"] == "image/png"
    assert "immutable" in image.headers["Cache-Control"]
    assert image.headers["X-Content-Type-Options"] == "nosniff"
    assert Image.open(io.BytesIO(await image.read())).size == (800, 500)
    await problem(await client.get(f"/api/visualizations/{created['id']}/image", params={"format": "svg"},
                                   headers=team.viewer.headers), 404)  # fmt: skip
    listed = await (await client.get(f"/api/projects/{team.project_id}/visualizations", params={"dataset_id": dataset_id},
                                     headers=team.viewer.headers)).json()  # fmt: skip
    assert [v["id"] for v in listed["items"]] == [created["id"]]
    described = await (await client.get(f"/api/datasets/{dataset_id}", headers=team.viewer.headers)).json()
    assert described["visualizations"] == [
        {"id": created["id"], "kind": "line", "title": "Wind $ & co", "status": "succeeded"}
    ]


async def test_svg_is_served_so_it_cannot_run_script(client, team):
    dataset_id = await dataset(client, team)
    created = await (await plot(client, team, dataset_id, kind="histogram", y=["speed"], format="svg",
                                title="</text><script>alert(1)</script>")).json()  # fmt: skip
    await finished(client, team, created["job_id"])
    image = await client.get(f"/api/visualizations/{created['id']}/image", headers=team.viewer.headers)
    assert image.headers["Content-Type"] == "image/svg+xml"
    policy = image.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "sandbox" in policy
    assert b"<script" not in await image.read()


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"kind": "line", "y": ["nope"]}, "$.y[0]"),
        ({"kind": "line", "y": ["site"]}, "$.y[0]"),
        ({"kind": "pie", "y": ["speed"]}, "$.kind"),
        ({"kind": "line", "y": ["speed"], "width": 99999}, "$.width"),
        ({"kind": "line", "y": ["speed"], "title": "t" * 1000}, "$.title"),
        ({"kind": "histogram", "y": ["speed"], "bins": 100000}, "$.bins"),
        ({"kind": "heatmap", "x": "site", "y": ["speed"]}, "$.x"),
        ({"kind": "line", "y": ["speed"], "row_range": {"start": 10, "end": 5}}, "$.row_range.end"),
    ],
)
async def test_bad_specs_are_422_and_nothing_is_queued(client, team, spec, path):
    dataset_id = await dataset(client, team)
    body = await problem(await plot(client, team, dataset_id, **spec), 422)
    assert body["errors"][0]["path"] == path
    listed = await (
        await client.get(f"/api/projects/{team.project_id}/visualizations", headers=team.member.headers)
    ).json()
    assert listed["items"] == []


async def test_visualize_from_ingestion_and_removal_with_the_dataset(client, team):
    dataset_id = await dataset(client, team, visualize=True)
    listed = await (
        await client.get(f"/api/projects/{team.project_id}/visualizations", headers=team.member.headers)
    ).json()
    [viz] = listed["items"]
    assert viz["spec"]["kind"] == "line"
    assert viz["spec"]["x"] == "time"
    assert viz["spec"]["y"] == ["speed", "gust"]
    await finished(client, team, viz["job_id"])
    assert len(await client.app[OBJECTS].keys("visualizations/")) == 1
    assert (await client.delete(f"/api/datasets/{dataset_id}", headers=team.member.headers)).status == 204
    await problem(await client.get(f"/api/visualizations/{viz['id']}", headers=team.member.headers), 404)
    assert await client.app[OBJECTS].keys("visualizations/") == []


async def test_delete_and_viewers(client, team):
    dataset_id = await dataset(client, team)
    await problem(await plot(client, team, dataset_id, who=team.viewer, kind="histogram", y=["speed"]), 403)
    created = await (
        await plot(client, team, dataset_id, kind="box", y=["speed", "gust"], group_by="site")
    ).json()
    await finished(client, team, created["job_id"])
    await problem(
        await client.delete(f"/api/visualizations/{created['id']}", headers=team.viewer.headers), 403
    )
    assert (
        await client.delete(f"/api/visualizations/{created['id']}", headers=team.member.headers)
    ).status == 204
    await problem(
        await client.get(f"/api/visualizations/{created['id']}/image", headers=team.member.headers), 404
    )
