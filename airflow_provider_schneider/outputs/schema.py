"""One schema for a whole pull, inferred from every record (stdlib: pyarrow is only needed to write it).

Kinds follow the JSON the API sent, never guessed from text (a ``"3599"`` stays a string, a date stays a
string: dates arrive in several shapes and a wrong guess would lose data). A field first seen on page 9 or
null on page 1 simply joins the schema; an integer column that also holds floats becomes float; nested
objects and lists stay nested (an order's ``items`` is a list of structs). Where the JSON types really
conflict (a string here, an object there; a bool and a number), or an object has more than
:data:`MAX_STRUCT_FIELDS` distinct keys (a map keyed by ids), the column holds each value's JSON text
instead: nothing is lost or coerced, and ``json.loads`` gives the value back. Top-level fields are capped
too: a pull with more than :data:`MAX_COLUMNS` distinct field names is keyed by data, and then a name keeps its
own column only if it is one of the first :data:`MAX_COLUMNS` and present in at least
:data:`MIN_PRESENCE_PERCENT` % of the records; a record's other fields go, as one JSON object's text, into a
single overflow column (:attr:`RecordSchema.overflow_column`).
"""

from __future__ import annotations

import json
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

#: JSON integers outside [-INT64_LIMIT, INT64_LIMIT) do not fit a Parquet int64.
INT64_LIMIT = 1 << 63
#: An object with more distinct keys than this over a pull is a map keyed by data (ids, dates), not a record
#: shape: it becomes JSON text, so the schema (and memory) cannot grow with the data.
MAX_STRUCT_FIELDS = 1_000
#: Top-level columns of a pull (first-seen order): records keyed by data (one id per field) would otherwise
#: give a column per record, a quadratic CSV and a Parquet schema that does not fit in memory.
MAX_COLUMNS = 1_000
#: Once a pull has more names than :data:`MAX_COLUMNS`, a column present in fewer records than this share is
#: folded too (a key of the data, not of the shape): a CSV holds at most ~100 empty cells per value.
MIN_PRESENCE_PERCENT = 1
#: The overflow column's name (``_overflow_1``, ``_overflow_2`` ... when a real column has it).
OVERFLOW_COLUMN = "_overflow"


@dataclass
class Kind:
    """``name``: null, bool, int, float, string, list, struct, or json (conflicting types); ``date`` only when
    declared (:mod:`.declared`)."""

    name: str = "null"
    item: Kind | None = None
    fields: dict[str, Kind] = field(default_factory=dict)


