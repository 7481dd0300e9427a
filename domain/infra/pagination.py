"""Keyset pagination over MongoDB with opaque cursors that stay correct while documents are added."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from bson import ObjectId, json_util
from pymongo.asynchronous.collection import AsyncCollection

from domain.core.errors import BadRequest
from domain.infra.mongo import Document

SortSpec = Sequence[tuple[str, int]]


def bad_cursor() -> BadRequest:
    """400: a cursor is not input a person types, it comes back as the server wrote it or not at all."""
    return BadRequest(
        "cursor is not valid for this list; start again without it",
        code="invalid_cursor",
        errors=[{"path": "$.cursor", "message": "not a cursor from this list"}],
    )


def _value_at(doc: Mapping[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def encode_cursor(sort: SortSpec, doc: Mapping[str, Any]) -> str:
    payload = {"s": [[f, d] for f, d in sort], "v": [_value_at(doc, f) for f, _ in sort]}
    raw = json_util.dumps(payload, json_options=json_util.CANONICAL_JSON_OPTIONS)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: SortSpec) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json_util.loads(raw.decode())
    except (ValueError, binascii.Error, UnicodeDecodeError, json.JSONDecodeError, TypeError):
        raise bad_cursor() from None
    if not isinstance(payload, dict) or payload.get("s") != [[f, d] for f, d in sort]:
        raise bad_cursor()
    values = payload.get("v")
    if not isinstance(values, list) or len(values) != len(sort):
        raise bad_cursor()
    if not all(_plain(value) for value in values):
        raise bad_cursor()  # a document ({"$exists": true}), a regex, a list... would be an operator
    return values


# what a sort position can be; anything else in a cursor was put there by hand (exact types: bson's
# Code is a str, Int64 an int)
_PLAIN = frozenset({str, int, float, bool, datetime, ObjectId})


def _plain(value: Any) -> bool:
    return value is None or type(value) in _PLAIN


def _beyond(field: str, direction: int, value: Any) -> dict[str, Any] | None:
    """Documents strictly after value in this direction; null sorts first in MongoDB."""
    if value is None:
        return {field: {"$ne": None}} if direction == 1 else None
    if direction == 1:
        return {field: {"$gt": value}}
    return {"$or": [{field: {"$lt": value}}, {field: None}]}


def after_filter(sort: SortSpec, values: Sequence[Any]) -> dict[str, Any]:
    branches = []
    for i, (field, direction) in enumerate(sort):
        tail = _beyond(field, direction, values[i])
        if tail is None:
            continue
        equal = [{f: v} for (f, _), v in zip(sort[:i], values[:i], strict=True)]
        branches.append({"$and": [*equal, tail]} if equal else tail)
    return {"$or": branches} if branches else {"_id": {"$exists": False}}


async def find_page(
    collection: AsyncCollection[Document],
    query: Mapping[str, Any],
    sort: SortSpec,
    limit: int,
    cursor: str | None,
) -> tuple[list[Document], str | None]:
    """One page of documents in sort order; sort must end with _id so every position is unique."""
    if not sort or sort[-1][0] != "_id":
        raise ValueError("a keyset sort must end with _id")
    full: Mapping[str, Any] = query
    if cursor:
        full = {"$and": [dict(query), after_filter(sort, decode_cursor(cursor, sort))]}
    docs = await collection.find(full).sort(list(sort)).limit(limit + 1).to_list()
    if len(docs) > limit:
        return docs[:limit], encode_cursor(sort, docs[limit - 1])
    return docs, None
