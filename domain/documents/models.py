"""Documents and their versions: models and the rules for names and content types."""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from datetime import datetime

import attrs

MAX_NAME = 255
_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")


@attrs.frozen
class Document:
    id: str
    project_id: str
    name: str
    content_type: str
    size: int
    sha256: str
    version: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    dataset_ids: list[str] = attrs.field(factory=list)  # the datasets its current version cites


@attrs.frozen
class DocumentVersion:
    document_id: str
    version: int
    name: str
    content_type: str
    size: int
    sha256: str
    created_by: str
    created_at: datetime
    dataset_ids: list[str] = attrs.field(factory=list)  # the datasets this version cites


def clean_file_name(raw: str | None) -> str:
    """The user's file name as metadata: no path, no control characters, bounded length."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in unicodedata.normalize("NFC", name) if unicodedata.category(ch)[0] != "C")
    name = name.strip().strip(".") or "upload"
    if len(name) > MAX_NAME:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_NAME - len(ext) - 1] + dot + ext) if dot and len(ext) < 16 else name[:MAX_NAME]
    return name


def clean_content_type(declared: str | None, name: str) -> str:
    """A plain type/subtype from the upload, else guessed from the name, else octet-stream."""
    value = (declared or "").split(";", 1)[0].strip().lower()
    if _MEDIA_TYPE.match(value) and value != "application/octet-stream":
        return value
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"
