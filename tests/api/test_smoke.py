"""Smoke: the app starts against the real services."""

from __future__ import annotations


async def test_ready(client):
    response = await client.get("/ready")
    assert response.status == 200
    assert (await response.json())["checks"] == {"mongo": "ok", "redis": "ok", "s3": "ok"}
