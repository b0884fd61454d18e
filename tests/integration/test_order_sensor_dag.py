"""The deferrable example DAG, run for real with ``airflow dags test`` (which runs deferred tasks' triggers
in-process, re-created from their serialized kwargs as a triggerer would).

The order is moved only after the emulator has seen the sensor's first poke and the trigger's first poll,
so the test proves a deferral happened without relying on timing.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import API_KEY, CLIENT_SECRET

pytestmark = pytest.mark.timeout(180)

DAG_ID = "schneider_wait_for_order"
ORDER = "FR00000002"
ORDERS_PATH = "/v1/supply-chain/partner-order-status/orders/FR"
FAST = {"SCHNEIDER_EXAMPLE_POKE_INTERVAL": "0.5"}


def run_and_move_order(run_dag, emulator, final_status: str):
    """Start the DAG run; once the trigger is polling (>= 2 order calls), set ``final_status``."""
    emulator.set_order_status("FR", ORDER, "In Progress")
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(run_dag, DAG_ID, conf={"country": "FR", "order_number": ORDER}, env=FAST)
        while not future.done() and emulator.stats()["api_calls_by_path"].get(ORDERS_PATH, 0) < 2:
            time.sleep(0.1)
        emulator.set_order_status("FR", ORDER, final_status)
        return future.result()


def test_deferrable_dag_waits_in_the_trigger_and_succeeds(run_dag, emulator):
    result = run_and_move_order(run_dag, emulator, "Shipped")
    assert result.succeeded, result.output[-4000:]
    assert "[DAG TEST] running trigger in line" in result.output  # the sensor really deferred
    # The trigger's event, logged by execute_complete (its polls are said at INFO only when the status moves)
    assert f"Order {ORDER} (FR) reached status 'Shipped'" in result.output
    assert result.summaries == [
        {
            "orderNumber": ORDER,
            "orderStatus": "Shipped",
            "country": "FR",
            "totalAmount": result.summaries[0]["totalAmount"],
            "currency": result.summaries[0]["currency"],
        }
    ]
    assert emulator.stats()["token_requests"] == 1  # worker and trigger shared the cached token
    assert CLIENT_SECRET not in result.output and API_KEY not in result.output


def test_deferrable_dag_fails_clearly_on_cancellation(run_dag, emulator):
    result = run_and_move_order(run_dag, emulator, "Cancelled")
    assert not result.succeeded
    assert "[DAG TEST] running trigger in line" in result.output
    assert "SchneiderOrderStatusFailed" in result.output
    assert "has status 'Cancelled', a failure status: it will never reach 'Shipped' or 'Invoiced'" in result.output
    assert result.summaries == []  # the downstream task never ran
