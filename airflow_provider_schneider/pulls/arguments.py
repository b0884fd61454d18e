"""Operator arguments as they arrive after templating: product references (a list, a comma string, nested
chunks from XCom) and dates (``2026-11-04``, ``{{ data_interval_start }}``, a date). Stdlib only."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, TypeVar

from airflow_provider_schneider.exceptions import SchneiderConfigError

T = TypeVar("T")

#: References listed in a manifest (not found, business errors); the counts beside them are complete.
MAX_LISTED = 100


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def as_items(value: Any) -> list[Any]:
    """Product references as a list, accepting a list, a comma string, or nested chunks from XCom.

    Repeated string references are called once (first position kept).
    """
    if value is None:
        return []
    if isinstance(value, str):
        flat: list[Any] = [part.strip() for part in value.split(",") if part.strip()]
    else:
        flat = []
        for item in value:
            flat.extend(as_items(item) if isinstance(item, (list, tuple)) else [item])
    seen: set[str] = set()
    out = []
    for item in flat:
        if isinstance(item, str):
            if item in seen:
                continue
            seen.add(item)
        out.append(item)
    return out


def parse_date(value: Any) -> dt.date | None:
    """A date from ``2026-11-04``, ``2026-11-04T00:00:00+00:00`` (``{{ data_interval_start }}``) or a date;
    ``None`` when ``value`` is none of these."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        return None


def as_date(value: Any, name: str) -> dt.date:
    """:func:`parse_date` of an argument: anything else is a configuration error naming ``name``."""
    date = parse_date(value)
    if date is None:
        raise SchneiderConfigError(f"{name} must be a date (YYYY-MM-DD), got {str(value).strip()!r}")
    return date


def max_age_seconds(value: Any, task_id: str) -> float:
    """``resume_max_age`` (seconds or a ``timedelta``) as seconds; anything else is a configuration error."""
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf"):
        raise SchneiderConfigError(f"{task_id}: resume_max_age must be seconds >= 0 or a timedelta, got {value!r}")
    return float(seconds)
