"""The embedded-service supervisor on its own: a dead service comes back on the same port with its
data; one that keeps dying is given up, and says so."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time

import pytest

from domain.infra.redis_store import open_redis
from ops.embedded import EmbeddedServices
from tests.conftest import S3_KEY, S3_SECRET

pytestmark = pytest.mark.system


async def wait_for_new_pid(services: EmbeddedServices, old: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while services.pids["redis"] == old or not _answers(services):
        assert time.monotonic() < deadline, "the service was not restarted"
        await asyncio.sleep(0.1)
    return services.pids["redis"]


def _answers(services: EmbeddedServices) -> bool:
    """Redis answers a PING from someone who has its password (the URL carries it)."""
    import redis

    try:
        with redis.Redis.from_url(services.endpoints().redis_url, socket_timeout=0.5) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


async def test_a_killed_service_is_restarted_with_its_data_then_given_up_when_it_keeps_dying(
    tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="labhub.services")
    services = EmbeddedServices(
        tmp_path, s3_access_key=S3_KEY, s3_secret_key=S3_SECRET, only=frozenset({"redis"})
    )
    services.spawn()
    supervisor = None
    stack = contextlib.AsyncExitStack()
    try:
        url = (await asyncio.to_thread(services.wait_ready)).redis_url
        # LabHub's own client: it must get over the restart by itself (its pooled connection dies)
        store = await stack.enter_async_context(open_redis(url, "t:"))
        client = store.client
        await client.set("kept", "yes")
        await client.execute_command("BGREWRITEAOF")  # the write is on disk once the rewrite is done
        while (info := await client.info("persistence"))["aof_rewrite_in_progress"] or info[  # noqa: ASYNC110
            "aof_rewrite_scheduled"
        ]:
            await asyncio.sleep(0.05)  # Redis has no event for it: asked until it says so
        supervisor = asyncio.create_task(services.supervise(max_failures=2))

        pid = services.pids["redis"]
        os.kill(pid, signal.SIGKILL)
        pid = await wait_for_new_pid(services, pid)
        assert services.endpoints().redis_url == url, "same port"
        assert await client.get("kept") == b"yes", "same data"
        assert any("service restarted" in r.getMessage() for r in caplog.records)

        os.kill(pid, signal.SIGKILL)  # second quick failure: restarted once more
        pid = await wait_for_new_pid(services, pid)
        os.kill(pid, signal.SIGKILL)  # third: more than max_failures quick failures in a row
        await asyncio.wait_for(supervisor, 30)  # it gives up: the watch ends
        assert any("keeps failing" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)
    finally:
        await stack.aclose()
        if supervisor is not None:
            supervisor.cancel()
        services.stop()
