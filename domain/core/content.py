"""Stored bytes as a download sees them: where they are, their name, type, size and hash."""

from __future__ import annotations

import attrs

# browsers may run these inline; they are always served as application/octet-stream
_ACTIVE_MARKERS = ("html", "script", "xml", "svg", "xsl")


@attrs.frozen
class Content:
    key: str
    name: str
    content_type: str
    size: int
    sha256: str


def served_content_type(stored: str) -> str:
    if any(marker in stored for marker in _ACTIVE_MARKERS):
        return "application/octet-stream"
    return stored


def human_size(n: float) -> str:
    """A number of bytes as a person reads it: 512 bytes, 3.4 MiB, 50.0 GiB."""
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
