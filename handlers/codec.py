"""The JSON edge: a strict cattrs converter, body and query parsing, JSON responses."""

from __future__ import annotations

import enum
import itertools
import json
import keyword
import math
import re
import typing
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any, TypeVar

import cattrs
import orjson
from aiohttp import web
from cattrs.cols import list_structure_factory
from cattrs.preconf.json import make_converter

from domain.core.clock import RANGE_MESSAGE, in_range
from domain.core.errors import BadRequest, InvalidInput
from handlers.keys import SETTINGS

T = TypeVar("T")

converter = make_converter(forbid_extra_keys=True)


def _strict(expected: type, name: str) -> Any:
    def hook(value: object, type_: type) -> Any:
        # bool is an int in Python; JSON true is not a number here
        if isinstance(value, expected) and not (expected is not bool and isinstance(value, bool)):
            # registered for str, so it also receives str-based enums such as Role
            return value if type_ is expected else type_(value)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"expected {name}")

    return hook


def _is_list(type_: Any) -> bool:
    return typing.get_origin(type_) is list or type_ is list


def _arrays_only(type_: Any) -> Any:
    """Lists come from JSON arrays only: cattrs would iterate a string or an object into one
    (a string "ab" into ["a", "b"])."""
    inner = list_structure_factory(type_, converter)

    def hook(value: object, target: Any) -> Any:
        if not isinstance(value, list):
            raise ValueError("expected an array")  # noqa: TRY004 - cattrs reports ValueErrors as the field's error
        return inner(value, target)

    return hook


converter.register_structure_hook_factory(_is_list, _arrays_only)
converter.register_structure_hook(str, _strict(str, "a string"))
converter.register_structure_hook(int, _strict(int, "an integer"))
converter.register_structure_hook(float, _strict(float, "a number"))
converter.register_structure_hook(bool, _strict(bool, "true or false"))


def _date(value: object, _type: type) -> date:
    if isinstance(value, str) and len(value) == 10:
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            pass
        else:
            if not in_range(parsed):
                raise ValueError(RANGE_MESSAGE)
            return parsed
    raise ValueError("expected a date such as 2026-03-01")


def _datetime(value: object, _type: type) -> datetime:
    if isinstance(value, str) and len(value) > 10:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if parsed.tzinfo is None:
                raise ValueError("needs a timezone: end it with Z or an offset such as +01:00")
            if not in_range(parsed):
                raise ValueError(RANGE_MESSAGE)
            return parsed
    raise ValueError("expected a date-time with a timezone, such as 2026-03-01T14:00:00+01:00")


INT64 = (-(2**63), 2**63 - 1)


def _int64(text: str) -> int:
    # checked before converting: Python refuses to convert more than 4300 digits (a ValueError),
    # and MongoDB stores no integer past 64 bits
    value = int(text) if len(text) <= 20 else INT64[1] + 1
    if not INT64[0] <= value <= INT64[1]:
        raise ValueError(f"the integer {text[:24]}{'...' if len(text) > 24 else ''} does not fit in 64 bits")
    return value


# query strings are text: numbers and booleans are parsed from it
query_converter = make_converter(forbid_extra_keys=False)
_INTEGER = re.compile(r"[+-]?[0-9]+")


def _query_int(value: object, _type: type) -> int:
    text = str(value).strip()
    if not _INTEGER.fullmatch(text):
        raise ValueError("expected an integer")
    return _int64(text)


def _query_bool(value: object, _type: type) -> bool:
    text = str(value).lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise ValueError("expected true or false")


query_converter.register_structure_hook(int, _query_int)
query_converter.register_structure_hook(bool, _query_bool)

# times in JSON are ISO 8601 and carry their timezone (docs/architecture.md, "JSON and data"); dates are plain calendar days;
# both within clock.YEARS, in bodies and in query strings alike
for _converter in (converter, query_converter):
    _converter.register_structure_hook(date, _date)
    _converter.register_structure_hook(datetime, _datetime)


def _describe(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, cattrs.ForbiddenExtraKeysError):
        return f"unknown field(s): {', '.join(sorted(exc.extra_fields))}"
    if isinstance(exc, KeyError):
        return "required field missing"
    for candidate in (type_, *typing.get_args(type_)):
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return "must be one of " + ", ".join(repr(m.value) for m in candidate)
    if isinstance(exc, ValueError | TypeError) and str(exc):
        return str(exc)
    return "invalid value"


