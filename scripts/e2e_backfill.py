#!/usr/bin/env python
"""End to end with a real scheduler: backfill the example DAGs against the emulator, check everything, rerun.

On a fresh temporary ``AIRFLOW_HOME`` this migrates a SQLite metadata DB, starts the emulator with a short
token lifetime (20 s) and some latency, parses and unpauses the example DAGs, creates backfills with
``airflow backfill create`` (30 Product Catalog delta intervals, 5 Order Status intervals), starts Airflow's
API server, dag processor and scheduler (LocalExecutor, 4 task slots), waits, and checks:

- every DAG run and task succeeded on its first try; one output file per data interval; the records equal
  the emulator's data for that interval (computed independently with ``emulator.data``), no duplicates;
- token requests counted by the emulator: renewed during the run, at most the ideal
  ``ceil(task span / (lifetime - leeway))``, far below one per pulling task run, never two at once;
- peak concurrent API calls at the emulator <= ``parallelism * max_concurrency`` (and Schneider's 10);
- then "clear and rerun" (``airflow tasks clear`` over the backfilled range, scheduler running): the same
  checks again, and every output file byte-identical (sha256) to the first run's;
- no secret (client secret, every issued token, Basic header, api key) in any file the run left: task
  logs, component output, outputs, metadata DB, token cache.

It prints a table and, as its last line, one JSON object; exit status 0 only when every check passed.
Every process it starts runs in its own process group and is stopped on success, failure, timeout, Ctrl-C
and SIGTERM. ``--hosts 2`` splits the executor's worker processes over two simulated hosts with separate
token file caches (see docs/backfills.md). The parts live in the ``schneider_e2e`` package next to
this file, one job per module. Run it with the project's venv::

    .venv/bin/python scripts/e2e_backfill.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from schneider_e2e.run import main

if __name__ == "__main__":
    sys.exit(main())
