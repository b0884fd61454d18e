"""Deferred order sensors in a real triggerer (scheduler, triggerer and API server; LocalExecutor, SQLite).

Twenty sensors on one country start and end in the triggerer (``scripts/deferred_sensors.py``); the gateway
answers each call after 1 s and its country holds 1,234 orders (13 pages of 100). Checked: every sensor
succeeds after its order flips, the gateway never sees more than Schneider's 10 calls in flight, one token
is requested, each poke interval costs at most one listing (never a call per sensor), the triggerer's
threads stay those of the thread-pool-free baseline, and no secret reaches any log.
The 100 and 500 sensor figures are in docs/benchmarks.md (``benchmarks/deferred_sensors.py``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Airflow 3.1's triggerer answers the Task SDK's blocking calls of a trigger (mask_secret, Variables) on a
# second event loop, racing its own: "Response read out of order" kills the trigger runner
# (apache/airflow#64620, fixed by 3.3). The thread-pool trigger before this provider version met it too.
pytestmark = [pytest.mark.system, pytest.mark.timeout(900), pytest.mark.latest_only]


def deferred_run(tmp_path: Path, *extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    args = ["--sensors", "20", "--latency-ms", "1000", "--poke", "3", "--timeout", "600", *extra]
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "deferred_sensors.py"), *args, "--workdir", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=800,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("DEFERRED_RESULT ")]
    assert lines, f"the run did not report:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return json.loads(lines[-1].split(" ", 1)[1])


def test_twenty_deferred_sensors_share_the_calls_of_one_poller(tmp_path):
    result = deferred_run(tmp_path)
    assert result["succeeded"] == 20, result
    assert result["peak_in_flight"] <= 10, result
    assert result["token_requests"] == 1, result
    # One listing (13 pages) a poke interval at most; the thread-pool trigger asked 20 lookups each time.
    assert result["calls_per_poke_interval"] <= 13, result
    assert result["reaction_s"] <= 15, result
    assert result["secrets_in_logs"] == 0, result
    # The runner process of the triggerer keeps its own threads only: no executor thread per poll (the
    # thread-pool trigger grows it by up to 6 at 20 sensors).
    assert max(result["triggerer_threads"]) <= 6, result  # 5 measured; the thread-pool trigger: 8
