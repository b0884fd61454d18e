"""Hostile gateway: time and peak RSS of one call per hostile answer, for this checkout and (optionally) an
older one, measured in the same run against the same emulator.

    python benchmarks/hostile_gateway.py                     # this checkout only
    python benchmarks/hostile_gateway.py --before /tmp/old   # plus a checkout of an earlier commit
        (git worktree add /tmp/old <commit>)

Each call runs in a child process (``tests/support/hostile_child.py``) killed after ``--kill-after`` seconds; its
peak RSS (VmHWM) is sampled from /proc while it runs. Also measured: ``airflow dags test`` of a paged pull
whose pages 2..N drip, under an 8 s ``execution_timeout`` (wall time of the whole command).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from airflow_provider_schneider.emulator.client import EmulatorProcess  # noqa: E402
from tests.support.hostile import CASES, Measured, run_case  # noqa: E402

ORDERS = "/v1/supply-chain/partner-order-status/orders/FR"
TIMEOUT_DAG = textwrap.dedent(
    """
    from datetime import timedelta
    import pendulum
    from airflow.sdk import DAG
    from airflow_provider_schneider.operators.orders import SchneiderOrderStatusOperator

    with DAG("hostile_execution_timeout", schedule=None, start_date=pendulum.datetime(2026, 11, 1, tz="UTC")):
        SchneiderOrderStatusOperator(
            task_id="pull", country="FR", execution_timeout=timedelta(seconds=8), retries=0, max_concurrency=4
        )
    """
)


def cell(m: Measured) -> str:
    what = {"ok": f"ok ({m.records} records)" if m.records is not None else "ok", "killed": "still running: killed"}
    outcome = what.get(m.outcome) or f"{m.error}"
    return f"{m.elapsed:>6.1f} s | {m.peak_rss_mb:>6.0f} MB | {outcome}"


def timeout_run(emulator, source: Path | None, home: Path, kill_after: float) -> str:
    """``airflow dags test`` of an 8 s execution_timeout pull whose pages 2..N drip; wall seconds."""
    emulator.clear_faults()
    emulator.add_fault(target=ORDERS, kind="drip", interval_s=2, skip=1, times=-1)
    dags = home / "dags"
    dags.mkdir(exist_ok=True)
    (dags / "hostile_timeout.py").write_text(TIMEOUT_DAG)
    conn = {
        "conn_type": "schneider",
        "host": emulator.url,
        "login": "demo-client",
        "password": "demo-secret",
        "extra": {"attempt_timeout": 600, "max_concurrency": 4, "page_size": 10, "token_cache": "none"},
    }
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW_CONN_SCHNEIDER_DEFAULT": json.dumps(conn),
           "PYTHONPATH": str(source or "")}  # fmt: skip
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, "-m", "airflow", "dags", "test", "hostile_execution_timeout"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True, cwd=home,
    )  # fmt: skip
    try:
        child.wait(timeout=kill_after)
        outcome = "ended"
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, 9)
        child.wait()
        outcome = "still running: killed"
    emulator.clear_faults()
    return f"{time.monotonic() - started:>6.1f} s | {outcome}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, help="checkout of an earlier commit to measure beside this one")
    parser.add_argument("--kill-after", type=float, default=60.0)
    args = parser.parse_args()
    sources: list[tuple[str, Path | None]] = [("after", None)]
    if args.before:
        sources.insert(0, ("before", args.before.resolve()))
    home = Path(tempfile.mkdtemp(prefix="hostile-bench-"))
    os.environ.setdefault("AIRFLOW_HOME", str(home))
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True,
                   env={**os.environ, "AIRFLOW_HOME": str(home)})  # fmt: skip

    rows: list[tuple[str, dict[str, str]]] = []
    with EmulatorProcess() as emulator_process:
        emulator = emulator_process.client
        baseline = {}
        for label, source in sources:
            from tests.support.hostile import HostileCase

            plain = HostileCase("no fault (baseline)", {"target": "api", "kind": "delay", "delay_s": 0})
            baseline[label] = cell(run_case(plain, emulator, source=source, hard_timeout=args.kill_after))
        rows.append(("no fault (baseline)", baseline))
        for case in CASES:
            results = {}
            for label, source in sources:
                results[label] = cell(run_case(case, emulator, source=source, hard_timeout=args.kill_after))
                print(f"  {case.name} [{label}]: {results[label]}", file=sys.stderr, flush=True)
            rows.append((case.name, results))
        results = {}
        for label, source in sources:
            results[label] = timeout_run(emulator, source, home, max(args.kill_after, 120)) + " | (wall, whole CLI)"
        rows.append(("execution_timeout 8 s, pages 2..N drip", results))

    labels = [label for label, _ in sources]
    print(f"\nHostile gateway, {time.strftime('%Y-%m-%d')}, one call per case (child process), "
          f"kill after {args.kill_after:g} s; connection: attempt_timeout 3 s, timeout 10 s, 2 attempts\n")  # fmt: skip
    print("| case | " + " | ".join(f"{lab}: time | peak RSS | outcome" for lab in labels) + " |")
    print("|---|" + "---|---|---|" * len(labels))  # three columns per checkout
    for name, results in rows:
        print(f"| {name} | " + " | ".join(results.get(lab, "") for lab in labels) + " |")


if __name__ == "__main__":
    main()
