"""Resumable uploads (tus 1.0.0): what an upload is, and reading the protocol's headers.

An upload is owned by the user who created it; its bytes arrive in PATCH requests and are kept as
parts, each its own object, so what is acknowledged survives a dropped connection, a killed server
and a move to another instance. The offset a HEAD reports is the durable one.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
from datetime import datetime

import attrs

from domain.core.errors import BadRequest

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = ("creation", "creation-with-upload", "termination", "expiration", "checksum")
CHECKSUM_ALGORITHMS = ("sha256", "sha1", "md5")
MAX_METADATA_BYTES = 4096
_METADATA_KEY = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")


class UploadStatus(enum.StrEnum):
    RECEIVING = "receiving"  # bytes are still to come
    COMPLETE = "complete"  # every byte is in; the upload can be used (once) until it expires
    IN_USE = "in_use"  # a document or ingestion is taking its bytes; gone once that succeeds


@attrs.frozen
class Upload:
    id: str
    owner_id: str
    length: int
    offset: int
    metadata: dict[str, str]
    status: UploadStatus
    created_at: datetime
    expires_at: datetime
    sha256: str | None = None

    @property
    def filename(self) -> str | None:
        return self.metadata.get("filename") or self.metadata.get("name")

    @property
    def content_type(self) -> str | None:
        return self.metadata.get("content_type") or self.metadata.get("filetype") or self.metadata.get("type")


def parse_metadata(header: str | None) -> dict[str, str]:
    """Upload-Metadata: comma-separated `key base64(value)` pairs (the value may be absent)."""
    if not header:
        return {}
    if len(header) > MAX_METADATA_BYTES:
        raise BadRequest(f"Upload-Metadata is longer than {MAX_METADATA_BYTES} bytes", code="bad_metadata")
    found: dict[str, str] = {}
    for pair in header.split(","):
        key, _, encoded = pair.strip().partition(" ")
        if not _METADATA_KEY.match(key) or key in found or " " in encoded.strip():
            raise BadRequest(f"Upload-Metadata: {key!r} is not a key followed by a base64 value",
                             code="bad_metadata")  # fmt: skip
        try:
            found[key] = base64.b64decode(encoded.strip(), validate=True).decode("utf-8") if encoded else ""
        except (binascii.Error, UnicodeDecodeError):
            raise BadRequest(f"Upload-Metadata: the value of {key!r} is not base64 of UTF-8 text",
                             code="bad_metadata") from None  # fmt: skip
    return found


def format_metadata(metadata: dict[str, str]) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" if v else k for k, v in metadata.items())


@attrs.frozen
class Checksum:
    algorithm: str
    digest: bytes

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)


def parse_checksum(header: str | None) -> Checksum | None:
    """Upload-Checksum: `<algorithm> <base64 digest>` of the PATCH body."""
    if header is None:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    if algorithm.lower() not in CHECKSUM_ALGORITHMS:
        raise BadRequest(f"Upload-Checksum: algorithm {algorithm!r} is not one of {', '.join(CHECKSUM_ALGORITHMS)}",
                         code="bad_checksum_algorithm")  # fmt: skip
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        raise BadRequest("Upload-Checksum: the digest is not base64", code="bad_checksum") from None
    if len(digest) != hashlib.new(algorithm.lower()).digest_size:
        raise BadRequest(f"Upload-Checksum: a {algorithm} digest has {hashlib.new(algorithm.lower()).digest_size} bytes",
                         code="bad_checksum")  # fmt: skip
    return Checksum(algorithm.lower(), digest)


def parse_offset(value: str | None, name: str) -> int:
    if value is None or not value.isdigit() or len(value) > 19:
        raise BadRequest(f"{name} must be a whole number of bytes, 0 or more", code="bad_header")
    return int(value)
