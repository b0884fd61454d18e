#!/usr/bin/env python
"""End to end on a cluster: CeleryExecutor, PostgreSQL, Redis, three worker hosts, outputs on S3.

Starts, on loopback and in private temporary directories: PostgreSQL and Redis (Debian packages, installed
if missing), an S3-compatible server (moto), the emulator (Apigee profile, 20 s tokens, 20 ms latency), and
Airflow 3.3: api-server, scheduler, dag-processor, triggerer and three Celery workers, each a separate host
for the provider (own AIRFLOW_HOME, HOME, token cache directory, hostname). Backfills 30 daily intervals x
4 mapped Product Catalog delta pulls to ``s3://`` in a pool whose slots x ``max_concurrency`` = 10, then
reruns with ``airflow tasks clear``, a control run with the cross-host lease off, and a pod-per-task run
(a fresh token cache directory per task run). Prints a table and, as its last line, one JSON object; exit
status 0 only when every check passed. Every process is stopped at the end, also on failure and SIGTERM.

Needs the cluster venv (``make e2e-cluster`` builds it): ``.venv-cluster/bin/python scripts/e2e_cluster.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from schneider_e2e.cluster_run import main

if __name__ == "__main__":
    sys.exit(main())
