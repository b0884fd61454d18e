"""A deployment's calls under a real scheduler: the per-client host cap against the same backfill without it.

Runs ``scripts/e2e_backfill.py`` (fresh AIRFLOW_HOME, SQLite, LocalExecutor, API server, dag processor and
scheduler, the emulator in its Apigee dialect) twice with the hook's default settings (``max_concurrency``
4) on 8 task slots: 30 Product Catalog delta and 30 Order Status intervals, 1 s per API call, 10 orders a
page (pulls long enough to overlap: shorter ones on two cores mostly wait for task start-up). Baseline:
the connection's ``client_max_in_flight`` 0 (no host-wide cap: what the provider did before).
Prints the peak of calls in flight the emulator saw, the token requests and the wall time of each.

    .venv/bin/python benchmarks/deployment_backfill.py    # about 4 minutes
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARGS = [
    "--parallelism", "8", "--max-concurrency", "4", "--latency-ms", "1000", "--intervals", "30",
    "--order-intervals", "30", "--page-size", "10", "--no-rerun", "--timeout", "900",
]  # fmt: skip


def run(cap: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    extra = [] if cap is None else ["--client-max-in-flight", cap]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "e2e_backfill.py"), *ARGS, *extra],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=1200,
    )  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise SystemExit(f"e2e_backfill failed to report:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1])
    phase = result["phases"][0]
    return {
        **phase,
        "elapsed": time.monotonic() - started,
        "failed": [c for c in result.get("checks", []) if not c.get("ok", True)],
    }


def main() -> None:
    rows = []
    for name, cap in (("no host cap (baseline: before this change)", "0"), ("default: 10 per client and host", None)):
        r = run(cap)
        rows.append(
            f"| {name} | {r['peak_concurrency']} | {r['api_calls'] if 'api_calls' in r else '-'} | "
            f"{r['token_requests']} | {r['wall_s']:.0f} |"
        )
    title = "Backfill under a real scheduler: 8 task slots x max_concurrency 4, 60 pulling task runs, 1 s per call"
    print(f"### {title} ({time.strftime('%Y-%m-%d')})\n")
    print("| host cap | peak calls in flight at the gateway | API calls | token requests | wall (s) |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
