"""The query lane (docs/architecture.md, "SQL"): a small pool of its own, so that a query never waits
behind a queue of ingestions, and a query that runs away is stopped without touching a job.

A query stops itself at its time limit (DuckDB is interrupted in the worker). One that does not stop
within a grace period after it has its worker killed; the watchdog rebuilds the lane. A query whose
worker died under it (killed, or a lost forkserver) is run once more on the rebuilt lane.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
import uuid
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from domain.core.errors import TimedOut, TooLarge, Unavailable
from workers.pool import WorkerPool
from workers.worker import query_pid_file

log = logging.getLogger("labhub.sql")

RUN_QUERY = "workers.sql:run_query"
GRACE_S = 5.0  # past its own limit, how long a query's worker has to stop it before it is killed
HEALTHY_WAIT_S = 60.0  # at most this long for a rebuilt lane before a query answers 503


class QueryLane:
    def __init__(self, pool: WorkerPool) -> None:
        self._pool = pool

    async def _healthy(self) -> None:
        deadline = time.monotonic() + HEALTHY_WAIT_S
        while not self._pool.healthy:
            if time.monotonic() > deadline:
                raise Unavailable("the query workers are restarting; try again in a few seconds", code="query_lane_down")
            await asyncio.sleep(0.05)

    async def run(self, request: dict[str, Any], timeout_s: float, *, function: str = RUN_QUERY) -> dict[str, Any]:
        """The worker's answer to one query (function: the worker function, a query by default); a
        lost worker is replaced and the query run once more."""
        for attempt in (1, 2):
            await self._healthy()
            query_id = uuid.uuid4().hex
            try:
                _generation, future = self._pool.call(function, {**request, "query_id": query_id})
            except (BrokenProcessPool, RuntimeError):
                continue  # broken between the check and the call: the watchdog is on it
            try:
                return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s + GRACE_S)
            except TimeoutError:
                self._kill(query_id)
                raise TimedOut(
                    f"the query ran longer than its limit of {timeout_s:g} s and was stopped", code="query_timeout"
                ) from None
            except BrokenProcessPool:
                log.warning("a query's worker was lost; running it again", extra={"attempt": attempt})
            except Exception:  # the worker function itself failed: a LabHub bug, logged, never a 500
                log.exception("a query failed in its worker")
                return {"error": {"code": "query_failed", "message": "the query failed in LabHub; it has been logged",
                                  "position": None}}  # fmt: skip
            finally:
                with contextlib.suppress(OSError):
                    query_pid_file(self._pool.control_dir, query_id).unlink()
        # the same statement lost its worker twice: most likely it is what killed it (memory past the
        # worker's address-space cap ends a process inside Arrow or DuckDB without an exception)
        raise TooLarge(
            "the query's worker stopped twice while running it: it most likely needed more memory than a "
            "query may use; select fewer columns or rows, or aggregate first",
            code="query_out_of_memory",
        )

    def _kill(self, query_id: str) -> None:
        try:
            pid = int(query_pid_file(self._pool.control_dir, query_id).read_text())
        except (OSError, ValueError):
            return
        if pid in self._pool.worker_pids():
            log.warning("a query did not stop at its time limit; its worker is killed", extra={"pid": pid})
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
