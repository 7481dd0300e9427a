"""Schemathesis extension (SCHEMATHESIS_HOOKS=tests.fuzz_hooks): bodies of the tus upload routes,
application/offset+octet-stream, are raw bytes as for application/octet-stream."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.serializer("application/offset+octet-stream")
def offset_octet_stream(_ctx: Any, value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")
