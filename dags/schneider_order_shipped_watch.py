"""Run when a Schneider order ships: an asset watched in the triggerer, no schedule, no sensor task.

``SchneiderOrderStatusEventTrigger`` watches the French orders (one listing per poll for every watcher and
deferred sensor of the country in the triggerer) and fires once per order that *reaches* ``Shipped`` while
it watches; each event becomes an asset event, and each asset event a run of this DAG, whose task reads the
order from the event. Runs as-is against the emulator: move an order with
``EmulatorClient.set_order_status("FR", "FR00000050", "Shipped")``.
``SCHNEIDER_EXAMPLE_WATCH_INTERVAL`` (seconds, read when the file is parsed) shortens the polling for demos.
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_schneider.triggers.order_events import SchneiderOrderStatusEventTrigger

WATCH_INTERVAL = float(os.environ.get("SCHNEIDER_EXAMPLE_WATCH_INTERVAL", "300"))

fr_orders_shipped = Asset(
    name="schneider.order_status.FR.shipped",
    uri="schneider://order_status/FR/shipped",
    watchers=[
        AssetWatcher(
            name="schneider_fr_orders_shipped",
            trigger=SchneiderOrderStatusEventTrigger(
                country="FR", target_statuses=["Shipped"], poll_interval=WATCH_INTERVAL
            ),
        )
    ],
)

with DAG(
    dag_id="schneider_order_shipped_watch",
    schedule=[fr_orders_shipped],
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    tags=["schneider", "example"],
    doc_md=__doc__,
):

    @task
    def on_shipped(**context) -> list[str]:
        """The orders whose shipment started this run (the trigger's event is the asset event's payload)."""
        shipped = []
        for event in context["triggering_asset_events"][fr_orders_shipped]:
            payload = (event.extra or {}).get("payload", event.extra or {})
            shipped.append(str(payload.get("order_number")))
            print(
                f"SCHNEIDER_SHIPPED {payload.get('order_number')} {payload.get('previous_status')} -> "
                f"{payload.get('order_status')}"
            )
        return shipped

    on_shipped()
