"""Incremental Product Catalog deltas: where the last successful ``date-of-reference`` is kept and read.

A watermark ``W`` means: every change dated before ``W`` (per scope and change type) has been delivered by a
successful run. A run pulls ``[since, until)`` and, once its file is in place, moves ``W`` to ``until``:

- ``until`` (exclusive) is ``changed_before`` if given, else the end of the data interval, else the run's
  date (a manual run without interval): a day counts as complete only once it is over.
- ``since`` is ``W`` when ``W < until``: an unscheduled or manual run pulls exactly what changed since the
  last success, however long ago that was. With no watermark it is the fallback: ``date_of_reference`` if
  given, else the start of the data interval (or the day before ``until``). When ``W >= until`` the range was
  already delivered: the run pulls its own interval again (a backfill) and ``W`` stays where it is.
- a rerun of a run that already succeeded (a cleared task) pulls the same ``[since, until)`` as that success,
  found in its asset event, so it rewrites the same file with the same records.

The default output file of an incremental pull is named after ``[since, until)``, not the data interval: two
runs with different ranges never overwrite each other's file.

Boundaries never leave a gap: consecutive runs meet at ``W`` exactly (``[a, W)`` then ``[W, b)``), with no
overlap either when runs are sequential. Runs of the same scope that overlap in time (``max_active_runs > 1``)
can pull a range twice, never skip one; consumers dedupe by ``commercialReference`` + ``changeDate`` +
``changeType``.

Where it is kept, per scope asset (the operator's outlet, also declared as inlet):

1. Airflow's asset state store (AIP-103, Airflow 3.3+), key ``delta_watermark/<supplier>/<customer>/<type>``;
   written as the last step of ``execute``, after the file is in place, so a failed pull never moves it;
2. the ``extra`` of the operator's asset events (``watermark``, ``watermark_key``, ``since``, ``until``), which
   Airflow records only when the task succeeds: read from the newest matching event when the state store
   is missing (Airflow < 3.3) or has no entry yet (e.g. just upgraded);
3. none found, or an Airflow without either accessor: the fallback above (the data interval).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_schneider.pulls.arguments import parse_date

log = logging.getLogger(__name__)

STATE_KEY_PREFIX = "delta_watermark"
#: How many recent events of the asset are searched for a watermark (other producers may share the asset).
EVENT_SEARCH_LIMIT = 100

# Where the previous watermark came from.
SOURCE_STATE_STORE = "asset_state_store"
SOURCE_ASSET_EVENT = "asset_event"
SOURCE_NONE = "none"
# What ``since`` is based on.
BASIS_WATERMARK = "watermark"
BASIS_FALLBACK = "fallback"  # date_of_reference or the data interval
BASIS_RERUN = "rerun"  # the range of this task instance's earlier success


@dataclass(frozen=True)
class Window:
    """The range one incremental run pulls, and what it leaves behind."""

    since: dt.date
    until: dt.date
    basis: str  # what ``since`` is based on: watermark, fallback or rerun
    previous: dt.date | None  # watermark found at the start of the run ...
    source: str  # ... and where it was found
    watermark: dt.date  # the watermark after this run succeeds
    key: str

    def facts(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "basis": self.basis,
            "previous_watermark": self.previous.isoformat() if self.previous else None,
            "watermark_source": self.source,
            "watermark": self.watermark.isoformat(),
            "watermark_key": self.key,
        }


def state_key(scope: Iterable[str], change_type: str) -> str:
    """Per runtime scope and change type: a ``new``-only chain never advances an ``all`` chain."""
    return "/".join([STATE_KEY_PREFIX, *scope, change_type])


def _date(value: Any) -> dt.date | None:
    if value is None:
        return None
    date = parse_date(value)
    if date is None:
        log.warning("Ignoring a watermark that is not a date: %r", value)
    return date


def default_until(context: Mapping[str, Any]) -> dt.date:
    """End of the data interval, else the date the run was due (``run_after``), else today (UTC)."""
    end = _date(context.get("data_interval_end"))
    if end is not None:
        return end
    run_after = getattr(context.get("dag_run"), "run_after", None) or context.get("logical_date")
    return _date(run_after) or dt.datetime.now(dt.timezone.utc).date()


def default_since(context: Mapping[str, Any], until: dt.date) -> dt.date:
    """Start of the data interval when it is before ``until``, else the day before ``until``."""
    start = _date(context.get("data_interval_start"))
    return start if start is not None and start < until else until - dt.timedelta(days=1)


def _state_accessor(context: Mapping[str, Any], asset: Any) -> Any:
    store = context.get("asset_state_store")  # Airflow 3.3+, when the task has an asset inlet or outlet
    if store is None:
        return None
    try:
        return store[asset]
    except (KeyError, TypeError):
        return None


def _newest_events(context: Mapping[str, Any], asset: Any) -> list[Any]:
    events = context.get("inlet_events")
    if events is None:
        return []
    try:
        accessor = events[asset]
    except (KeyError, TypeError, IndexError):
        return []
    if hasattr(accessor, "ascending") and hasattr(accessor, "limit"):
        return list(accessor.ascending(False).limit(EVENT_SEARCH_LIMIT))
    return list(reversed(list(accessor)))[:EVENT_SEARCH_LIMIT]


def _ours(events: list[Any], key: str) -> list[tuple[Any, Mapping[str, Any]]]:
    """Events written by incremental pulls of ``key`` (other producers may share the asset)."""
    found = []
    for event in events:
        extra = getattr(event, "extra", None) or {}
        if extra.get("watermark_key") == key and _date(extra.get("watermark")) is not None:
            found.append((event, extra))
    return found


def _map_index(value: Any) -> int:
    return -1 if value is None else int(value)


def _same_task_run(event: Any, context: Mapping[str, Any]) -> bool:
    """Was ``event`` written by an earlier, successful try of this very task instance?"""
    ti = context.get("ti")
    if ti is None or not context.get("run_id"):
        return False
    return (
        getattr(event, "source_run_id", None) == context["run_id"]
        and getattr(event, "source_dag_id", None) == getattr(ti, "dag_id", None)
        and getattr(event, "source_task_id", None) == getattr(ti, "task_id", None)
        and _map_index(getattr(event, "source_map_index", None)) == _map_index(getattr(ti, "map_index", None))
    )


def read_watermark(
    context: Mapping[str, Any], asset: Any, key: str, events: list[tuple[Any, Mapping[str, Any]]] | None = None
) -> tuple[dt.date | None, str]:
    """The last successful watermark of ``key`` on ``asset`` and where it came from (see module docs)."""
    state = _state_accessor(context, asset)
    if state is not None:
        value = _date(state.get(key))
        if value is not None:
            return value, SOURCE_STATE_STORE
    ours = events if events is not None else _ours(_newest_events(context, asset), key)
    if ours:  # newest first
        return _date(ours[0][1]["watermark"]), SOURCE_ASSET_EVENT
    return None, SOURCE_NONE


def plan(
    context: Mapping[str, Any],
    asset: Any,
    key: str,
    *,
    date_of_reference: Any = None,
    changed_before: Any = None,
) -> Window:
    """Work out ``[since, until)`` and the watermark this run leaves when it succeeds."""
    ours = _ours(_newest_events(context, asset), key)
    previous, source = read_watermark(context, asset, key, ours)
    for event, extra in ours:
        if _same_task_run(event, context):  # a cleared task: the range of its earlier success, again
            since, until = _date(extra.get("since")), _date(extra.get("until"))
            if since is not None and until is not None:
                watermark = max(until, previous) if previous else until
                return Window(since, until, BASIS_RERUN, previous, source, watermark, key)
    until = _date(changed_before) or default_until(context)
    fallback = _date(date_of_reference) or default_since(context, until)
    if previous is not None and previous < until:
        return Window(previous, until, BASIS_WATERMARK, previous, source, until, key)
    if previous is not None:  # already delivered up to ``previous``: pull the run's own range again
        return Window(fallback, until, BASIS_FALLBACK, previous, source, previous, key)
    return Window(fallback, until, BASIS_FALLBACK, None, source, max(until, fallback), key)


def store_watermark(context: Mapping[str, Any], asset: Any, window: Window) -> None:
    """Advance the state store entry (never backwards, also when another run moved it meanwhile)."""
    state = _state_accessor(context, asset)
    if state is None:
        return
    current = _date(state.get(window.key))
    value = max(window.watermark, current) if current else window.watermark
    state.set(window.key, value.isoformat())
    log.info("Watermark %s on %s is now %s", window.key, getattr(asset, "uri", asset), value)
