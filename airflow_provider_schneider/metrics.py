"""Metrics through Airflow's own facade (``Stats``), so StatsD and OpenTelemetry both work from ``[metrics]``.

Every name is under ``schneider.`` and built from a fixed vocabulary (a status code, a cache tier), never
from a secret or an unbounded value such as a URL or an order number. A metrics backend that fails never
fails a call.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "schneider"
#: The only names emitted; ``<status>`` is an HTTP status (100..599), ``<tier>`` one of the cache tiers.
NAMES = (
    "token.requests",
    "token.reused.<tier>",
    "http.requests.<status>",
    "http.retries",
    "http.throttled",
    "http.duration",
    "pull.records",
    "pull.pages",
)
_TIERS = frozenset({"memory", "file", "variable"})


def _stats() -> Any:
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:  # Airflow 3.1: the core module (not deprecated there)
        from airflow.stats import Stats
    return Stats


def incr(name: str, count: int = 1) -> None:
    """Add ``count`` to counter ``schneider.<name>``."""
    if count <= 0:
        return
    try:
        _stats().incr(f"{PREFIX}.{name}", count)
    except Exception:
        log.debug("metric %s not sent", name, exc_info=True)


def timing(name: str, seconds: float) -> None:
    """Record a duration for timer ``schneider.<name>`` (milliseconds on the wire, as Airflow's own timers)."""
    try:
        _stats().timing(f"{PREFIX}.{name}", seconds * 1000.0)
    except Exception:
        log.debug("metric %s not sent", name, exc_info=True)


def http_request(status: int, seconds: float) -> None:
    incr(f"http.requests.{status if 100 <= status <= 599 else 'other'}")
    timing("http.duration", seconds)


def token_reused(tier: str) -> None:
    incr(f"token.reused.{tier if tier in _TIERS else 'other'}")
