"""Streamed CSV and JSON Lines exports; CSV cells that a spreadsheet would run are neutralised."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Sequence
from datetime import date
from typing import Any

from aiohttp import web

from handlers.downloads import content_disposition
from workers.datasets import FORMULA_STARTS

BATCH_ROWS = 500


def safe_cell(value: Any) -> Any:
    """A CSV cell: text starting with = + - @ tab or CR gets a leading ' so it is never a formula.

    Real numbers are written as numbers (a negative temperature stays a number); everything a
    user typed is text and is checked.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, date):  # and datetime
        return value.isoformat()
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


async def _start(request: web.Request, content_type: str, filename: str) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": content_type,
            "Content-Disposition": content_disposition(filename),
            "Cache-Control": "no-store",
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    return response


async def stream_csv(
    request: web.Request, filename: str, header: Sequence[str], rows: AsyncIterator[Sequence[Any]]
) -> web.StreamResponse:
    response = await _start(request, "text/csv; charset=utf-8", filename)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([safe_cell(h) for h in header])
    count = 0
    async for row in rows:
        writer.writerow([safe_cell(v) for v in row])
        count += 1
        if count % BATCH_ROWS == 0:
            await response.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response


async def stream_jsonl(request: web.Request, filename: str, items: AsyncIterator[Any]) -> web.StreamResponse:
    response = await _start(request, "application/x-ndjson; charset=utf-8", filename)
    lines: list[str] = []
    async for item in items:
        lines.append(json.dumps(item, ensure_ascii=False, default=str))
        if len(lines) >= BATCH_ROWS:
            await response.write(("\n".join(lines) + "\n").encode())
            lines = []
    if lines:
        await response.write(("\n".join(lines) + "\n").encode())
    await response.write_eof()
    return response
