"""The BSON edge: MongoDB documents -> domain models (ObjectId -> hex str, _id -> id)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import bson
import cattrs
from bson import CodecOptions, ObjectId

T = TypeVar("T")

_converter = cattrs.Converter()
TZ_AWARE: CodecOptions[Mapping[str, Any]] = CodecOptions(tz_aware=True, tzinfo=UTC)  # datetimes back in UTC


def _structure_str(value: object, type_: type) -> str:
    # registered for str, so it also receives str-based enums such as Role
    if isinstance(value, ObjectId | str):
        return str(value) if type_ is str else type_(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_datetime(value: object, _type: type) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _structure_date(value: object, _type: type) -> date:
    # BSON has no calendar-day type: days are stored as "YYYY-MM-DD" strings (they sort as days)
    if isinstance(value, str):
        return date.fromisoformat(value)
    if isinstance(value, datetime):
        return value.date()
    raise TypeError(f"expected a date, got {type(value).__name__}")


_converter.register_structure_hook(str, _structure_str)
_converter.register_structure_hook(date, _structure_date)
_converter.register_structure_hook(datetime, _structure_datetime)


def from_document(cls: type[T], doc: Mapping[str, Any]) -> T:
    """Build a model from a stored document; fields the model does not declare are ignored."""
    data = dict(doc)
    if "_id" in data:
        data["id"] = data.pop("_id")
    return _converter.structure(data, cls)


def to_bson(model: object) -> bytes:
    """A model as BSON bytes (for a copy kept outside MongoDB); from_bson reads it back the same."""
    return bson.encode(_converter.unstructure(model))


def from_bson(cls: type[T], raw: bytes) -> T:
    return from_document(cls, bson.decode(raw, codec_options=TZ_AWARE))
