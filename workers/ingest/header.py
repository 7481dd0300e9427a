"""Where a table starts, shared by every tabular reader (text, Excel, LabVIEW).

Instrument exports put a title, a few `Key: value` lines, the column names, and often a row of units
above the numbers. The rows are classified cell by cell (number, text, empty); each column's type is
the one most rows near the end of the window agree on, and the table starts at the first row that
matches those types. Above it, nearest first: a row of units (short tokens such as `s`, `m/s`, `[N]`,
`(Pa)`) under a row of names, or a row of names, optionally under a row of group names (the merged
cells of a two-row Excel header); anything higher is a title or preamble and goes to the metadata.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

import attrs

from workers.ingest.common import is_number

NUMBER, TEXT, EMPTY = "n", "t", "e"
MISSING = {"na", "n/a", "nan", "null", "none", "-", "--", "?", "#n/a", "inf", "-inf", "+inf"}
_DATE_OR_TIME = re.compile(
    r"^(\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}([.,]\d+)?)?\s*([zZ]|[+-]\d{2}:?\d{2})?)?"
    r"|\d{1,2}:\d{2}(:\d{2}([.,]\d+)?)?)$"
)
_BRACKETED_UNIT = re.compile(r"^[\[(<{]\s*[^\[\]()<>{}]{0,24}\s*[\])>}]$")
_BARE_UNIT = re.compile(r"^[A-Za-zµμ°%‰Ωℓ'/*^·.\-+0-9²³⁻¹ ]{1,16}$")
_UNIT_PARTS = re.compile(r"[^\W\d_]+|[%‰°Ω]+")
# unit symbols (an SI prefix may come before them) and unit words, so that a row of short names such
# as "Time, Speed" is never taken for units while "s, m/s", "degC, kPa" and "m s-1" are
_SYMBOLS = {
    "m", "g", "s", "A", "K", "mol", "cd", "Hz", "N", "Pa", "J", "W", "C", "V", "F", "Ω", "ohm",
    "S", "Wb", "T", "H", "lm", "lx", "Bq", "Gy", "Sv", "kat", "L", "l", "rad", "sr", "eV", "bar",
    "min", "h", "Da",
}  # fmt: skip
_WORDS = {
    "deg", "degc", "degf", "degk", "°c", "°f", "°", "rpm", "psi", "psia", "psig", "atm", "torr",
    "mmhg", "inhg", "mbar", "hpa", "kpa", "mpa", "gpa", "ft", "in", "mi", "yd", "lb", "lbf", "lbs",
    "kn", "kt", "knot", "knots", "mph", "kph", "kmh", "kmph", "nmi", "%", "‰", "ppm", "ppb", "ppt",
    "db", "dbm", "dba", "dbv", "g0", "counts", "count", "cnt", "ct", "volt", "volts", "amp",
    "amps", "ampere", "amperes", "watt", "watts", "newton", "newtons", "pascal", "pascals",
    "second", "seconds", "sec", "secs", "meter", "meters", "metre", "metres", "gram", "grams",
    "kelvin", "celsius", "fahrenheit", "degree", "degrees", "hertz", "joule", "joules", "ohms",
    "ue", "µe", "με", "microstrain", "strain", "pct", "percent", "unitless", "dimensionless",
    "none", "hr", "hrs", "day", "days", "gal", "cal", "kcal", "btu", "hp", "wh", "kwh", "va",
    "var", "lux",
}  # fmt: skip
_SUPERSCRIPTS = str.maketrans("", "", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻⁺")
_PREFIXES = (
    "da",
    "Y",
    "Z",
    "E",
    "P",
    "T",
    "G",
    "M",
    "k",
    "h",
    "d",
    "c",
    "m",
    "µ",
    "μ",
    "u",
    "n",
    "p",
    "f",
    "a",
)


@attrs.frozen
class Header:
    """What was found in a window of rows (indices into it)."""

    start: int  # the first data row
    names_row: int | None = None
    units_row: int | None = None
    group_row: int | None = None
    skipped: list[int] = attrs.field(factory=list)  # title and preamble rows above the table
    names: list[str] | None = None  # one per column when a names row was found
    units: list[str | None] = attrs.field(factory=list)  # one per column ([] when no units row)

    @property
    def first(self) -> int:
        """The first row of the table, header rows included."""
        rows = [r for r in (self.group_row, self.names_row, self.units_row) if r is not None]
        return min(rows, default=self.start)


def text_kind(cell: str) -> str:
    value = cell.strip()
    if not value or value.lower() in MISSING:
        return EMPTY
    return NUMBER if is_number(value) or _DATE_OR_TIME.match(value) else TEXT


def cell_kind(cell: Any) -> str:
    """A spreadsheet cell's kind: typed numbers, dates and booleans count as numbers."""
    if cell is None:
        return EMPTY
    if isinstance(cell, bool | int | float | datetime | date | time | timedelta):
        return NUMBER
    return text_kind(str(cell))