def kind_of(value: Any) -> Kind:
    if value is None:
        return Kind()
    if isinstance(value, bool):
        return Kind("bool")
    if isinstance(value, int):
        return Kind("int") if -INT64_LIMIT <= value < INT64_LIMIT else Kind("json")
    if isinstance(value, float):
        return Kind("float")
    if isinstance(value, str):
        return Kind("string")
    if isinstance(value, dict):
        if len(value) > MAX_STRUCT_FIELDS:
            return Kind("json")
        return Kind("struct", fields={str(k): kind_of(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        item = Kind()
        for element in value:
            item = merge(item, kind_of(element))
        return Kind("list", item=item)
    return Kind("string")  # anything else is written as its text


def merge(a: Kind, b: Kind) -> Kind:
    """The narrowest kind holding values of both."""
    if a.name == "null":
        return b
    if b.name == "null" or a.name == "json":
        return a
    if {a.name, b.name} == {"int", "float"}:
        return Kind("float")
    if a.name != b.name:
        return Kind("json")
    if a.name == "list":
        assert a.item is not None and b.item is not None
        return Kind("list", item=merge(a.item, b.item))
    if a.name == "struct":
        fields = dict(a.fields)
        for name, kind in b.fields.items():
            fields[name] = merge(fields[name], kind) if name in fields else kind
        return Kind("struct", fields=fields) if len(fields) <= MAX_STRUCT_FIELDS else Kind("json")
    return a


class RecordSchema:
    """The union of top-level fields (first-seen order, the first ``max_columns`` names) and their merged
    kinds over every record, with the records each is present in; ``untracked`` counts the fields of names
    beyond them."""

    def __init__(self, max_columns: int = MAX_COLUMNS) -> None:
        self.columns: dict[str, Kind] = {}
        self.present: dict[str, int] = {}
        self.max_columns = max_columns
        self.records = 0
        self.untracked = 0

    def observe(self, record: Any) -> None:
        row = record if isinstance(record, dict) else {"value": record}
        columns, present = self.columns, self.present
        self.records += 1
        for name, value in row.items():
            key = str(name)
            current = columns.get(key)
            if current is not None:
                columns[key] = merge(current, kind_of(value))
                present[key] += 1
            elif len(columns) < self.max_columns:
                columns[key] = kind_of(value)
                present[key] = 1
            else:  # never a column: the schema is full (it only grows), so no kind is kept either
                self.untracked += 1

    def kept(self) -> list[str]:
        """The names written as columns: all of them, unless the pull has more than ``max_columns`` names;
        then those present in at least :data:`MIN_PRESENCE_PERCENT` % of the records."""
        if not self.untracked:
            return list(self.columns)
        return [name for name, count in self.present.items() if count * 100 >= self.records * MIN_PRESENCE_PERCENT]

    @property
    def overflow_keys(self) -> int:
        """Fields written into the overflow column (each field of each record once)."""
        if not self.untracked:
            return 0
        kept = set(self.kept())
        return self.untracked + sum(count for name, count in self.present.items() if name not in kept)

    @property
    def overflow_column(self) -> str | None:
        """The name of the column of folded fields (never a column's name: ``_overflow_1`` if a column has
        ``_overflow``), or ``None`` when there is none."""
        if not self.untracked:
            return None
        name, suffix = OVERFLOW_COLUMN, 0
        while name in self.columns:
            suffix += 1
            name = f"{OVERFLOW_COLUMN}_{suffix}"
        return name

    def final(self) -> dict[str, Kind]:
        """The columns as written: all-null as string, an object that never had a field as JSON text
        (Parquet cannot store a struct without fields). The overflow column is not among them."""
        return {name: normalized(self.columns[name]) for name in self.kept()}

    def describe(self) -> dict[str, str]:
        """Column -> kind, for the manifest (``list<struct>``, ``json`` ...); the overflow column last."""
        described = {name: _describe(kind) for name, kind in self.final().items()}
        overflow = self.overflow_column
        if overflow is not None:
            described[overflow] = "json"
        return described


def folded_fields(row: dict[str, Any], columns: Container[str]) -> dict[str, Any] | None:
    """The fields of ``row`` that are not ``columns`` (an overflow cell), or ``None``."""
    return {name: value for name, value in row.items() if name not in columns} or None


def normalized(kind: Kind) -> Kind:
    if kind.name == "null":
        return Kind("string")
    if kind.name == "list":
        assert kind.item is not None
        return Kind("list", item=normalized(kind.item))
    if kind.name == "struct":
        if not kind.fields:
            return Kind("json")
        return Kind("struct", fields={name: normalized(sub) for name, sub in kind.fields.items()})
    return kind


def _describe(kind: Kind) -> str:
    if kind.name == "list":
        assert kind.item is not None
        return f"list<{_describe(kind.item)}>"
    return kind.name


def conform(value: Any, kind: Kind) -> Any:
    """``value`` shaped for a column of ``kind`` (missing struct fields as null, conflicts as JSON text)."""
    if value is None:
        return None
    if kind.name == "json":
        return json_text(value)
    if kind.name == "float":
        return float(value)
    if kind.name == "date":  # declared dates arrive checked as ISO text (outputs.contract)
        return _date(value)
    if kind.name in ("string", "null"):
        return value if isinstance(value, str) else str(value)
    if kind.name == "list":
        assert kind.item is not None
        return [conform(element, kind.item) for element in value]
    if kind.name == "struct":
        return {name: conform(value.get(name), sub) for name, sub in kind.fields.items()}
    return value


def _date(text: str) -> Any:
    import datetime as dt

    return dt.date.fromisoformat(text)


def json_text(value: Any) -> str:
    """A nested or conflicting value as the JSON text a loader can parse back (``json.loads``)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
