"""A record shaped to its declared schema, under the pull's schema contract; every difference counted.

Values the declared type holds without loss are converted, as a liberal reader should: an integer into a
``double``, a number or a numeric text into a ``string`` or a number (gateways send numbers as text), an
integral ``2.0`` into a ``bigint``, ``"true"`` into a ``boolean``. What does not fit (``"n/a"`` where a
``double`` is declared, a struct's unknown sub-field, a field the declaration does not name) follows the
contract:

- ``evolve`` (default): nothing is lost. The column keeps what fits (a non-fitting leaf is null), and the
  field's value as the API sent it goes into ``_extra`` (a JSON object per record); an undeclared field goes
  there too (JSON Lines keeps it as a key of the record: JSON needs no column for it).
- ``discard_value``: a value that does not fit becomes null, an undeclared field is dropped; both counted.
- ``freeze``: the first difference fails the pull, naming the field, its declared and its received type,
  before anything is committed.

Conversions and differences are listed per field (:meth:`Conformer.changes`), the manifest's
``schema_changes``. Strings and numbers are repaired as the JSON Lines encoder does (lone surrogates,
``NaN``), counted in ``fixes``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from airflow_provider_schneider.exceptions import SchneiderSchemaError
from airflow_provider_schneider.outputs.declared import EXTRA_COLUMN, DatasetSchema, type_text
from airflow_provider_schneider.outputs.encoders import DataFixes, has_surrogate, repaired, repaired_text, strict_json
from airflow_provider_schneider.outputs.schema import INT64_LIMIT, Kind, json_text, kind_of

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_INTEGER = re.compile(r"^\s*[-+]?\d+\s*$")
#: Distinct differences (field path, change, types) counted per pull: fields named by data (an id per key)
#: would otherwise grow the tally with the records; past it, occurrences are only counted.
MAX_TRACKED_CHANGES = 1_000
#: Differences listed in the manifest (most records first): it travels through XCom.
MAX_LISTED_CHANGES = 100
#: A value fits as is; it was converted losslessly; it does not fit.
_FITS, _CONVERTED, _MISFIT = 0, 1, 2


_SCALAR_TYPES = {str: "string", bool: "boolean", float: "double", type(None): "null"}


def seen_type(value: Any) -> str:
    """The JSON type of a received value, as a change names it (``string``, ``bigint``, ``list<double>``)."""
    scalar = _SCALAR_TYPES.get(type(value))
    if scalar is not None:
        return scalar
    if type(value) is int and -INT64_LIMIT <= value < INT64_LIMIT:
        return "bigint"
    return type_text(kind_of(value))


class Conformer:
    """Shapes records to ``schema`` (``row`` for CSV and Parquet, ``jsonl_record`` for JSON Lines, where
    ``keys_kept``) and tallies conversions and differences. ``where`` (the task) starts a freeze error."""

    def __init__(self, schema: DatasetSchema, where: str, *, keys_kept: bool = False):
        self.schema = schema
        self.keys_kept = keys_kept
        self.where = where
        self.columns = dict(schema.columns)
        self.contract = schema.contract
        self.records = 0
        self.discarded = 0
        self.fixes = DataFixes()
        self._present = dict.fromkeys(self.columns, 0)
        self._tally: dict[tuple[str, str, str, str], int] = {}
        self._counted: set[tuple[str, str, str, str]] = set()  # differences already counted for this record
        self._untracked = 0  # occurrences of differences past MAX_TRACKED_CHANGES
        #: Tallied undeclared top-level fields (a name may hold dots, so the path cannot tell).
        self._top_level: set[tuple[str, str, str, str]] = set()

    # -- records --------------------------------------------------------------------------------------------

    def row(self, record: Any) -> dict[str, Any]:
        """The declared columns (null when missing) and ``_extra``: what the record holds beyond them, as
        the text of one strict JSON object."""
        source = record if isinstance(record, dict) else {"value": record}
        row, extra = self._declared(source)
        for name, value in source.items():
            if name not in self.columns and self._undeclared(str(name), value):
                extra = extra or {}
                extra[name] = value
        row[EXTRA_COLUMN] = self._json_text(extra) if extra else None
        return row

    def _json_text(self, value: Any) -> str:
        """``value`` as strict JSON text in one call; repaired (and counted) only when it has to be."""
        try:
            text = strict_json(value)
        except ValueError:  # NaN or Infinity somewhere
            return json_text(repaired(value, self.fixes))
        if has_surrogate(text):
            return json_text(repaired(value, self.fixes))
        return text

    def jsonl_record(self, record: Any) -> dict[str, Any]:
        """The record as sent (its keys, in its order), declared fields in their declared type, undeclared
        fields kept (``evolve``), and ``_extra`` holding the raw values that did not fit, when any. A declared
        field the record lacks stays absent: JSON needs no null to say so."""
        source = record if isinstance(record, dict) else {"value": record}
        self._start()
        row: dict[str, Any] = {}
        extra: dict[str, Any] | None = None
        columns = self.columns
        for name, value in source.items():
            kind = columns.get(name)
            if kind is not None:
                self._present[name] += 1
                row[name], how = self._fit(value, kind, name)
                if how == _MISFIT and self.contract == "evolve":
                    extra = extra or {}
                    extra[name] = value
            elif self._undeclared(str(name), value):
                if name == EXTRA_COLUMN:  # the API's own ``_extra`` field: kept inside ours, never replaced
                    extra = extra or {}
                    extra[name] = value
                else:
                    row[name] = value
        if extra:
            row[EXTRA_COLUMN] = repaired(extra, self.fixes)
        return row

    def _start(self) -> None:
        self.records += 1
        self._counted.clear()

    def _declared(self, source: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
        self._start()
        row: dict[str, Any] = {}
        extra: dict[str, Any] | None = None
        for name, kind in self.columns.items():
            if name not in source:
                row[name] = None
                continue
            self._present[name] += 1
            value = source[name]
            fitted, how = self._fit(value, kind, name)
            row[name] = fitted
            if how == _MISFIT and self.contract == "evolve":
                extra = extra or {}
                extra[name] = value
        return row, extra

    def _undeclared(self, name: str, value: Any) -> bool:
        """Note a field the declaration does not name; whether the record keeps it (``evolve``). A record's
        top-level names are unique, so the tally needs no per-record check (the common case: a thin
        declaration meets its undeclared fields in every record)."""
        key = (name, "new_field", "", seen_type(value))
        if self.contract == "freeze":
            self._note(*key)
        if self._count(key):
            self._top_level.add(key)
        if self.contract == "discard_value":
            self.discarded += 1
            return False
        return True

    # -- values ---------------------------------------------------------------------------------------------

    def _fit(self, value: Any, kind: Kind, path: str) -> tuple[Any, int]:
        """``(value as the column holds it, how it fit)``; a misfit is noted (and fails a freeze)."""
        if value is None:
            return None, _FITS
        name = kind.name
        fitted: Any = None
        how = _FITS
        if name == "string":
            if isinstance(value, str):
                return repaired_text(value, self.fixes), _FITS
            if isinstance(value, (int, float)) and not isinstance(value, bool) and _finite(value):
                fitted, how = str(value), _CONVERTED
            else:
                how = _MISFIT
        elif name == "float":
            if isinstance(value, float) and not isinstance(value, bool):
                if math.isfinite(value):
                    return value, _FITS
                self.fixes.non_finite_numbers += 1
                return None, _FITS
            if isinstance(value, int) and not isinstance(value, bool):
                return float(value), _FITS  # JSON has one number type: 3 is 3.0
            if isinstance(value, str) and _NUMBER.match(value) and _finite(float(value)):
                fitted, how = float(value), _CONVERTED
            else:
                how = _MISFIT
        elif name == "int":
            if isinstance(value, int) and not isinstance(value, bool) and -INT64_LIMIT <= value < INT64_LIMIT:
                return value, _FITS
            if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
                fitted, how = int(value), _CONVERTED
            elif isinstance(value, str) and _INTEGER.match(value) and -INT64_LIMIT <= int(value) < INT64_LIMIT:
                fitted, how = int(value), _CONVERTED
            else:
                how = _MISFIT
        elif name == "bool":
            if isinstance(value, bool):
                return value, _FITS
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                fitted, how = value.strip().lower() == "true", _CONVERTED
            else:
                how = _MISFIT
        elif name == "date":
            if isinstance(value, str) and _ISO_DATE.match(value) and _valid_date(value):
                return value, _FITS
            how = _MISFIT
        elif name == "json":
            return repaired(value, self.fixes), _FITS
        elif name == "list":
            return self._list(value, kind, path)
        else:  # struct
            return self._struct(value, kind, path)
        self._note(path, "converted" if how == _CONVERTED else "type_mismatch", type_text(kind), seen_type(value))
        if how == _MISFIT and self.contract == "discard_value":
            self.discarded += 1
        return fitted, how

    def _list(self, value: Any, kind: Kind, path: str) -> tuple[Any, int]:
        if not isinstance(value, list):
            return self._misfit(value, kind, path)
        assert kind.item is not None
        out, worst = [], _FITS
        for item in value:
            fitted, how = self._fit(item, kind.item, f"{path}[]")
            out.append(fitted)
            worst = max(worst, how)
        return out, worst

    def _struct(self, value: Any, kind: Kind, path: str) -> tuple[Any, int]:
        if not isinstance(value, Mapping):
            return self._misfit(value, kind, path)
        out, worst = {}, _FITS
        for name, sub in kind.fields.items():
            fitted, how = self._fit(value.get(name), sub, f"{path}.{name}")
            out[name] = fitted
            worst = max(worst, how)
        for name, item in value.items():
            if name not in kind.fields:
                self._note(f"{path}.{name}", "new_field", "", seen_type(item))
                if self.contract == "discard_value":
                    self.discarded += 1
                worst = _MISFIT  # evolve keeps the whole value in _extra: the sub-field is not lost
        return out, worst

    def _misfit(self, value: Any, kind: Kind, path: str) -> tuple[Any, int]:
        self._note(path, "type_mismatch", type_text(kind), seen_type(value))
        if self.contract == "discard_value":
            self.discarded += 1
        return None, _MISFIT

    def _note(self, path: str, change: str, declared: str, seen: str) -> None:
        key = (path, change, declared, seen)
        if self.contract == "freeze":
            raise SchneiderSchemaError(self._freeze_message(path, change, declared, seen))
        if key not in self._counted:  # records, not values: a list of 20 lines with one change counts once
            self._counted.add(key)
            self._count(key)

    def _count(self, key: tuple[str, str, str, str]) -> bool:
        """Count one occurrence of ``key``; whether it is tracked (listed)."""
        tally = self._tally
        if key in tally:
            tally[key] += 1
        elif len(tally) < MAX_TRACKED_CHANGES:
            tally[key] = 1
        else:
            self._untracked += 1
            return False
        return True

    def _freeze_message(self, path: str, change: str, declared: str, seen: str) -> str:
        what = (
            f"field {path!r} is not in the declared schema {self.schema.version} (the API sent {seen})"
            if change == "new_field"
            else f"field {path!r} is declared {declared}, the API sent {seen}"
        )
        return (
            f"{self.where}: schema_contract='freeze': {what} in record {self.records:,}; nothing was written "
            "(declare the field with schema_hints, or use schema_contract='evolve')"
        )

    # -- what happened --------------------------------------------------------------------------------------

    def omitted_changes(self) -> dict[str, int] | None:
        """What :meth:`changes` leaves out: distinct differences counted but not listed, and occurrences of
        differences past the tally's bound; ``None`` when nothing."""
        not_listed = max(0, len(self._tally) - MAX_LISTED_CHANGES)
        if not (not_listed or self._untracked):
            return None
        return {"not_listed": not_listed, "untracked": self._untracked}

    def changes(self) -> list[dict[str, Any]]:
        """Every difference from the declaration, per field: ``change`` (``new_field``, ``type_mismatch``,
        ``converted``, ``missing``), types, the records it touched and what was done."""
        action = {"evolve": "kept_in_extra", "discard_value": "discarded", "freeze": "failed"}[self.contract]
        listed = []
        ranked = sorted(self._tally.items(), key=lambda item: (-item[1], item[0]))[:MAX_LISTED_CHANGES]
        for key, records in sorted(ranked):
            path, change, declared, seen = key
            entry: dict[str, Any] = {"field": path, "change": change}
            if declared:
                entry["declared"] = declared
            entry["seen"] = seen
            entry["records"] = records
            entry["action"] = "converted" if change == "converted" else action
            if action == "kept_in_extra" and self.keys_kept and key in self._top_level:
                entry["action"] = "kept_as_key"  # JSON Lines: a top-level field needs no column
            listed.append(entry)
        if self.records:
            for name, present in self._present.items():
                if not present:
                    declared = type_text(self.columns[name])
                    entry = {"field": name, "change": "missing", "declared": declared, "seen": "absent"}
                    listed.append({**entry, "records": self.records, "action": "null"})
        return listed


def _finite(value: float) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def _valid_date(text: str) -> bool:
    import datetime as dt

    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True
