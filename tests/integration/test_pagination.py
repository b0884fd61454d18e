"""Page-number pagination (hook level, real HTTP to the emulator) and the ordered fan-out beneath it."""

from __future__ import annotations

import random
import threading
import time

import pytest

from airflow_provider_schneider.client.concurrency import ordered_map
from airflow_provider_schneider.client.pagination import Page, dig, records_of
from airflow_provider_schneider.emulator import data
from airflow_provider_schneider.exceptions import SchneiderResponseError

pytestmark = pytest.mark.dialects  # a gateway's shapes can break what these test

SEED = 42
PATH = "/v1/supply-chain/partner-order-status/orders/{}"


@pytest.fixture
def hook(schneider_conn):
    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    made = []

    def make(**extras):
        if extras:
            schneider_conn(**extras)
        made.append(SchneiderHook())
        return made[-1]

    yield make
    for h in made:
        h.close()


def test_every_page_once_in_order_and_never_past_the_last(emulator, hook):
    emulator.configure(orders_per_country=100)
    pages = list(hook().iter_page_objects(PATH.format("FR"), page_size=7))
    assert [p.number for p in pages] == list(range(1, 16))  # ceil(100 / 7) = 15
    records = [r for p in pages for r in p.body["orderList"]]
    assert records == [data.order(SEED, "FR", i) for i in range(100)]
    assert emulator.stats()["api_calls"] == 15


def test_the_trap_is_real_a_page_past_the_end_repeats_the_last(emulator, hook):
    """Why the pager stops on totalNumberOfPages: the API never sends an empty page."""
    emulator.configure(orders_per_country=25)
    h = hook()
    last = h.request("GET", PATH.format("FR"), params={"page": 3, "page-size": 10})
    beyond = h.request("GET", PATH.format("FR"), params={"page": 9, "page-size": 10})
    assert beyond["orderList"] == last["orderList"] != []
    assert [r["orderNumber"] for r in h.iter_records(PATH.format("FR"), records_field="orderList", page_size=10)] == [
        data.order_number("FR", i) for i in range(25)
    ]


def test_pages_run_concurrently_within_the_bound(emulator, hook):
    emulator.configure(orders_per_country=400, latency_ms=30)
    h = hook(max_concurrency=2)
    records = list(h.iter_records(PATH.format("SE"), records_field="orderList", page_size=20))
    assert records == [data.order(SEED, "SE", i) for i in range(400)]
    assert emulator.stats()["peak_concurrency"] == 2  # overlapped, never beyond the connection's bound


def test_a_page_count_that_moves_mid_pull_is_an_error(emulator, hook):
    emulator.configure(orders_per_country=100)
    emulator.add_fault(target="api", kind="change_total_pages", delta=1, match_query={"page": "4"})
    with pytest.raises(SchneiderResponseError, match="totalNumberOfPages changed from 10 to 11"):
        list(hook().iter_records(PATH.format("FR"), records_field="orderList", page_size=10))


def test_no_orders_is_one_call_and_no_records(emulator, hook):
    emulator.configure(orders_per_country=0)
    assert list(hook().iter_records(PATH.format("FR"), records_field="orderList")) == []
    assert emulator.stats()["api_calls"] == 1


def test_records_field_can_be_nested_and_missing_only_when_empty():
    def error(message: str, page: int) -> Exception:
        return ValueError(f"{message} (page {page})")

    page = Page(1, 1, 2, {"data": {"items": [1, 2]}})
    assert dig(page.body, "data.items") == [1, 2]
    assert records_of(page, "data.items", error) == [1, 2]
    assert records_of(Page(1, 0, 0, {}), "orderList", error) == []
    with pytest.raises(ValueError, match="missing or not a list"):
        records_of(Page(1, 1, 5, {"orderList": None}), "orderList", error)


# -- ordered_map: the fan-out under pages 2..N and the per-product operators ------------------------------


def test_ordered_map_keeps_input_order_whatever_finishes_first():
    rng = random.Random(7)
    delays = [rng.uniform(0, 0.02) for _ in range(60)]

    def slow_square(i: int) -> int:
        time.sleep(delays[i])
        return i * i

    assert list(ordered_map(slow_square, range(60), concurrency=6)) == [i * i for i in range(60)]


def test_ordered_map_bounds_look_ahead_and_in_flight_calls():
    started: list[int] = []
    in_flight = 0
    peak = 0
    lock = threading.Lock()

    def call(i: int) -> int:
        nonlocal in_flight, peak
        with lock:
            started.append(i)
            in_flight += 1
            peak = max(peak, in_flight)
        time.sleep(0.005)
        with lock:
            in_flight -= 1
        return i

    results = ordered_map(call, range(1000), concurrency=3)
    assert next(results) == 0
    time.sleep(0.05)  # let the workers run ahead as far as they may
    assert len(started) <= 2 * 3 + 1  # a bounded window, not 1000 calls queued up
    results.close()
    assert peak <= 3


def test_ordered_map_stops_at_the_first_failure_and_propagates_it():
    calls: list[int] = []

    def call(i: int) -> int:
        calls.append(i)
        if i == 5:
            raise RuntimeError("page 5 failed")
        time.sleep(0.002)
        return i

    out = []
    with pytest.raises(RuntimeError, match="page 5 failed"):
        for value in ordered_map(call, range(500), concurrency=4):
            out.append(value)
    assert out == [0, 1, 2, 3, 4]
    assert len(calls) < 500
