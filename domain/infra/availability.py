"""Which backing service an error says is out of reach: MongoDB, Redis or S3 (or none of them).

The stores are the only code that knows the drivers' exceptions; the HTTP edge turns such an
error into a 503 naming the service, and the scheduler waits for the service instead of failing
a job for it.
"""

from __future__ import annotations

import asyncio

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from pymongo.errors import ConnectionFailure
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

_BY_SERVICE: tuple[tuple[str, tuple[type[BaseException], ...]], ...] = (
    # AutoReconnect, NetworkTimeout and ServerSelectionTimeoutError are ConnectionFailures
    ("mongo", (ConnectionFailure,)),
    # including BusyLoadingError: a restarted Redis answers it while it replays its append-only file
    ("redis", (RedisConnectionError, RedisTimeoutError)),
    ("s3", (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError)),
)


def unavailable_service(error: BaseException) -> str | None:
    """ "mongo", "redis" or "s3" when the error (or one it was raised from) means that service cannot
    be reached right now; None for anything else."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for service, kinds in _BY_SERVICE:
            if isinstance(current, kinds):
                return service
        if isinstance(current, asyncio.CancelledError):
            return None
        current = current.__cause__ or current.__context__
    return None
