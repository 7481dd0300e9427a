"""/api/records: structured project entries with filters, cursors and streamed exports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, Literal

import attrs
from aiohttp import web

from domain.core.pagination import Page
from domain.records.models import Record, RecordChanges, RecordInput, parse_record_query
from handlers.codec import json_response, parse_body, to_json
from handlers.export import stream_csv, stream_jsonl
from handlers.identity import require_user
from handlers.keys import RECORDS
from handlers.openapi import doc

routes = web.RouteTableDef()

BASE_COLUMNS = ("id", "kind", "title", "tags", "dataset_id", "created_by", "created_at", "updated_at")


@attrs.frozen
class RecordFilters:
    """Filters; also data.<field>=value, data.<field>__gte= and data.<field>__lte= for the record's data."""

    kind: list[str] | None = None
    tag: list[str] | None = None
    q: str | None = None
    created_by: str | None = None
    dataset_id: str | None = None
    created_at__gte: str | None = None
    created_at__lte: str | None = None
    updated_at__gte: str | None = None
    updated_at__lte: str | None = None
    sort: str | None = None
    limit: int | None = None
    cursor: str | None = None
    format: Literal["json", "csv", "jsonl"] | None = None


def _query_lists(request: web.Request) -> dict[str, list[str]]:
    return {key: request.query.getall(key) for key in set(request.query.keys())}


async def _csv_rows(data_keys: Sequence[str], records: AsyncIterator[Record]) -> AsyncIterator[list[Any]]:
    async for record in records:
        yield [
            record.id, record.kind, record.title, ";".join(record.tags), record.dataset_id,
            record.created_by, record.created_at, record.updated_at,
            *(record.data.get(key) for key in data_keys),
        ]  # fmt: skip


async def _json_items(records: AsyncIterator[Record]) -> AsyncIterator[Any]:
    async for record in records:
        yield to_json(record)


@routes.post("/api/projects/{pid}/records")
@doc("Create a record", body=RecordInput, response=Record, status=201)
async def create_record(request: web.Request) -> web.Response:
    actor = await require_user(request)
    body = await parse_body(request, RecordInput)
    return json_response(
        await request.app[RECORDS].create(actor, request.match_info["pid"], body), status=201
    )


@routes.get("/api/projects/{pid}/records")
@doc("Records with filters and sorting; format=csv|jsonl streams every match", query=RecordFilters,
     response=Page[Record], response_content_type=("application/json", "text/csv", "application/x-ndjson"))  # fmt: skip
async def list_records(request: web.Request) -> web.StreamResponse:
    actor = await require_user(request)
    query = parse_record_query(_query_lists(request))
    service = request.app[RECORDS]
    if query.format is None:
        return json_response(await service.list_records(actor, request.match_info["pid"], query))
    data_keys, records = await service.export(actor, request.match_info["pid"], query)
    if query.format == "csv":
        header = [*BASE_COLUMNS, *(f"data.{key}" for key in data_keys)]
        return await stream_csv(request, "records.csv", header, _csv_rows(data_keys, records))
    return await stream_jsonl(request, "records.jsonl", _json_items(records))


@routes.get("/api/records/{id}")
@doc("One record", response=Record)
async def get_record(request: web.Request) -> web.Response:
    actor = await require_user(request)
    record, _ = await request.app[RECORDS].get(actor, request.match_info["id"])
    return json_response(record)


@routes.patch("/api/records/{id}")
@doc("Change a record (author, leads, heads)", body=RecordChanges, response=Record)
async def patch_record(request: web.Request) -> web.Response:
    actor = await require_user(request)
    changes = await parse_body(request, RecordChanges)
    return json_response(await request.app[RECORDS].update(actor, request.match_info["id"], changes))


@routes.delete("/api/records/{id}")
@doc("Delete a record (author, leads, heads)", status=204)
async def delete_record(request: web.Request) -> web.Response:
    actor = await require_user(request)
    await request.app[RECORDS].delete(actor, request.match_info["id"])
    return web.Response(status=204)
