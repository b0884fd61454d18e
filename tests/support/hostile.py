"""Hostile-gateway cases (drips, huge and endless bodies, gzip bombs, deep nesting, lying page counts), each
run in a child process whose time and peak RSS are measured from outside. Used by
``tests/test_hostile_gateway.py`` (with bounds) and ``benchmarks/hostile_gateway.py`` (before/after table).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.hostile_child import ORDERS, RESULT_MARK

REPO = Path(__file__).resolve().parents[2]  # the checkout
GIB = 1 << 30

#: Connection extras of every case: a 3 s attempt deadline, a 10 s read timeout (what the red-team pass
#: used), two attempts, no token cache (each child is a fresh process anyway).
CASE_EXTRAS = {
    "attempt_timeout": 3,
    "timeout": 10,
    "retry_max_attempts": 2,
    "retry_backoff_initial": 0.1,
    "retry_backoff_max": 0.2,
    "token_cache": "none",
    "page_size": 10,
}


@dataclass(frozen=True)
class HostileCase:
    name: str
    fault: dict[str, Any]
    op: str = "get"
    path: str = ORDERS
    #: Exception class name the provider must raise (``None``: the call must succeed).
    error: str | None = None
    #: Text the error message must contain.
    text: str = ""
    knobs: dict[str, Any] = field(default_factory=dict)


def _case(name: str, kind: str, op: str = "get", error: str | None = None, text: str = "", **fault: Any) -> HostileCase:
    """A case whose fault hits every matching request (a retry meets the same hostile answer)."""
    return HostileCase(name, {"target": "api", "kind": kind, "times": -1, **fault}, op=op, error=error, text=text)


CASES = (
    _case("drip on the token endpoint", "drip", "token", "SchneiderTokenEndpointError", "attempt deadline",
          target="token", interval_s=3),
    _case("drip on an API body", "drip", "get", "SchneiderApiError", "attempt deadline", interval_s=3),
    _case("drip on the headers", "drip_headers", "get", "SchneiderApiError", "attempt deadline", interval_s=3),
    _case("2 GiB body", "huge", "get", "SchneiderResponseError", "exceeds the", size=2 * GIB),
    _case("gzip bomb (2 GiB decoded)", "gzip_bomb", "get", "SchneiderResponseError", "exceeds the", size=2 * GIB),
    _case("endless chunked body", "endless", "get", "SchneiderResponseError", "exceeds the", delay_s=60),
    _case("JSON nested 100,000 deep", "nested", "get", "SchneiderResponseError", "nested too deeply", depth=100_000),
    _case("10^9 pages, 0 records", "lie_pages", "pages"),
    _case("10^9 pages, 250 records", "change_total_pages", "pages", "SchneiderResponseError", "max_pages",
          delta=10**9),
)  # fmt: skip


@dataclass
class Measured:
    outcome: str  # ok | error | killed
    elapsed: float
    peak_rss_mb: float
    error: str | None = None
    message: str = ""
    records: int | None = None
    api_calls: int | None = None


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_case(
    case: HostileCase,
    emulator: Any,
    *,
    source: Path | None = None,
    hard_timeout: float = 60.0,
    extras: dict[str, Any] | None = None,
) -> Measured:
    """Arm the fault, run the call in a child (``source``: another checkout's provider), measure it.

    The child is killed after ``hard_timeout`` seconds (the outcome is then ``killed``); its peak RSS is
    sampled from ``/proc`` while it runs, so a killed child still reports one.
    """
    emulator.clear_faults()
    if case.knobs:
        emulator.configure(**case.knobs)
    emulator.add_fault(**case.fault)
    before = emulator.stats()["api_calls"]
    connection = {
        "conn_type": "schneider",
        "host": emulator.url,
        "login": "demo-client",
        "password": "demo-secret",
        "extra": {**CASE_EXTRAS, **(extras or {})},
    }
    env = {**os.environ, "AIRFLOW_CONN_SCHNEIDER_DEFAULT": json.dumps(connection)}
    # Run as a script from outside the checkout, so only ``source`` (or the installed package) is importable.
    env["PYTHONPATH"] = str(source) if source is not None else ""
    cmd = [sys.executable, str(REPO / "tests" / "support" / "hostile_child.py"), case.op, case.path]
    started = time.monotonic()
    child = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=tempfile.gettempdir()
    )
    peak = 0.0
    while child.poll() is None and time.monotonic() - started < hard_timeout:
        peak = max(peak, _peak_rss_mb(child.pid) or 0.0)
        time.sleep(0.05)
    killed = child.poll() is None
    if killed:
        peak = max(peak, _peak_rss_mb(child.pid) or 0.0)
        child.kill()
    output = child.communicate()[0]
    elapsed = time.monotonic() - started
    emulator.clear_faults()
    api_calls = emulator.stats()["api_calls"] - before
    if killed:
        return Measured("killed", round(elapsed, 1), round(peak), api_calls=api_calls)
    line = next((x for x in output.splitlines() if x.startswith(RESULT_MARK)), None)
    if line is None:
        return Measured("crashed", round(elapsed, 1), round(peak), message=output[-500:], api_calls=api_calls)
    data = json.loads(line[len(RESULT_MARK) :])
    return Measured(
        data["outcome"],
        float(data["elapsed"]),
        round(peak),
        error=data.get("error"),
        message=data.get("message", ""),
        records=data.get("records"),
        api_calls=api_calls,
    )
