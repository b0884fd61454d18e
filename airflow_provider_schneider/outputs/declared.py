"""Declared record schemas: the columns a dataset always has, whatever one day's answer holds.

A pull whose resource (or DAG author) declares a schema writes exactly its columns, in its order, plus one
last column :data:`EXTRA_COLUMN`, in every file of every run: engines read the files of a whole backfill as
one table without union options. Adding a column in a later file cannot give that (DuckDB reads the first
file's columns and silently drops or rounds the rest; pyarrow fails on a narrower type), so what the
declaration does not name goes into ``_extra`` (see :mod:`.contract`), and a new column is a new declaration.

Types, as text (case-insensitive): ``string``, ``double`` (``float``, ``number``), ``bigint`` (``int``,
``integer``, ``long``), ``boolean`` (``bool``), ``date`` (ISO ``YYYY-MM-DD``), ``json`` (any value, kept as
JSON text), ``list<T>`` (``array<T>``), ``struct<name: T, ...>``; a mapping is a struct too. Stdlib only:
operators check a declaration when the DAG is parsed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_schneider.outputs.schema import Kind

#: What a pull does with data that does not fit its declared schema (:mod:`.contract`).
CONTRACTS = ("evolve", "freeze", "discard_value")
#: How a task's outputs are laid out: ``default`` (one file per interval) or ``hive`` (``dt=YYYY-MM-DD/``).
LAYOUTS = ("default", "hive")
#: The last column of a declared dataset: a JSON object of what the declaration does not name (null if none).
EXTRA_COLUMN = "_extra"

_ALIASES = {
    "string": "string",
    "str": "string",
    "text": "string",
    "double": "float",
    "float": "float",
    "number": "float",
    "bigint": "int",
    "int": "int",
    "integer": "int",
    "long": "int",
    "boolean": "bool",
    "bool": "bool",
    "date": "date",
    "json": "json",
}
_TEXT = {"string": "string", "float": "double", "int": "bigint", "bool": "boolean", "date": "date", "json": "json"}
_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z0-9_.$@-]*)|(<|>|,|:))")


def type_text(kind: Kind) -> str:
    """The canonical text of a declared type (``list<struct<gtin: string>>``)."""
    if kind.name == "list":
        assert kind.item is not None
        return f"list<{type_text(kind.item)}>"
    if kind.name == "struct":
        return "struct<" + ", ".join(f"{name}: {type_text(sub)}" for name, sub in kind.fields.items()) + ">"
    return _TEXT.get(kind.name, kind.name)


class _Parser:
    def __init__(self, text: str):
        self.text, self.pos = text, 0

    def token(self) -> str:
        match = _TOKEN.match(self.text, self.pos)
        if match is None:
            rest = self.text[self.pos :].strip()
            raise ValueError(f"unexpected {rest[:20]!r}" if rest else "unexpected end")
        self.pos = match.end()
        return match.group(1) or match.group(2)

    def expect(self, wanted: str) -> None:
        got = self.token()
        if got != wanted:
            raise ValueError(f"expected {wanted!r}, got {got!r}")

    def kind(self) -> Kind:
        word = self.token()
        lowered = word.lower()
        if lowered in ("list", "array"):
            self.expect("<")
            item = self.kind()
            self.expect(">")
            return Kind("list", item=item)
        if lowered == "struct":
            self.expect("<")
            fields: dict[str, Kind] = {}
            while True:
                name = self.token()
                if name in fields:
                    raise ValueError(f"field {name!r} is declared twice")
                self.expect(":")
                fields[name] = self.kind()
                separator = self.token()
                if separator == ">":
                    return Kind("struct", fields=fields)
                if separator != ",":
                    raise ValueError(f"expected ',' or '>', got {separator!r}")
        if lowered not in _ALIASES:
            known = ", ".join(sorted(set(_TEXT.values())))
            raise ValueError(f"unknown type {word!r} (use {known}, list<...>, struct<...>)")
        return Kind(_ALIASES[lowered])

    def done(self) -> None:
        if self.text[self.pos :].strip():
            raise ValueError(f"unexpected {self.text[self.pos :].strip()[:20]!r} after the type")


def parse_type(declared: Any) -> Kind:
    """A declared type: its text, or a mapping (a struct of named fields). ``ValueError`` says why not."""
    if isinstance(declared, Mapping):
        if not declared:
            raise ValueError("a struct needs at least one field")
        return Kind("struct", fields={str(name): parse_type(sub) for name, sub in declared.items()})
    if not isinstance(declared, str):
        raise ValueError(f"a type is a text such as 'string' or 'list<double>', got {type(declared).__name__}")
    parser = _Parser(declared)
    try:
        kind = parser.kind()
    except RecursionError:
        raise ValueError("nested too deeply") from None
    parser.done()
    return kind


def parse_fields(fields: Any, where: str) -> dict[str, Kind]:
    """Field name -> declared type, each checked; the error names ``where`` and the field."""
    if not isinstance(fields, Mapping) or not fields:
        raise ValueError(f"{where}: a schema is a non-empty mapping of field name to type, got {fields!r}")
    parsed: dict[str, Kind] = {}
    for name, declared in fields.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: a field name must be a non-empty text, got {name!r}")
        if name == EXTRA_COLUMN:
            raise ValueError(f"{where}: {EXTRA_COLUMN!r} is the column of undeclared fields; choose another name")
        try:
            parsed[name] = parse_type(declared)
        except ValueError as exc:
            raise ValueError(f"{where}: field {name!r}: cannot read the type {declared!r}: {exc}") from None
    return parsed


@dataclass(frozen=True, eq=False)
class DatasetSchema:
    """The declared columns of a dataset, the contract a pull follows, and the schema's version.

    ``version``: ``<resource>/v<n>`` (the catalog's), ``+<hash>`` when the DAG author's hints add to it;
    ``fingerprint``: a short hash of the columns as written, equal for equal file schemas."""

    columns: Mapping[str, Kind]
    version: str
    contract: str = "evolve"

    @property
    def fingerprint(self) -> str:
        return _digest(self.describe())

    def describe(self) -> dict[str, str]:
        """Column -> type text, as written (``_extra`` last)."""
        return {**{name: type_text(kind) for name, kind in self.columns.items()}, EXTRA_COLUMN: "json"}

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "fingerprint": self.fingerprint, "contract": self.contract}


def _digest(described: Mapping[str, str]) -> str:
    text = "\n".join(f"{name} {kind}" for name, kind in described.items())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dataset_schema(
    resource: str | None,
    declared: Mapping[str, Any] | None,
    resource_version: int,
    hints: Mapping[str, Any] | None,
    contract: str,
    where: str,
) -> DatasetSchema | None:
    """The schema a task writes: the resource's declaration, then the author's ``hints`` (a hint replaces the
    type of a declared field or adds one); ``None`` when neither declares anything (inferred per pull)."""
    if contract not in CONTRACTS:
        raise ValueError(f"{where}: schema_contract must be one of {', '.join(CONTRACTS)}, got {contract!r}")
    columns = parse_fields(declared, f"{where}: resource {resource!r}") if declared else {}
    version = f"{resource}/v{resource_version}" if declared else "hints"
    if hints is not None:
        extra = parse_fields(hints, f"{where}: schema_hints")
        columns = {**columns, **extra}
        version += "+" + _digest({name: type_text(kind) for name, kind in extra.items()})[:8]
    if not columns:
        if contract != "evolve":
            raise ValueError(
                f"{where}: schema_contract={contract!r} needs a declared schema; this endpoint has none, so give "
                "schema_hints (field name -> type)"
            )
        return None
    return DatasetSchema(columns, version, contract)
