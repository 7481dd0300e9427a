"""Cursors are opaque, tamper-evident and bound to the list's sort order."""

from __future__ import annotations

import pytest
from bson import ObjectId

from domain.core.errors import BadRequest
from domain.infra.pagination import after_filter, decode_cursor, encode_cursor

SORT = [("name_lower", 1), ("_id", 1)]


def test_round_trip_keeps_values_and_types():
    oid = ObjectId()
    cursor = encode_cursor(SORT, {"name_lower": "ada", "_id": oid})
    assert decode_cursor(cursor, SORT) == ["ada", oid]


@pytest.mark.parametrize("cursor", ["", "!!!", "e30", "bm90IGpzb24", "W10"])
def test_garbage_cursor_is_a_bad_request(cursor):
    with pytest.raises(BadRequest):
        decode_cursor(cursor, SORT)


def test_cursor_from_another_sort_is_refused():
    cursor = encode_cursor([("created_at", -1), ("_id", -1)], {"created_at": 1, "_id": ObjectId()})
    with pytest.raises(BadRequest):
        decode_cursor(cursor, SORT)


def test_after_filter_handles_nulls_and_directions():
    oid = ObjectId()
    ascending = after_filter(SORT, [None, oid])
    assert {"name_lower": {"$ne": None}} in ascending["$or"]
    descending = after_filter([("x", -1), ("_id", -1)], [5, oid])
    assert descending["$or"][0] == {"$or": [{"x": {"$lt": 5}}, {"x": None}]}
