"""The DAG of the cluster run (copied into the cluster's DAGs folder as ``schneider_cluster_backfill.py``).

Per daily data interval: four mapped Product Catalog delta pulls (one per change type) into ``s3://``
through ``ObjectStoragePath`` (the amazon provider, against the S3 server on loopback), all in the
``schneider`` pool, so the pool's slots x ``max_concurrency`` bound the parallel calls of the whole cluster;
then ``read_back``, on whichever worker Celery hands it to, reads every manifest's object back and checks
its record count and sha256.

``SCHNEIDER_E2E_POD_PER_TASK=1`` in a worker's environment gives every task run a fresh, empty token
cache directory, as a pod per task under the KubernetesExecutor would have.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import dag, task

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow < 3.2
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_schneider.operators import SchneiderProductCatalogOperator

DAG_ID = "schneider_cluster_backfill"
POOL = "schneider"
STORAGE_CONN_ID = "schneider_e2e_s3"
CHANGE_TYPES = ["new", "update", "delete", "all"]
POD_PER_TASK_ENV = "SCHNEIDER_E2E_POD_PER_TASK"
POD_BASE_ENV = "SCHNEIDER_E2E_POD_BASE"


def fresh_host_cache(context) -> None:
    """Pod per task: this task run's token file cache starts empty (the hook is built after this hook)."""
    if os.environ.get(POD_PER_TASK_ENV) == "1":
        import tempfile

        base = os.environ[POD_BASE_ENV]
        os.makedirs(base, mode=0o700, exist_ok=True)
        os.environ["AIRFLOW_PROVIDER_SCHNEIDER_TOKEN_CACHE_DIR"] = tempfile.mkdtemp(prefix="pod-", dir=base)


@dag(
    dag_id=DAG_ID,
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 10, 1, tz="UTC"),
    catchup=False,
    max_active_runs=16,
    tags=["schneider", "e2e", "cluster"],
)
def schneider_cluster_backfill():
    pulls = SchneiderProductCatalogOperator.partial(
        task_id="pull_catalog_delta",
        supplier_id="SE-FR-0001",
        customer_id="0012345678",
        date_of_reference="{{ data_interval_start | ds }}",
        changed_before="{{ data_interval_end | ds }}",
        compression="gzip",
        storage_conn_id=STORAGE_CONN_ID,
        pool=POOL,
        pre_execute=fresh_host_cache,
        outlets=[],
    ).expand(change_type=CHANGE_TYPES)

    @task
    def read_back(manifests) -> dict:
        """Every object named by a manifest, read back from the object store: records and sha256 as stated."""
        import hashlib
        import json

        from airflow_provider_schneider.sinks import read_jsonl, to_storage_path

        checked = []
        for manifest in manifests:
            data = to_storage_path(manifest["uri"], STORAGE_CONN_ID).read_bytes()
            records = sum(1 for _ in read_jsonl(manifest["uri"], STORAGE_CONN_ID))
            ok = hashlib.sha256(data).hexdigest() == manifest["sha256"] and records == manifest["records"]
            checked.append({"uri": manifest["uri"], "records": records, "ok": ok})
        host = os.environ.get("SCHNEIDER_E2E_HOSTNAME", "")
        print("SCHNEIDER_READBACK " + json.dumps({"host": host, "objects": checked}, sort_keys=True))
        if not all(item["ok"] for item in checked):
            raise ValueError(f"objects differ from their manifests: {checked}")
        return {"host": host, "objects": len(checked)}

    read_back(pulls.output)


schneider_cluster_backfill()
