"""What a pull says while it runs: its first line, progress lines, its last line, and repairs of the data.

Stdlib only (the operators import this at parse time).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from airflow_provider_schneider.pulls.plan import PullPlan, PullStats

#: Seconds between two progress lines when no 10 % step was crossed (or the page total is unknown).
PROGRESS_INTERVAL = 30.0
#: A progress line each time the pull crosses one of these steps of its page total (10 %).
PROGRESS_STEPS = 10


def start_line(plan: PullPlan) -> str:
    """The first line of a pull: what it asks of which endpoint (secret-looking query values redacted)."""
    from airflow_provider_schneider.redaction import safe_params

    what = f"{plan.resource}: " if plan.resource else ""
    if plan.paginate:
        shape = f", {plan.page_size} records per page"
    else:
        what += f"{len(plan.calls)} calls of " if len(plan.calls) != 1 else ""
        shape = ""
    return f"Pulling {what}{plan.method} {plan.path}, query {safe_params(dict(plan.query))}{shape}"


def end_line(verb: str, plan: PullPlan, stats: PullStats, manifest: Mapping[str, Any], detail: str) -> str:
    """The last line of a pull: ``Wrote 1,234 records from 13 pages in 2.1s (590 rec/s), ...``."""
    records = int(manifest["records"])
    return (
        f"{verb} {records:,} records from {stats.pages} {plan.unit} in {duration(stats.elapsed)} "
        f"({stats.rate(records):,.0f} rec/s){detail}"
    )


def duration(seconds: float) -> str:
    """``0.4s``, ``20s``, ``4m05s``, ``2h03m``: short enough for a progress line."""
    if seconds < 9.95:
        return f"{max(seconds, 0.0):.1f}s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


class ProgressLog:
    """Logs ``Progress: 120/200 pages (60 %), 12,000 records, 410 rec/s, ETA 20s`` while a pull runs.

    A line each time the pull crosses a 10 % step of its page total (at most one per step), and one whenever
    :data:`PROGRESS_INTERVAL` seconds passed since the last line (the only rule when the total is unknown:
    ``Progress: 120 pages, 12,000 records, 410 rec/s``). None once every page is in: the end line follows.
    """

    def __init__(self, log: Any, unit: str = "pages", *, interval: float = PROGRESS_INTERVAL):
        self.log = log
        self.unit = unit
        self.interval = interval
        self._step = 0
        self._last: float | None = None

    def update(self, stats: PullStats) -> None:
        now = stats.started + stats.elapsed
        if self._last is None:
            self._last = stats.started
        total = stats.total if stats.total and stats.total > 0 else None
        if total is not None and stats.pages >= total:
            return
        step = math.floor(PROGRESS_STEPS * stats.pages / total) if total else 0
        if step > self._step or now - self._last >= self.interval:
            self._step = max(step, self._step)
            self._last = now
            self.log.info("%s", self.line(stats, total))

    def line(self, stats: PullStats, total: int | None) -> str:
        rate = f"{stats.rate():,.0f} rec/s"
        if total is None:
            return f"Progress: {stats.pages:,} {self.unit}, {stats.records:,} records, {rate}"
        percent = math.floor(100 * stats.pages / total)
        eta = stats.elapsed / stats.pages * (total - stats.pages)
        return (
            f"Progress: {stats.pages:,}/{total:,} {self.unit} ({percent} %), {stats.records:,} records, {rate}, "
            f"ETA {duration(eta)}"
        )


def log_repairs(log: Any, manifest: Mapping[str, Any]) -> None:
    """One WARNING when the output is not the records verbatim (docs/outputs.md, "Encodings")."""
    fixes, folded = manifest.get("data_fixes"), manifest.get("overflow_keys")
    if fixes:
        log.warning(
            "Repaired %s lone surrogate(s) (now U+FFFD) and %s NaN/Infinity value(s) (now null) so the output is "
            "valid UTF-8 and strict JSON; counted in the manifest's data_fixes",
            fixes.get("lone_surrogates", 0),
            fixes.get("non_finite_numbers", 0),
        )
    if folded:
        log.warning(
            "The records have more distinct top-level fields than the column cap: %s rare field value(s) went, as "
            "JSON text, into the column %r (manifest: overflow_keys)",
            folded,
            manifest.get("overflow_column"),
        )


#: Changes named in the schema line (the manifest lists them all).
SHOWN_CHANGES = 5


def log_schema_changes(log: Any, manifest: Mapping[str, Any]) -> None:
    """One line when the records differed from the declared schema: WARNING when a value did not fit its
    declared type or anything was discarded; INFO when nothing was lost (conversions, undeclared fields kept,
    which a thin declaration such as Order Status's meets on every pull)."""
    changes = manifest.get("schema_changes") or []
    if not changes:
        return
    schema = manifest.get("schema") or {}
    shown = "; ".join(_change_text(change) for change in changes[:SHOWN_CHANGES])
    more = f"; and {len(changes) - SHOWN_CHANGES} more" if len(changes) > SHOWN_CHANGES else ""
    lossy = any(change.get("change") == "type_mismatch" or change.get("action") == "discarded" for change in changes)
    level = log.warning if lossy else log.info
    level(
        "The records differ from the declared schema %s (schema_contract=%r): %s%s (manifest: schema_changes)",
        schema.get("version"),
        schema.get("contract"),
        shown,
        more,
    )


def _change_text(change: Mapping[str, Any]) -> str:
    declared = f" declared {change['declared']}," if change.get("declared") else ""
    return (
        f"{change['field']} {change['change']}:{declared} sent {change['seen']} in {change['records']:,} "
        f"records, {change['action']}"
    )
