"""GET /api/openapi.json: an OpenAPI 3.1 document built from the registered routes and their docs."""

from __future__ import annotations

import datetime as dt
import enum
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import attrs
from aiohttp import web

from handlers.codec import json_response, wire_name
from handlers.keys import OPENAPI

routes = web.RouteTableDef()

F = TypeVar("F", bound=Callable[..., Any])
Auth = Literal["bearer", "none", "sse"]

DOC_ATTRIBUTE = "__labhub_doc__"
_PATH_PARAM = re.compile(r"\{([^}:]+)(?::[^}]*)?\}")


@attrs.frozen
class RouteDoc:
    summary: str
    body: Any = None
    response: Any = None
    status: int = 200
    query: Any = None
    auth: Auth = "bearer"
    request_content_type: str = "application/json"
    response_content_type: str = "application/json"
    description: str = ""


def doc(summary: str, **options: Any) -> Callable[[F], F]:
    """Attach the request and response shapes of a handler; the OpenAPI test needs one per route."""

    def attach(handler: F) -> F:
        setattr(handler, DOC_ATTRIBUTE, RouteDoc(summary, **options))
        return handler

    return attach


class MissingRouteDoc(Exception):
    """A route was registered without @doc; the OpenAPI document would be incomplete."""


def _substitute(tp: Any, mapping: Mapping[Any, Any]) -> Any:
    if isinstance(tp, TypeVar):
        return mapping.get(tp, Any)
    args = typing.get_args(tp)
    if not args or not mapping:
        return tp
    new_args = tuple(_substitute(a, mapping) for a in args)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[new_args]  # noqa: UP007 - built from a runtime tuple
    if isinstance(tp, types.GenericAlias):
        return types.GenericAlias(origin, new_args)
    return tp.copy_with(new_args)


class SchemaBuilder:
    """JSON Schema (2020-12, as OpenAPI 3.1 uses it) for attrs models and plain types."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def schema(self, tp: Any) -> dict[str, Any]:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
        if tp in simple:
            return {"type": simple[tp]}
        if tp is bytes:
            return {"type": "string", "format": "binary"}
        if tp is dt.datetime:
            return {"type": "string", "format": "date-time"}
        if tp is dt.date:
            return {"type": "string", "format": "date"}
        if tp is Any or tp is object:
            return {}
        if tp is None or tp is type(None):
            return {"type": "null"}
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return {"type": "string", "enum": [m.value for m in tp]}
        if origin is Literal:
            return {"enum": list(args)}
        if origin in (typing.Union, types.UnionType):
            return {"anyOf": [self.schema(a) for a in args]}
        if origin in (list, tuple, set, frozenset, Sequence):
            return {"type": "array", "items": self.schema(args[0]) if args else {}}
        if origin in (dict, Mapping) or tp in (dict, Mapping):
            return {"type": "object", "additionalProperties": self.schema(args[1]) if args else {}}
        target = origin or tp
        if attrs.has(target):
            return self._model(target, args)
        raise TypeError(f"no JSON schema for {tp!r}")

    def _model(self, cls: type, args: tuple[Any, ...]) -> dict[str, Any]:
        name = cls.__name__ + "".join(getattr(a, "__name__", "Item") for a in args)
        if name not in self.components:
            self.components[name] = {}  # placeholder: models may refer to themselves
            mapping = dict(zip(getattr(cls, "__parameters__", ()), args, strict=False))
            hints = typing.get_type_hints(cls)
            properties = {}
            required = []
            for field in attrs.fields(cls):
                key = wire_name(field.alias or field.name)
                properties[key] = self.schema(_substitute(hints[field.name], mapping))
                if field.default is attrs.NOTHING:
                    required.append(key)
            schema: dict[str, Any] = {"type": "object", "properties": properties}
            if required:
                schema["required"] = required
            if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
                schema["description"] = cls.__doc__.strip().splitlines()[0]
            self.components[name] = schema
        return {"$ref": f"#/components/schemas/{name}"}


PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}


def documented_routes(app: web.Application) -> list[tuple[str, str, RouteDoc]]:
    """(path, method, doc) for every route a client can call; raises if one lacks @doc."""
    found = []
    for route in app.router.routes():
        if route.method in {"HEAD", "*"}:
            continue
        route_doc = getattr(route.handler, DOC_ATTRIBUTE, None)
        if route.method == "OPTIONS" and route_doc is None:
            continue  # CORS preflight handlers added by aiohttp-cors
        canonical = route.resource.canonical if route.resource else ""
        if route_doc is None:
            raise MissingRouteDoc(f"{route.method} {canonical} has no @doc")
        found.append((canonical, route.method, route_doc))
    return found


def _operation(path: str, method: str, route_doc: RouteDoc, builder: SchemaBuilder) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(path)
    ]
    if route_doc.query is not None:
        hints = typing.get_type_hints(route_doc.query)
        for field in attrs.fields(route_doc.query):
            parameters.append(
                {
                    "name": wire_name(field.name),
                    "in": "query",
                    "required": field.default is attrs.NOTHING,
                    "schema": builder.schema(hints[field.name]),
                }
            )
    if route_doc.auth == "sse":
        parameters.append(
            {"name": "ticket", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "SSE ticket from POST /api/auth/sse-ticket (EventSource cannot send headers)"}
        )  # fmt: skip
    operation: dict[str, Any] = {
        "summary": route_doc.summary,
        "operationId": f"{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', path.lower()).strip('_')}",
        "tags": [path.removeprefix("/api/").split("/")[0] or "system"],
        "parameters": parameters,
        "responses": {
            "default": {
                "description": "error",
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            }
        },
    }
    if route_doc.description:
        operation["description"] = route_doc.description
    if route_doc.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {route_doc.request_content_type: {"schema": builder.schema(route_doc.body)}},
        }
    success: dict[str, Any] = {"description": route_doc.summary}
    if route_doc.response is not None:
        schema = (
            builder.schema(route_doc.response)
            if route_doc.response_content_type == "application/json"
            else {"type": "string", "format": "binary"}
        )
        success["content"] = {route_doc.response_content_type: {"schema": schema}}
    operation["responses"][str(route_doc.status)] = success
    if route_doc.auth == "bearer":
        operation["security"] = [{"bearer": []}]
    elif route_doc.auth == "sse":
        operation["security"] = [{"bearer": []}, {"sse_ticket": []}]
    return operation


def build_openapi(app: web.Application, *, version: str) -> dict[str, Any]:
    builder = SchemaBuilder()
    paths: dict[str, dict[str, Any]] = {}
    for path, method, route_doc in documented_routes(app):
        paths.setdefault(path, {})[method.lower()] = _operation(path, method, route_doc, builder)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "LabHub API",
            "version": version,
            "description": "Self-hosted backend for research labs. Errors are application/problem+json.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Problem": PROBLEM_SCHEMA, **dict(sorted(builder.components.items()))},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "sse_ticket": {"type": "apiKey", "in": "query", "name": "ticket"},
            },
        },
    }


@routes.get("/api/openapi.json")
@doc("This OpenAPI 3.1 document", response=dict[str, Any], auth="none")
async def openapi_document(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI])
