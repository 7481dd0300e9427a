"""Which errors mean "a backing service is out of reach" (a 503 and a job that waits), and which not."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from pymongo.errors import AutoReconnect, DuplicateKeyError, ServerSelectionTimeoutError
from redis.exceptions import BusyLoadingError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError

from domain.infra.availability import unavailable_service


@pytest.mark.parametrize(
    ("error", "service"),
    [
        (ServerSelectionTimeoutError("no servers"), "mongo"),
        (AutoReconnect("connection reset"), "mongo"),
        (RedisConnectionError("refused"), "redis"),
        (BusyLoadingError("loading the dataset in memory"), "redis"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), "s3"),
        (DuplicateKeyError("E11000"), None),
        (ResponseError("WRONGTYPE"), None),
        (ClientError({"Error": {"Code": "NoSuchKey"}}, "GetObject"), None),
        (ValueError("a bug"), None),
    ],
)
def test_classifies_errors(error, service):
    assert unavailable_service(error) == service


def test_looks_through_the_errors_an_error_was_raised_from():
    def publish() -> None:
        try:
            raise RedisConnectionError("refused")
        except RedisConnectionError as inner:
            raise RuntimeError("while publishing") from inner

    with pytest.raises(RuntimeError) as raised:
        publish()
    assert unavailable_service(raised.value) == "redis"
