"""An order reaching a status runs a DAG: ``dags/schneider_order_shipped_watch.py`` on a private Airflow with
a real scheduler and triggerer. The asset watcher's trigger polls the emulator; an order moved to
``Shipped`` becomes one asset event whose payload is the order (never a token), and that event one
``asset_triggered`` run whose task reads the order number from it."""

from __future__ import annotations

import json

import pytest

from tests.conftest import CLIENT_SECRET
from tests.support.assets import PrivateAirflow, rows, wait_for

# Airflow 3.1's triggerer answers the Task SDK's blocking calls of a trigger (mask_secret, Variables) on a
# second event loop, racing its own: "Response read out of order" kills the trigger runner
# (apache/airflow#64620, fixed by 3.3). The thread-pool trigger before this provider version met it too.
pytestmark = [pytest.mark.system, pytest.mark.timeout(600), pytest.mark.latest_only]

DAG_ID = "schneider_order_shipped_watch"
URI = "schneider://order_status/FR/shipped"
ORDERS_PATH = "/v1/supply-chain/partner-order-status/orders/FR"


def test_an_order_that_ships_triggers_the_watching_dag(emulator, schneider_conn, tmp_path, monkeypatch):
    monkeypatch.setenv("SCHNEIDER_EXAMPLE_WATCH_INTERVAL", "2")
    emulator.set_order_status("FR", "FR00000050", "Open")
    airflow = PrivateAirflow(tmp_path / "airflow")
    airflow.must("db", "migrate")
    airflow.must("dags", "reserialize")
    airflow.must("dags", "unpause", DAG_ID)
    airflow.must("dags", "reserialize")  # a watcher's trigger is registered for an unpaused DAG only
    with airflow.running("triggerer"):
        first_look = emulator.stats()["api_calls_by_path"].get(ORDERS_PATH, 0)
        wait_for(
            lambda: emulator.stats()["api_calls_by_path"].get(ORDERS_PATH, 0) > first_look,
            180,
            "the watcher's first look at the French orders",
            airflow.component_output,
        )
        emulator.set_order_status("FR", "FR00000050", "Shipped")
        runs = wait_for(
            lambda: [
                r
                for r in rows(airflow.db, "SELECT run_id, run_type, state FROM dag_run WHERE dag_id = ?", DAG_ID)
                if r["state"] == "success"
            ],
            180,
            "a successful asset-triggered run",
            airflow.component_output,
        )
    assert [r["run_type"] for r in runs] == ["asset_triggered"]
    events = rows(
        airflow.db, "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?", URI
    )
    payloads = [json.loads(e["extra"])["payload"] for e in events]
    assert [p["order_number"] for p in payloads] == ["FR00000050"]  # the orders Shipped at start fire nothing
    assert payloads[0]["order_status"] == "Shipped" and payloads[0]["previous_status"] == "Open"
    assert payloads[0]["order"]["orderNumber"] == "FR00000050"
    text = json.dumps(payloads) + airflow.component_output()
    for secret in (CLIENT_SECRET, *emulator.issued_tokens()):
        assert secret not in text
    logs = "".join(p.read_text(errors="replace") for p in (tmp_path / "airflow").rglob("*.log"))
    assert "SCHNEIDER_SHIPPED FR00000050 Open -> Shipped" in logs
    for secret in (CLIENT_SECRET, *emulator.issued_tokens()):
        assert secret not in logs
