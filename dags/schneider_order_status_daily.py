"""Daily snapshot of every Schneider order of a country, with a downstream summary.

Runs as-is against the emulator (``make demo``). The pull writes JSON Lines to object storage, one file
per data interval (a rerun replaces it, never appends); XCom carries only the manifest.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow < 3.2
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_schneider.operators import SchneiderOrderStatusOperator


@dag(
    dag_id="schneider_order_status_daily",
    # Real data intervals (a plain cron string in Airflow 3 gives zero-length ones at the trigger time).
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    params={"country": Param("FR", type="string", pattern="^[A-Z]{2}$", description="ISO 3166 alpha-2")},
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    tags=["schneider", "example"],
    doc_md=__doc__,
)
def schneider_order_status_daily():
    # Every page of the country; pages 2..N concurrently (connection extra max_concurrency, default 4).
    orders = SchneiderOrderStatusOperator(task_id="pull_orders", country="{{ params.country }}")

    @task
    def summarize(manifest: dict) -> dict:
        """Count orders per status from the file the pull wrote (not from XCom)."""
        from collections import Counter

        from airflow_provider_schneider.sinks import read_jsonl

        by_status: Counter[str] = Counter()
        amount = 0.0
        for order in read_jsonl(manifest["uri"]):
            by_status[order.get("orderStatus", "unknown")] += 1
            amount += float(order.get("totalAmount") or 0)
        if sum(by_status.values()) != manifest["records"]:
            raise ValueError(
                f"{manifest['uri']} holds {sum(by_status.values())} records, manifest says {manifest['records']}"
            )
        summary = {
            "orders": manifest["records"],
            "pages": manifest["pages"],
            "bytes": manifest["bytes"],
            "sha256": manifest["sha256"],
            "uri": manifest["uri"],
            "total_amount": round(amount, 2),
            "by_status": dict(sorted(by_status.items())),
        }
        print(f"SCHNEIDER_SUMMARY {summary}")
        return summary

    summarize(orders.output)


schneider_order_status_daily()
