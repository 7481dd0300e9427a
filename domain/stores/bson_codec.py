"""The BSON edge: MongoDB documents -> domain models (ObjectId -> hex str, _id -> id)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import cattrs
from bson import ObjectId

T = TypeVar("T")

_converter = cattrs.Converter()


def _structure_str(value: object, type_: type) -> str:
    # registered for str, so it also receives str-based enums such as Role
    if isinstance(value, ObjectId | str):
        return str(value) if type_ is str else type_(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _structure_datetime(value: object, _type: type) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    return value if value.tzinfo else value.replace(tzinfo=UTC)


_converter.register_structure_hook(str, _structure_str)
_converter.register_structure_hook(datetime, _structure_datetime)


def from_document(cls: type[T], doc: Mapping[str, Any]) -> T:
    """Build a model from a stored document; fields the model does not declare are ignored."""
    data = dict(doc)
    if "_id" in data:
        data["id"] = data.pop("_id")
    return _converter.structure(data, cls)
