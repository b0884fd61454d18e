"""Operator arguments as they arrive after templating: product references (a list, a comma string, nested
chunks from XCom) and dates (``2026-11-04``, ``{{ data_interval_start }}``, a date). Stdlib only."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow_provider_schneider.exceptions import SchneiderConfigError

T = TypeVar("T")

#: References listed in a manifest (not found, business errors); the counts beside them are complete.
MAX_LISTED = 100
#: What a fan-out's failed item does (:class:`ItemErrorPolicy`).
ITEM_ERROR_MODES = ("fail", "collect")


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


@dataclass(frozen=True)
class ItemErrorPolicy:
    """What a failed item does: fail the pull (default), or be collected up to a bound."""

    collect: bool = False
    max_items: int | None = None
    max_ratio: float | None = None

    @classmethod
    def checked(cls, task_id: str, mode: str, max_items: Any, max_ratio: Any) -> ItemErrorPolicy:
        """The policy of these (rendered) arguments; a clear error for anything else."""
        if mode not in ITEM_ERROR_MODES:
            raise SchneiderConfigError(f"{task_id}: on_item_error must be one of {ITEM_ERROR_MODES}, got {mode!r}")
        if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 0):
            raise SchneiderConfigError(f"{task_id}: max_failed_items must be an integer >= 0, got {max_items!r}")
        if max_ratio is not None and (
            isinstance(max_ratio, bool)
            or not isinstance(max_ratio, (int, float))
            or not 0 <= max_ratio <= 1
            or math.isnan(max_ratio)
        ):
            raise SchneiderConfigError(f"{task_id}: max_failed_ratio must be a number in [0, 1], got {max_ratio!r}")
        if mode == "fail" and (max_items is not None or max_ratio is not None):
            raise SchneiderConfigError(
                f"{task_id}: max_failed_items / max_failed_ratio need on_item_error='collect' (with 'fail' the first "
                "failed item fails the task)"
            )
        return cls(mode == "collect", max_items, None if max_ratio is None else float(max_ratio))

    def most_failures(self, calls: int) -> int:
        """Failed items tolerated among ``calls``: every bound given, and never all of them (an output made of
        nothing but failures is no success)."""
        if not self.collect:
            return 0
        bounds = [calls - 1]
        if self.max_items is not None:
            bounds.append(self.max_items)
        if self.max_ratio is not None:
            bounds.append(math.floor(self.max_ratio * calls + 1e-9))
        return max(0, min(bounds))
