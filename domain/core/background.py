"""What every long-running background loop of the server does at each turn.

Such a loop catches a failure and tries again (a service restarting must not end it), and it must
still end when its task is cancelled at shutdown. A library call that swallows the cancellation
(pymongo and redis-py did, now and then, when the cancel landed mid-call) would keep the loop alive
and hold the shutdown up: each turn checks whether its task is being cancelled.
"""

from __future__ import annotations

import asyncio


def stop_if_cancelled() -> None:
    """Raise CancelledError when the current task has been asked to stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
