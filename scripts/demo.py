"""The main job, on a fresh machine, against the local emulator (no credentials needed).

Starts the Schneider API emulator, prepares a private AIRFLOW_HOME (SQLite), runs the example DAGs with
``airflow dags test`` as separate processes, then prints what was pulled and how many token requests it
took. Everything lands in ``.demo/`` (outputs in ``.demo/data``), wiped at each run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from airflow_provider_schneider.emulator.client import EmulatorProcess  # noqa: E402
from tests.support.dagrun import run_dag  # noqa: E402

WORK = REPO / ".demo"
RUNS = [
    ("schneider_order_status_daily", "2026-11-25"),
    ("schneider_order_status_daily", "2026-11-26"),
    ("schneider_product_catalog_delta", "2026-11-20"),
    ("schneider_stock_availability", "2026-11-26"),
]


def prepare_environment(emulator_url: str) -> dict[str, str]:
    home = WORK / "airflow"
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE": f"file://{WORK}/data",
        "AIRFLOW_PROVIDER_SCHNEIDER_TOKEN_CACHE_DIR": str(WORK / "token_cache"),
        "AIRFLOW_CONN_SCHNEIDER_DEFAULT": json.dumps(
            {"conn_type": "schneider", "host": emulator_url, "login": "demo-client", "password": "demo-secret"}
        ),
    }
    os.environ.update(env)
    home.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return env


def main() -> int:
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir()
    started = time.monotonic()
    with EmulatorProcess(latency_ms=20) as emulator:
        print(f"Schneider API emulator at {emulator.url}; preparing Airflow in {WORK / 'airflow'} ...", flush=True)
        prepare_environment(emulator.url)
        rows = []
        api_task_runs = 0
        for dag_id, date in RUNS:
            print(f"running {dag_id} for {date} ...", flush=True)
            result = run_dag(dag_id, date)
            (WORK / f"{dag_id}_{date}.log").write_text(result.output)
            if not result.succeeded:
                print(result.output[-4000:])
                print(f"FAILED: {dag_id} {date} (full log: {WORK / f'{dag_id}_{date}.log'})")
                return 1
            rows.append((dag_id, date, result.summaries[-1]))
            api_task_runs += result.output.count("Wrote ")  # one such line per Schneider operator task run
        stats = emulator.client.stats()

    print("\nWhat was pulled")
    print(f"{'DAG':34} {'date':11} summary")
    for dag_id, date, summary in rows:
        shown = {k: v for k, v in summary.items() if k not in ("uri", "uris", "sha256")}
        print(f"{dag_id:34} {date:11} {shown}")
    print(
        f"\nToken requests: {stats['token_requests']} for {api_task_runs} Schneider task runs in {len(RUNS)} separate "
        f"`airflow dags test` processes (a token per task run would have cost {api_task_runs}); "
        f"API calls: {stats['api_calls']} {stats['api_calls_by_status']}; "
        f"peak parallel calls: {stats['peak_concurrency']}; wall time {time.monotonic() - started:.0f}s"
    )
    print(f"Outputs (JSON Lines): {WORK / 'data'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
