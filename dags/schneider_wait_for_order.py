"""Wait for a Schneider order to ship, in the triggerer (no worker slot held), then report it.

Trigger it with ``{"country": "FR", "order_number": "FR00000001"}``. The sensor fails at once if the order
is cancelled, and after ``timeout`` if it never ships. Runs as-is against the emulator; move the order
along with ``EmulatorClient.schedule_order_statuses(...)`` (see the emulator README).
``SCHNEIDER_EXAMPLE_POKE_INTERVAL`` (seconds, read when the file is parsed) shortens the polling for demos.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_schneider.sensors import SchneiderOrderStatusSensor

POKE_INTERVAL = float(os.environ.get("SCHNEIDER_EXAMPLE_POKE_INTERVAL", "300"))


@dag(
    dag_id="schneider_wait_for_order",
    schedule=None,
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    params={
        "country": Param("FR", type="string", pattern="^[A-Z]{2}$", description="ISO 3166 alpha-2"),
        "order_number": Param("FR00000001", type="string", minLength=3, description="full order number"),
    },
    tags=["schneider", "example"],
    doc_md=__doc__,
)
def schneider_wait_for_order():
    shipped = SchneiderOrderStatusSensor(
        task_id="wait_until_shipped",
        country="{{ params.country }}",
        order_number="{{ params.order_number }}",
        target_statuses=["Shipped", "Invoiced"],
        failure_statuses=["Cancelled"],
        deferrable=True,
        poke_interval=POKE_INTERVAL,
        timeout=timedelta(hours=12),
    )

    @task
    def report(order: dict) -> dict:
        """The order record as the sensor last saw it (XCom of the sensor)."""
        summary = {k: order.get(k) for k in ("orderNumber", "orderStatus", "country", "totalAmount", "currency")}
        print(f"SCHNEIDER_SUMMARY {summary}")
        return summary

    report(shipped.output)


schneider_wait_for_order()