def is_unit(cell: str) -> bool:
    """A unit as instruments write them: bracketed anything, or known symbols and words (`m/s`, `kN m`)."""
    value = cell.strip()
    if _BRACKETED_UNIT.match(value):
        return True
    if is_number(value) or not _BARE_UNIT.match(value) or len(value.split()) > 3:
        return False
    parts = _UNIT_PARTS.findall(value.translate(_SUPERSCRIPTS))
    return bool(parts) and all(_known_unit(part) for part in parts)


def _known_unit(part: str) -> bool:
    if part in _SYMBOLS or part.lower() in _WORDS:
        return True
    return any(part.startswith(p) and part[len(p) :] in _SYMBOLS for p in _PREFIXES if len(part) > len(p))


def unit_of(cell: str) -> str | None:
    value = cell.strip()
    if _BRACKETED_UNIT.match(value):
        value = value[1:-1].strip()
    return value if value and value.lower() not in MISSING else None


def find_header(
    rows: Sequence[Sequence[Any]],
    width: int,
    *,
    mode: str = "file",
    kind: Callable[[Any], str] = text_kind,
    ragged: bool = True,
) -> Header | None:
    """Where the table in `rows` starts and what is above it; None when no row has the table's width.

    Blank rows (empty lists) are kept in place: a names row and a units row are next to each other.
    `ragged`: rows may have other lengths than `width` (delimited text), and only rows of the table's
    width (or shorter by unnamed empty trailing columns) can be table rows.
    """
    kinds = [[kind(c) for c in row] + [EMPTY] * (width - len(row)) for row in rows]
    filled = [sum(k != EMPTY for k in row) for row in kinds]
    trailing_empty = _trailing_empty(rows, kinds, width) if ragged else 0

    def fits(i: int) -> bool:
        return filled[i] > 0 and (not ragged or width - trailing_empty <= len(rows[i]) <= width)

    candidates = [i for i in range(len(rows)) if fits(i)]
    if not candidates:
        return None
    profile = _profile(kinds, candidates[len(candidates) // 2 :], width)
    numeric = [c for c, k in enumerate(profile) if k == NUMBER]
    if not numeric:
        return _finish(_text_table(rows, kinds, candidates), rows, mode, width)
    tolerance = width // 4
    start = next(
        (
            i
            for i in candidates
            if sum(kinds[i][c] == TEXT for c in numeric) <= tolerance
            and any(kinds[i][c] == NUMBER for c in numeric)
        ),
        candidates[-1],
    )
    above = [i for i in candidates if i < start]
    names_row = units_row = group_row = None

    def names_like(i: int) -> bool:
        labels = ["" if c is None else str(c).strip() for c in rows[i]]
        return (
            all(k != NUMBER for k in kinds[i])
            and any(kinds[i][c] == TEXT for c in numeric)
            and not any(label.endswith(":") for label in labels)  # "Operator:" is a key, not a name
        )

    if (
        len(above) >= 2
        and above[-2] == above[-1] - 1
        and _units_like(rows[above[-1]])
        and names_like(above[-2])
    ):
        named = {c for c, k in enumerate(kinds[above[-2]]) if k == TEXT}
        if all(c in named for c, k in enumerate(kinds[above[-1]]) if k != EMPTY):
            names_row, units_row = above[-2], above[-1]
    if names_row is None and above and names_like(above[-1]):
        names_row = above[-1]
    if names_row is not None:
        earlier = [i for i in above if i < names_row]
        if earlier and earlier[-1] == names_row - 1 and _group_row(kinds[earlier[-1]], kinds[names_row]):
            group_row = earlier[-1]
    header = Header(start=start, names_row=names_row, units_row=units_row, group_row=group_row)
    return _finish(header, rows, mode, width)


def _trailing_empty(rows: Sequence[Sequence[Any]], kinds: list[list[str]], width: int) -> int:
    """How many columns at the right end are empty in every row of the table's width."""
    full = [k for row, k in zip(rows, kinds, strict=True) if len(row) == width]
    count = 0
    while count < width and full and all(k[width - 1 - count] == EMPTY for k in full):
        count += 1
    return count if count < width else 0


def _profile(kinds: list[list[str]], rows: list[int], width: int) -> list[str]:
    """Each column's kind: what most of the given rows that have a value there say."""
    profile = []
    for c in range(width):
        votes = Counter(kinds[i][c] for i in rows if kinds[i][c] != EMPTY)
        profile.append(votes.most_common(1)[0][0] if votes else EMPTY)
    return profile


def _units_like(row: Sequence[Any]) -> bool:
    cells = ["" if c is None else str(c).strip() for c in row]
    present = [c for c in cells if c and c.lower() not in MISSING]
    return bool(present) and all(is_unit(c) for c in present)


def _group_row(group: list[str], names: list[str]) -> bool:
    """Merged cells over a names row: at least two labels, some cells empty, every label over a name."""
    labels = [c for c, k in enumerate(group) if k != EMPTY]
    return (
        len(labels) >= 2
        and len(labels) < sum(k != EMPTY for k in names)
        and all(group[c] == TEXT and names[c] == TEXT for c in labels)
    )


def _text_table(rows: Sequence[Sequence[Any]], kinds: list[list[str]], candidates: list[int]) -> Header:
    """A table without numeric columns: the first full row is the header when it reads as one."""
    most = Counter(sum(k != EMPTY for k in kinds[i]) for i in candidates).most_common(1)[0][0]
    first = next((i for i in candidates if sum(k != EMPTY for k in kinds[i]) >= min(most, 2)), candidates[0])
    below = [i for i in candidates if i > first]
    names_row = first if _names_over_text(rows[first], [rows[i] for i in below[:50]]) else None
    start = below[0] if names_row is not None and below else first
    return Header(start=start, names_row=names_row)


def _names_over_text(first: Sequence[Any], rest: Sequence[Sequence[Any]]) -> bool:
    texts = ["" if v is None else str(v).strip() for v in first]
    named = [t for t in texts if t]
    return (
        bool(rest)
        and len(named) >= 1
        and len(set(named)) == len(named)
        and not any(is_number(t) for t in named)
    )


def _finish(header: Header, rows: Sequence[Sequence[Any]], mode: str, width: int) -> Header:
    skipped = [i for i in range(header.first) if any(str(c).strip() for c in rows[i] if c is not None)]
    if mode == "none":  # the file has no header: every row of the table is data
        return Header(start=header.first, skipped=skipped)
    names = None
    if header.names_row is not None:
        names = ["" if c is None else str(c).strip() for c in rows[header.names_row]]
        names += [""] * (width - len(names))
        if header.group_row is not None:
            names = _with_groups(rows[header.group_row], names)
    units: list[str | None] = []
    if header.units_row is not None:
        units = [None if c is None else unit_of(str(c)) for c in rows[header.units_row]]
        units += [None] * (width - len(units))
    return attrs.evolve(header, skipped=skipped, names=names, units=units)


def _with_groups(group: Sequence[Any], names: list[str]) -> list[str]:
    """'Inlet' over 'T' and 'p' (a merged cell) -> 'Inlet T', 'Inlet p'."""
    label, combined = "", []
    for c, name in enumerate(names):
        cell = group[c] if c < len(group) else None
        if cell is not None and str(cell).strip():
            label = str(cell).strip()
        combined.append(f"{label} {name}".strip() if name else name)
    return combined
