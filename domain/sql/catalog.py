"""Table names people can type (docs/architecture.md, "SQL").

A dataset is the table `<project>.<dataset>`: both parts are the names made lower case, with every
run of characters other than letters and digits turned into one `_` (accents dropped, a leading
digit prefixed with `t_`, an SQL keyword suffixed with `_data`); the dataset's name loses its file
extension and keeps its sheet or group ("Run 01.csv" → `run_01`, "book.xlsx — Sheet1" →
`book_sheet1`). When two projects (or two datasets of one project) come out the same, the older
keeps the plain name and the younger ones get `_2`, `_3`, … in the order they were made, so a name
never changes while the thing it names and the older ones exist. With a project named in the request,
its tables answer without the project part too. `ds_<dataset id>` always names a dataset, and
`datasets` is the catalog of every table the caller may read.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from pathlib import PurePosixPath

import attrs

CATALOG_TABLE = "datasets"
ID_TABLE = re.compile(r"^ds_([0-9a-f]{24})$")
PART_SEPARATOR = " — "  # how an ingestion names a sheet's or a group's dataset: "file — part"
KEYWORDS = frozenset(["all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asof", "between", "both", "by", "case", "cast", "check", "collate", "column", "constraint", "create", "cross", "current_date", "current_time", "current_timestamp", "current_user", "default", "deferrable", "desc", "describe", "distinct", "do", "else", "end", "except", "false", "fetch", "filter", "for", "foreign", "from", "full", "glob", "group", "having", "ilike", "in", "initially", "inner", "intersect", "into", "is", "join", "lambda", "lateral", "leading", "left", "like", "limit", "natural", "not", "null", "offset", "on", "only", "or", "order", "outer", "over", "partition", "pivot", "placing", "positional", "primary", "qualify", "range", "references", "returning", "right", "rows", "select", "semi", "anti", "session_user", "show", "similar", "some", "summarize", "symmetric", "table", "tablesample", "then", "to", "trailing", "true", "union", "unique", "unpivot", "user", "using", "values", "variadic", "when", "where", "window", "with", "within"])  # fmt: skip


def slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    name = re.sub(r"[^a-z0-9]+", "_", plain).strip("_") or "t"
    if name[0].isdigit():
        name = f"t_{name}"
    if name in KEYWORDS or name == CATALOG_TABLE or ID_TABLE.match(name):
        name = f"{name}_data"
    return name[:120]


def dataset_slug(name: str) -> str:
    file, _, part = name.partition(PART_SEPARATOR)
    stem = PurePosixPath(file.strip()).stem if "." in file.strip() else file.strip()
    return slug(f"{stem} {part}" if part else stem)


@attrs.frozen
class Named:
    """Something that gets a table name: its id, its own name, when it was made."""

    id: str
    name: str
    created_at: datetime


def assign(items: Iterable[Named], *, dataset: bool = False) -> dict[str, str]:
    """id -> name: the older of two with the same slug keeps it, the younger get _2, _3, …"""
    make = dataset_slug if dataset else slug
    taken: dict[str, str] = {}
    names: dict[str, str] = {}
    for item in sorted(items, key=lambda i: (i.created_at, i.id)):
        base = make(item.name)
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}_{n}"
        taken[candidate] = item.id
        names[item.id] = candidate
    return names
