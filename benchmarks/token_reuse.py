"""Token requests and wall time for N short task runs: this provider vs a token-per-run baseline.

What one "task run" is here: a fresh process (new pid, empty memory) forked from a launcher that has already
imported Airflow's task runtime, ``requests`` and this provider, the way Airflow's supervisor forks a task
process (which has those modules loaded before the task's code runs).
In it, the provider run builds ``SchneiderHook()`` from ``AIRFLOW_CONN_SCHNEIDER_DEFAULT`` and makes one
Order Status call (page 1, one record); the baseline run does what a hand-written PythonOperator with
``requests`` does: read the same connection with ``BaseHook.get_connection``, ``POST /token``, then the
same GET with that token, nothing cached. ``--parallel 8``
runs the N task runs through 8 processes at once, still one fresh process per task run.

Both sides run in the same invocation against the same emulator subprocess, started here with a token
endpoint latency of 150 ms and an API latency of 20 ms (change with --token-latency-ms / --latency-ms).
Each provider scenario starts with an empty host cache directory. Not measured: Airflow's own per-task
cost (scheduling, DAG parsing, ~8 s per ``airflow dags test``), the same for both sides; and the
cluster tier (Airflow Variable), which needs a running task: across task runs on one host the file tier
does the reuse here.

    .venv/bin/python benchmarks/token_reuse.py            # N = 10, 50, 200 sequential; 200 on 8 processes
    .venv/bin/python benchmarks/token_reuse.py --quick    # N = 5, 20 sequential; 20 on 8 processes
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
# Airflow reads its configuration on import: keep it away from the user's ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", os.path.join(tempfile.gettempdir(), "schneider-token-bench-airflow"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

import airflow.sdk.execution_time.supervisor  # noqa: E402, F401 - loaded in every real task process
import requests  # noqa: E402
from airflow.sdk import BaseHook  # noqa: E402

from airflow_provider_schneider.emulator.client import EmulatorProcess  # noqa: E402
from airflow_provider_schneider.hooks.schneider import SchneiderHook  # noqa: E402

ORDERS = "/v1/supply-chain/partner-order-status/orders/FR"
QUERY = {"page": 1, "page-size": 1}
CLIENT_ID, CLIENT_SECRET = "demo-client", "demo-secret"


def provider_task_run(conn_json: str) -> tuple[float, int]:
    """One task run with this provider; returns (seconds from hook creation to response, pid)."""
    os.environ["AIRFLOW_CONN_SCHNEIDER_DEFAULT"] = conn_json
    started = time.perf_counter()
    hook = SchneiderHook()
    hook.request("GET", ORDERS, params=QUERY)
    return time.perf_counter() - started, os.getpid()


def baseline_task_run(conn_json: str) -> tuple[float, int]:
    """One task run as usually hand-written: credentials from the Airflow connection, a token, the call."""
    os.environ["AIRFLOW_CONN_SCHNEIDER_DEFAULT"] = conn_json
    started = time.perf_counter()
    conn = BaseHook.get_connection("schneider_default")
    url = conn.host
    reply = requests.post(
        f"{url}/token", data={"grant_type": "client_credentials"}, auth=(conn.login, conn.password), timeout=60
    )
    reply.raise_for_status()
    token = reply.json()["access_token"]
    reply = requests.get(f"{url}{ORDERS}", params=QUERY, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    reply.raise_for_status()
    return time.perf_counter() - started, os.getpid()


def run_batch(ctx, fn, arg: str, runs: int, processes: int) -> tuple[float, list[float], int]:
    """``runs`` task runs, each in its own fresh process, ``processes`` at a time: (wall s, per-run s, pids)."""
    started = time.perf_counter()
    with ctx.Pool(processes=processes, maxtasksperchild=1) as pool:
        results = pool.map(fn, [arg] * runs, chunksize=1)
    wall = time.perf_counter() - started
    return wall, [seconds for seconds, _ in results], len({pid for _, pid in results})


def measure(ctx, emulator, scratch: Path, runs: int, processes: int, label: str) -> dict:
    row: dict = {"runs": runs, "processes": processes}
    cache_dir = scratch / f"cache-{label}"
    conn = json.dumps(
        {
            "conn_type": "schneider",
            "host": emulator.url,
            "login": CLIENT_ID,
            "password": CLIENT_SECRET,
            "extra": {"token_cache_dir": str(cache_dir)},
        }
    )
    for side, fn in (("provider", provider_task_run), ("baseline", baseline_task_run)):
        emulator.client.reset_counters()
        wall, per_run, pids = run_batch(ctx, fn, conn, runs, processes)
        stats = emulator.client.stats()
        if pids != runs or stats["api_calls_by_status"] != {"200": runs}:
            raise SystemExit(f"{side} {label}: {pids} processes for {runs} runs, API answers {stats}")
        row[side] = {
            "token_requests": stats["token_requests"],
            "wall": wall,
            "median_ms": statistics.median(per_run) * 1000,
        }
    shutil.rmtree(cache_dir, ignore_errors=True)
    return row


def table(rows: list[dict], token_latency_ms: float, latency_ms: float) -> str:
    lines = [
        f"Token endpoint latency {token_latency_ms:g} ms, API latency {latency_ms:g} ms. One task run = one fresh "
        "process that authenticates and makes one Order Status call; median = in-process time from hook "
        "creation (baseline: from reading the connection) to the API answer.",
        "",
        "| task runs | processes at once | token requests: provider | token requests: baseline "
        "| wall s: provider | wall s: baseline | wall ratio baseline/provider "
        "| median ms per run: provider | median ms per run: baseline |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        p, b = row["provider"], row["baseline"]
        lines.append(
            f"| {row['runs']} | {row['processes']} | {p['token_requests']} | {b['token_requests']} "
            f"| {p['wall']:.2f} | {b['wall']:.2f} | {b['wall'] / p['wall']:.2f}x "
            f"| {p['median_ms']:.1f} | {b['median_ms']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 5, 20 and 20 on 8 processes")
    parser.add_argument("--token-latency-ms", type=float, default=150.0)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--parallel", type=int, default=8, help="processes at once for the parallel rows")
    args = parser.parse_args()
    # The provider's "Requested a new Schneider token" lines go to stderr; stdout carries only the table.
    provider_log = logging.getLogger("airflow_provider_schneider")
    provider_log.addHandler(logging.StreamHandler(sys.stderr))
    provider_log.setLevel(logging.INFO)
    provider_log.propagate = False
    sizes, parallel_sizes = ([5, 20], [20]) if args.quick else ([10, 50, 200], [200])

    # Airflow, requests and the provider are imported once, here; every task run is a fork of this process,
    # which never builds a hook nor holds a token (so each task process starts with an empty memory tier).
    ctx = multiprocessing.get_context("fork")
    scratch = Path(tempfile.mkdtemp(prefix="schneider-token-bench-"))
    rows = []
    try:
        with EmulatorProcess(token_latency_ms=args.token_latency_ms, latency_ms=args.latency_ms) as emulator:
            measure(ctx, emulator, scratch, 2, 1, "warm-up")  # warm OS caches and the emulator
            for runs in sizes:
                rows.append(measure(ctx, emulator, scratch, runs, 1, f"seq-{runs}"))
                print(f"measured {runs} sequential task runs", file=sys.stderr)
            for runs in parallel_sizes:
                rows.append(measure(ctx, emulator, scratch, runs, args.parallel, f"par-{runs}"))
                print(f"measured {runs} task runs on {args.parallel} processes", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(table(rows, args.token_latency_ms, args.latency_ms))


if __name__ == "__main__":
    main()
