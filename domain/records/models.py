"""Records: structured project entries, their validation and the list filters (no operator injection)."""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from domain.core.clock import RANGE_MESSAGE, in_range
from domain.core.errors import InvalidInput, field_error
from domain.core.ids import check_dataset_ids
from domain.core.pagination import clamp_limit

MAX_KIND = 64
MAX_TITLE = 300
MAX_TAGS = 32
MAX_TAG = 64
MAX_DATA_BYTES = 64 * 1024
MAX_DATA_DEPTH = 6
MAX_KEY = 128
_OBJECT_ID = re.compile(r"^[0-9a-f]{24}$")
# a data key or a segment of a data.<path> filter: no $ (operators), no dots (paths), no controls
_DATA_KEY = re.compile(r"^[^$.\x00-\x1f]{1,128}$")
SORTABLE = frozenset({"kind", "title", "created_at", "updated_at", "created_by"})
_CONTROL_PARAMS = frozenset({"limit", "cursor", "sort", "format"})


@attrs.frozen
class Record:
    id: str
    project_id: str
    kind: str
    title: str
    data: dict[str, Any]
    tags: list[str]
    dataset_id: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    dataset_ids: list[str] = attrs.field(factory=list)  # the datasets it cites (docs/architecture.md, "Lineage")


@attrs.frozen
class RecordInput:
    kind: str
    title: str
    data: dict[str, Any] = attrs.field(factory=dict)
    tags: list[str] = attrs.field(factory=list)
    dataset_id: str | None = None
    dataset_ids: list[str] = attrs.field(factory=list)


@attrs.frozen
class RecordChanges:
    """A PATCH of a record; None leaves a field as is (data and tags are replaced whole)."""

    kind: str | None = None
    title: str | None = None
    data: dict[str, Any] | None = None
    tags: list[str] | None = None
    dataset_id: str | None = None
    dataset_ids: list[str] | None = None


class Op(enum.StrEnum):
    IN = "in"  # any of the values
    ALL = "all"  # every value (tags)
    CONTAINS = "contains"  # case-insensitive substring (title)
    GTE = "gte"
    LTE = "lte"
    LT = "lt"


@attrs.frozen
class Condition:
    field: str
    op: Op
    value: Any


@attrs.frozen
class RecordQuery:
    conditions: tuple[Condition, ...]
    sort_field: str = "created_at"
    descending: bool = True
    limit: int = 50
    cursor: str | None = None
    format: str | None = None


def _text(value: str, path: str, maximum: int) -> str:
    text = " ".join(value.split())
    if not text:
        raise field_error(path, "must not be empty")
    if len(text) > maximum:
        raise field_error(path, f"must be at most {maximum} characters")
    return text


