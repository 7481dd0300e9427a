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
# response types described by a schema of their values; others are documented as bytes. An event
# stream's schema describes one event, as OpenAPI 3.1 tools read text/event-stream (3.2's itemSchema)
STRUCTURED_CONTENT = frozenset({"application/json", "text/event-stream"})
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
    other_bodies: Mapping[str, Any] = attrs.field(factory=dict)  # media type -> body, also accepted
    # one media type, or several when a query parameter or the stored file chooses (the first is the default)
    response_content_type: str | tuple[str, ...] = "application/json"
    description: str = ""
    # other successful answers without a body, e.g. {204: "nothing more to send"}
    also: Mapping[int, str] = attrs.field(factory=dict)


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


NOT_API_ATTRIBUTE = "__labhub_not_api__"


def not_api(handler: F) -> F:
    """Mark a handler that is not part of the API (the console's static files)."""
    setattr(handler, NOT_API_ATTRIBUTE, True)
    return handler


def documented_routes(app: web.Application) -> list[tuple[str, str, RouteDoc]]:
    """(path, method, doc) for every route a client can call; raises if one lacks @doc."""
    found = []
    for route in app.router.routes():
        if route.method in {"HEAD", "*"} or getattr(route.handler, NOT_API_ATTRIBUTE, False):
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
            "content": {
                media_type: {"schema": builder.schema(body)}
                for media_type, body in {
                    route_doc.request_content_type: route_doc.body,
                    **route_doc.other_bodies,
                }.items()
            },
        }
    success: dict[str, Any] = {"description": route_doc.summary}
    if route_doc.response is not None:
        media_types = route_doc.response_content_type
        success["content"] = {
            media_type: {
                "schema": builder.schema(route_doc.response)
                if media_type in STRUCTURED_CONTENT
                else {"type": "string", "format": "binary"}
            }
            for media_type in ((media_types,) if isinstance(media_types, str) else media_types)
        }
    operation["responses"][str(route_doc.status)] = success
    for status, description in route_doc.also.items():
        operation["responses"][str(status)] = {"description": description}
    if route_doc.auth == "bearer":
        operation["security"] = [{"bearer": []}]
    elif route_doc.auth == "sse":
        operation["security"] = [{"bearer": []}, {"sse_ticket": []}]
    return operation


def _collection(path: str) -> str:
    """The resource a path names last: /api/projects/{pid}/documents -> documents."""
    return next(part for part in reversed(path.split("/")) if part and not part.startswith("{"))


def _id_pointers(schema: dict[str, Any], components: dict[str, Any], path: str) -> dict[str, str]:
    """collection -> JSON pointer of an id in a response: its own `id` (of the path's resource),
    `<thing>_id` fields (of things; not project_id, which everything inside a project carries, so
    it would link every response to every project route), the first item of `items` (of the path's
    resource) or of other lists of objects with ids (of the list's name)."""

    def properties(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref", "")
        node = components.get(ref.rsplit("/", 1)[-1], node) if ref else node
        found: dict[str, Any] = node.get("properties", {})
        return found

    pointers: dict[str, str] = {}
    for name, value in properties(schema).items():
        if name == "id":
            pointers.setdefault(_collection(path), "/id")
        elif name.endswith("_id") and name != "project_id" and value.get("type") == "string":
            pointers.setdefault(name.removesuffix("_id") + "s", f"/{name}")
        elif value.get("type") == "array" and "id" in properties(value.get("items", {})):
            pointers.setdefault(_collection(path) if name == "items" else name, f"/{name}/0/id")
    return pointers


def add_links(paths: dict[str, dict[str, Any]], components: dict[str, Any]) -> None:
    """OpenAPI links from every response that carries an id to the operations that take it, so that
    clients and fuzzers can follow a created (or listed) thing to its own routes."""
    for source_path, operations in paths.items():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                if not status.startswith("2") or schema is None:
                    continue
                links = {}
                for collection, pointer in _id_pointers(schema, components, source_path).items():
                    prefix = f"/api/{collection}/{{"
                    for target_path, targets in paths.items():
                        if not target_path.startswith(prefix) or target_path == source_path:
                            continue
                        parameter = _PATH_PARAM.findall(target_path)[0]
                        for target in targets.values():
                            links[target["operationId"]] = {
                                "operationId": target["operationId"],
                                "parameters": {parameter: f"$response.body#{pointer}"},
                            }
                if links:
                    response["links"] = links


def build_openapi(app: web.Application, *, version: str) -> dict[str, Any]:
    builder = SchemaBuilder()
    paths: dict[str, dict[str, Any]] = {}
    for path, method, route_doc in documented_routes(app):
        paths.setdefault(path, {})[method.lower()] = _operation(path, method, route_doc, builder)
    add_links(paths, builder.components)
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