def validation_error(exc: cattrs.BaseValidationError, root: str = "$") -> InvalidInput:
    errors = []
    for line in cattrs.transform_error(exc, path=root, format_exception=_describe):
        message, _, path = line.rpartition(" @ ")
        path = ".".join(wire_name(part) for part in path.split("."))
        errors.append({"path": path or root, "message": message or line})
    summary = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:3])
    return InvalidInput(f"request does not match the expected shape: {summary}", errors=errors)


def structure(data: object, cls: type[T], *, root: str = "$") -> T:
    try:
        return converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        raise validation_error(exc, root) from None
    except (ValueError, TypeError) as exc:
        raise InvalidInput(str(exc), errors=[{"path": root, "message": str(exc)}]) from None


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_NESTING = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def nests_deeper_than(raw: bytes, limit: int) -> bool:
    """Whether arrays and objects in a JSON text nest deeper than limit, counted without recursion
    (brackets inside strings do not count)."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False  # it cannot nest deeper than it has brackets: nearly every body stops here
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return any(depth > limit for depth in itertools.accumulate(_NESTING[b] for b in brackets))


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 would come out as infinity
        raise ValueError(f"the number {text[:24]} is out of range")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def loads_json(raw: bytes, *, max_depth: int) -> Any:
    """A JSON text from a client: too deep (checked before parsing, which recurses), malformed, out
    of range numbers, NaN/Infinity and unpaired surrogates are all 400s, never 500s."""
    if nests_deeper_than(raw, max_depth):
        raise BadRequest(f"the JSON body nests deeper than {max_depth} levels", code="too_deep")
    try:
        data = json.loads(raw, parse_int=_int64, parse_float=_finite, parse_constant=_no_constant)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest(f"request body is not valid JSON: {exc}", code="malformed_json") from None
    if _SURROGATE_ESCAPE.search(raw):  # rare: only then is the text checked for unpaired halves
        try:
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise BadRequest(
                "request body is not valid JSON: a \\u escape holds half of a UTF-16 surrogate pair",
                code="malformed_json",
            ) from None
    return data


async def parse_body(request: web.Request, cls: type[T]) -> T:
    """The request's JSON object as cls; malformed JSON is 400, a wrong shape 422."""
    raw = await request.read()
    data = loads_json(raw or b"null", max_depth=request.app[SETTINGS].http.max_json_depth)
    if not isinstance(data, dict):
        raise InvalidInput(
            "request body must be a JSON object", errors=[{"path": "$", "message": "expected an object"}]
        )
    return structure({field_name(k): v for k, v in data.items()}, cls)


def wire_name(field_name: str) -> str:
    """A field named after a Python keyword is spelled with a trailing _ (from_ is ?from= or "from")."""
    return field_name[:-1] if keyword.iskeyword(field_name[:-1]) else field_name


def field_name(wire: str) -> str:
    return f"{wire}_" if keyword.iskeyword(wire) else wire


def parse_query(request: web.Request, cls: type[T]) -> T:
    data: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        data[field_name(key)] = values if len(values) > 1 else values[0]
    try:
        return query_converter.structure(data, cls)
    except cattrs.BaseValidationError as exc:
        raise validation_error(exc, root="query") from None


def to_json(obj: Any) -> Any:
    return converter.unstructure(obj)


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# responses are written by orjson, which writes datetimes and dates itself, exactly as isoformat()
# does, and enums as their values, several times faster than a Python hook per value: they pass
# through unstructuring
_response_converter = converter.copy()
_response_converter.register_unstructure_hook(datetime, lambda value: value)
_response_converter.register_unstructure_hook(date, lambda value: value)
_response_converter.register_unstructure_hook_func(  # enums too: orjson writes their values
    lambda cls: isinstance(cls, type) and issubclass(cls, enum.Enum), lambda value: value
)


def json_response(obj: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    # orjson: compact UTF-8 like json.dumps(ensure_ascii=False, separators=(",", ":")), several times
    # faster; NaN and infinities become null (json.dumps would write NaN, which is not JSON)
    body = orjson.dumps(
        _response_converter.unstructure(obj), default=_default, option=orjson.OPT_NON_STR_KEYS
    )
    return web.Response(
        body=body, status=status, content_type="application/json", charset="utf-8", headers=headers
    )