def _check_data(value: Any, path: str, depth: int = 0) -> None:
    if depth > MAX_DATA_DEPTH:
        raise field_error(path, f"nests deeper than {MAX_DATA_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or not _DATA_KEY.match(key):
                raise field_error(
                    f"{path}.{key}", "keys must be 1-128 characters without '$', '.' or control characters"
                )
            _check_data(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_data(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise field_error(path, "numbers must be finite")


def check_data(data: dict[str, Any]) -> dict[str, Any]:
    _check_data(data, "$.data")
    if len(json.dumps(data, default=str)) > MAX_DATA_BYTES:
        raise field_error("$.data", f"must be at most {MAX_DATA_BYTES // 1024} KiB as JSON")
    return data


def check_tags(tags: list[str]) -> list[str]:
    cleaned = list(dict.fromkeys(_text(t, f"$.tags[{i}]", MAX_TAG) for i, t in enumerate(tags)))
    if len(cleaned) > MAX_TAGS:
        raise field_error("$.tags", f"at most {MAX_TAGS} tags")
    return cleaned


def check_dataset_id(value: str | None) -> str | None:
    if value is not None and not _OBJECT_ID.match(value):
        raise field_error("$.dataset_id", "must be a dataset id (24 hexadecimal characters)")
    return value


def checked_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the given record fields (creation or a PATCH) and return them cleaned."""
    checks: dict[str, Callable[[Any], Any]] = {
        "kind": lambda v: _text(v, "$.kind", MAX_KIND),
        "title": lambda v: _text(v, "$.title", MAX_TITLE),
        "data": check_data,
        "tags": check_tags,
        "dataset_id": check_dataset_id,
        "dataset_ids": check_dataset_ids,
    }
    return {name: checks[name](value) for name, value in values.items() if value is not None}


# -- list filters ------------------------------------------------------------------------------------


def _bad(param: str, message: str) -> InvalidInput:
    return InvalidInput(f"{param}: {message}", errors=[{"path": f"query.{param}", "message": message}])


def data_path(field: str, param: str) -> str:
    segments = field.split(".")[1:]
    if not segments or len(segments) > MAX_DATA_DEPTH or not all(_DATA_KEY.match(s) for s in segments):
        raise _bad(param, "data filters look like data.<field>[.<field>...] without '$' or empty parts")
    return field


def _datetime(text: str, param: str, op: Op) -> tuple[Op, datetime]:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise _bad(
            param, "expected an ISO 8601 date or date-time, e.g. 2026-03-01 or 2026-03-01T12:00:00Z"
        ) from None
    if not in_range(value):
        raise _bad(param, RANGE_MESSAGE)
    date_only = len(text.strip()) == 10
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if date_only and op is Op.LTE:
        return Op.LT, value + timedelta(days=1)  # "up to 2026-03-01" includes that whole day
    return op, value


def scalar_candidates(text: str) -> list[Any]:
    """A query-string value may stand for a string, a number or a boolean in the data."""
    candidates: list[Any] = [text]
    lowered = text.strip().lower()
    if lowered in {"true", "false"}:
        candidates.append(lowered == "true")
    try:
        number = float(text)
    except ValueError:
        return candidates
    if math.isfinite(number):
        candidates.append(int(number) if number.is_integer() else number)
    return candidates


def _bound(text: str) -> Any:
    """A range bound compares as a number when it reads as one, else as a date-time, else as text."""
    try:
        number = float(text)
        if math.isfinite(number):
            return number
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    except ValueError:
        return text


_FILTERS = frozenset({"kind", "tag", "q", "created_by", "dataset_id", "created_at", "updated_at"})


def _range_condition(param: str, field: str, op: Op, value: str) -> Condition:
    if field in {"created_at", "updated_at"}:
        real_op, bound = _datetime(value, param, op)
        return Condition(field, real_op, bound)
    if not field.startswith("data."):
        raise _bad(param, "ranges work on created_at, updated_at and data.<field>")
    return Condition(field, op, _bound(value))


def _equality_condition(param: str, field: str, values: Sequence[str]) -> Condition:
    if field in {"created_at", "updated_at"}:
        raise _bad(param, "use created_at__gte / created_at__lte for date ranges")
    if field in {"created_by", "dataset_id"} and not _OBJECT_ID.match(values[0]):
        raise _bad(param, "expected an id (24 hexadecimal characters)")
    by_field = {
        "kind": lambda: Condition("kind", Op.IN, list(values)),
        "tag": lambda: Condition("tags", Op.ALL, list(values)),
        "q": lambda: Condition("title", Op.CONTAINS, values[0]),
        "created_by": lambda: Condition(field, Op.IN, [values[0]]),
        "dataset_id": lambda: Condition(field, Op.IN, [values[0]]),
    }
    if field in by_field:
        return by_field[field]()
    return Condition(field, Op.IN, scalar_candidates(values[0]))


def _condition(param: str, values: Sequence[str]) -> Condition:
    field, _, suffix = param.partition("__")
    if suffix not in {"", "gte", "lte"}:
        raise _bad(param, "the only filter suffixes are __gte and __lte")
    if field.startswith("data."):
        data_path(field, param)
    elif field not in _FILTERS:
        raise _bad(param, "unknown filter")
    if len(values) > 1 and (suffix or field not in {"kind", "tag"}):
        raise _bad(param, "give this filter once")
    if suffix:
        return _range_condition(param, field, Op(suffix), values[0])
    return _equality_condition(param, field, values)


def _last(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    return values[-1] if values else None


def parse_record_query(params: Mapping[str, Sequence[str]]) -> RecordQuery:
    """Turn query parameters into validated conditions; unknown or unsafe names are a 422."""
    conditions = tuple(_condition(p, v) for p, v in params.items() if p not in _CONTROL_PARAMS)
    sort = _last(params, "sort") or "-created_at"
    field = sort.removeprefix("-")
    if field.startswith("data."):
        data_path(field, "sort")
    elif field not in SORTABLE:
        raise _bad(
            "sort", f"sort by one of {', '.join(sorted(SORTABLE))} or data.<field>, with - for descending"
        )
    export = _last(params, "format")
    if export not in {None, "csv", "jsonl", "json"}:
        raise _bad("format", "format is csv or jsonl")
    limit_text = _last(params, "limit")
    try:
        limit = clamp_limit(int(limit_text) if limit_text is not None else None)
    except ValueError:
        raise _bad("limit", "expected an integer") from None
    return RecordQuery(
        conditions=conditions,
        sort_field=field,
        descending=sort.startswith("-"),
        limit=limit,
        cursor=_last(params, "cursor"),
        format=None if export == "json" else export,
    )
