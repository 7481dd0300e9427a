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
