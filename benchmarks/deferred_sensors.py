"""Deferred order sensors in a real triggerer: the coalesced async polls against the thread-pool trigger.

Runs ``scripts/deferred_sensors.py`` (fresh AIRFLOW_HOME, SQLite, LocalExecutor, API server, scheduler and
triggerer; the emulator in its Apigee dialect answering each call after 2 s, 1,234 orders in the country:
13 pages of 100) for 100 and 500 sensors, each with the provider's trigger and with the trigger the provider
had before (a blocking lookup per poll in a thread of the triggerer's executor). The sensors start and end
in the triggerer (``start_from_trigger``, ``end_from_trigger``), so no worker runs and the triggerer is all
that is measured. Prints one markdown table.

    .venv/bin/python benchmarks/deferred_sensors.py              # about 15 minutes
    .venv/bin/python benchmarks/deferred_sensors.py --sensors 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(sensors: int, baseline: bool, latency_ms: float, poke: float) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    args = ["--sensors", str(sensors), "--latency-ms", str(latency_ms), "--poke", str(poke), "--timeout", "1500"]
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "deferred_sensors.py"), *args, *(["--baseline"] if baseline else [])],
        capture_output=True, text=True, env=env, cwd="/tmp", timeout=1800,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("DEFERRED_RESULT ")]
    if not lines:
        raise SystemExit(f"deferred_sensors failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].split(" ", 1)[1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sensors", type=int, nargs="*", default=[100, 500])
    p.add_argument("--latency-ms", type=float, default=2000)
    p.add_argument("--poke", type=float, default=5)
    a = p.parse_args()
    rows = []
    for sensors in a.sensors:
        for baseline in (True, False):
            started = time.monotonic()
            result = run(sensors, baseline, a.latency_ms, a.poke)
            result["wall_s"] = round(time.monotonic() - started)
            rows.append(result)
            print(json.dumps(result), file=sys.stderr, flush=True)
    print(
        f"\n{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, gateway latency {a.latency_ms:g} ms, "
        f"poke {a.poke:g} s, 1,234 orders in the country (13 pages of 100)\n"
    )
    print(
        "| sensors | trigger | calls per poke interval | peak calls in flight at the gateway | last flip seen after "
        "| succeeded | triggerer threads (per process) | triggerer RSS | token requests | secrets in logs |"
    )
    print("|---:|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['sensors']} | {r['trigger']} | {r['calls_per_poke_interval']} | {r['peak_in_flight']} "
            f"| {r['reaction_s']} s | {r['succeeded']} | {'/'.join(map(str, r['triggerer_threads']))} "
            f"| {r['triggerer_rss_mb']:.0f} MB | {r['token_requests']} | {r['secrets_in_logs']} |"
        )


if __name__ == "__main__":
    main()
