"""One schema for a whole pull, inferred from every record (stdlib: pyarrow is only needed to write it).

Kinds follow the JSON the API sent, never guessed from text (a ``"3599"`` stays a string, a date stays a
string: dates arrive in several shapes and a wrong guess would lose data). A field first seen on page 9 or
null on page 1 simply joins the schema; an integer column that also holds floats becomes float; nested
objects and lists stay nested (an order's ``items`` is a list of structs). Where the JSON types really
conflict (a string here, an object there; a bool and a number), or an object has more than
:data:`MAX_STRUCT_FIELDS` distinct keys (a map keyed by ids), the column holds each value's JSON text
instead: nothing is lost or coerced, and ``json.loads`` gives the value back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_INT64 = 1 << 63
#: An object with more distinct keys than this over a pull is a map keyed by data (ids, dates), not a record
#: shape: it becomes JSON text, so the schema (and memory) cannot grow with the data.
MAX_STRUCT_FIELDS = 1_000


@dataclass
class Kind:
    """``name``: null, bool, int, float, string, list, struct, or json (conflicting types)."""

    name: str = "null"
    item: Kind | None = None
    fields: dict[str, Kind] = field(default_factory=dict)


def kind_of(value: Any) -> Kind:
    if value is None:
        return Kind()
    if isinstance(value, bool):
        return Kind("bool")
    if isinstance(value, int):
        return Kind("int") if -_INT64 <= value < _INT64 else Kind("json")
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
    """The union of top-level fields (first-seen order) and their merged kinds over every record."""

    def __init__(self) -> None:
        self.columns: dict[str, Kind] = {}

    def observe(self, record: Any) -> None:
        row = record if isinstance(record, dict) else {"value": record}
        for name, value in row.items():
            key = str(name)
            current = self.columns.get(key)
            self.columns[key] = kind_of(value) if current is None else merge(current, kind_of(value))

    def final(self) -> dict[str, Kind]:
        """The columns as written: all-null as string, an object that never had a field as JSON text
        (Parquet cannot store a struct without fields)."""
        return {name: normalized(kind) for name, kind in self.columns.items()}

    def describe(self) -> dict[str, str]:
        """Column -> kind, for the manifest (``list<struct>``, ``json`` ...)."""
        return {name: _describe(kind) for name, kind in self.final().items()}


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
        from airflow_provider_schneider.outputs.encoders import json_text

        return json_text(value)
    if kind.name == "float":
        return float(value)
    if kind.name in ("string", "null"):
        return value if isinstance(value, str) else str(value)
    if kind.name == "list":
        assert kind.item is not None
        return [conform(element, kind.item) for element in value]
    if kind.name == "struct":
        return {name: conform(value.get(name), sub) for name, sub in kind.fields.items()}
    return value
