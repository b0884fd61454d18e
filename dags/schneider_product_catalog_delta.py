"""Product Catalog delta per data interval: the backfill model case.

Each run covers one day ``[data_interval_start, data_interval_end)``: ``date-of-reference`` is the
interval start, and changes dated on or after the interval end are dropped, so each interval's file holds
that day's changes whenever it runs. The same DAG serves the daily schedule and any backfill range
(``airflow backfill create --dag-id schneider_product_catalog_delta --from-date ... --to-date ...``);
rerunning an interval replaces its file. Long backfills share one OAuth token per token lifetime.

Each successful run emits an event of the asset ``schneider://product_catalog/<supplier>/<customer>``
(extra: the file's uri, records, sha256, interval), which ``schneider_catalog_consumer`` is scheduled on.
The ids are plain values, not params: an asset's scope has to be known when the DAG file is parsed.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow < 3.2
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_schneider.operators import (
    CHANGED_BEFORE_INTERVAL_END,
    DELTA_SINCE_INTERVAL_START,
    SchneiderProductCatalogOperator,
)

SUPPLIER_ID = "SE-FR-0001"
CUSTOMER_ID = "0012345678"


@dag(
    dag_id="schneider_product_catalog_delta",
    # Real data intervals: the run for [Nov 4, Nov 5) starts at Nov 5 00:00 (a plain cron string in Airflow 3
    # gives zero-length intervals at the trigger time).
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 10, 1, tz="UTC"),
    catchup=True,
    max_active_runs=8,
    params={
        "change_type": Param("all", enum=["all", "new", "update", "delete"]),
    },
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
    tags=["schneider", "example", "backfill"],
    doc_md=__doc__,
)
def schneider_product_catalog_delta():
    delta = SchneiderProductCatalogOperator(
        task_id="pull_catalog_delta",
        supplier_id=SUPPLIER_ID,
        customer_id=CUSTOMER_ID,
        date_of_reference=DELTA_SINCE_INTERVAL_START,  # "{{ data_interval_start | ds }}"
        changed_before=CHANGED_BEFORE_INTERVAL_END,  # "{{ data_interval_end | ds }}"
        change_type="{{ params.change_type }}",
        compression="gzip",
    )

    @task
    def summarize_changes(manifest: dict, data_interval_start=None, data_interval_end=None) -> dict:
        """Changes per type for the interval, read back from the file the pull wrote."""
        from collections import Counter

        from airflow_provider_schneider.sinks import read_jsonl

        by_type = Counter(p.get("changeType", "unknown") for p in read_jsonl(manifest["uri"]))
        summary = {
            "since": f"{data_interval_start:%Y-%m-%d}",
            "until": f"{data_interval_end:%Y-%m-%d}",
            "products": manifest["records"],
            "by_change_type": dict(sorted(by_type.items())),
            "sha256": manifest["sha256"],
            "uri": manifest["uri"],
        }
        print(f"SCHNEIDER_SUMMARY {summary}")
        return summary

    summarize_changes(delta.output)


schneider_product_catalog_delta()
