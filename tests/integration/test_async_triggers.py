"""SchneiderAsyncHook and the coalesced order triggers, for real against the emulator over loopback.

The triggers run on one event loop, as in a triggerer process: many of them waiting on one country share
one poller; the calls, the token requests and the calls in flight are counted by the emulator.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from typing import Any

import pytest

from airflow_provider_schneider.exceptions import SchneiderPermissionError
from airflow_provider_schneider.hooks.schneider import SchneiderHook
from airflow_provider_schneider.hooks.schneider_async import SchneiderAsyncHook
from airflow_provider_schneider.triggers.order_events import SchneiderOrderStatusEventTrigger
from airflow_provider_schneider.triggers.order_status import SchneiderOrderStatusTrigger
from tests.conftest import API_KEY, CLIENT_SECRET, only_profile
from tests.support.faults import FAST_RETRIES, ORDERS_PATH, http_date_in

pytestmark = pytest.mark.timeout(120)


def orders(count: int, start: int = 1) -> list[str]:
    return [f"FR{i:08d}" for i in range(start, start + count)]


async def first_events(triggers: list[Any], timeout: float) -> dict[str, dict[str, Any]]:
    """Run the triggers on this loop until each yields its first event; events by order number."""
    events: dict[str, dict[str, Any]] = {}

    async def one(trigger: Any) -> None:
        gen = trigger.run()
        try:
            event = await anext(gen)
            events[trigger.order_number] = {**event.payload, "seen_at": time.monotonic()}
        finally:
            await gen.aclose()

    await asyncio.wait_for(asyncio.gather(*(one(t) for t in triggers)), timeout)
    return events


def waiting(number: str, **kwargs: Any) -> SchneiderOrderStatusTrigger:
    kwargs.setdefault("poll_interval", 1.0)
    kwargs.setdefault("deadline", time.time() + 60)
    return SchneiderOrderStatusTrigger(country="FR", order_number=number, target_statuses=["Shipped"], **kwargs)


# -- the hook ---------------------------------------------------------------------------------------------------


def test_async_records_equal_the_sync_hooks(schneider_conn, emulator):
    schneider_conn()
    expected = list(SchneiderHook().iter_records(ORDERS_PATH, records_field="orderList", page_size=100))

    async def go() -> list[Any]:
        hook = SchneiderAsyncHook()
        try:
            return await hook.get_records(ORDERS_PATH, records_field="orderList", page_size=100)
        finally:
            await hook.aclose()

    assert asyncio.run(go()) == expected and len(expected) == 250


def test_api_key_mode_requests_no_token_and_never_shows_the_key(schneider_conn, emulator, caplog):
    schneider_conn(login="", password="", api_key=API_KEY)
    caplog.set_level(logging.DEBUG)

    async def go() -> Any:
        hook = SchneiderAsyncHook()
        try:
            return await hook.request("GET", ORDERS_PATH, params={"page-size": 10})
        finally:
            await hook.aclose()

    assert len(asyncio.run(go())["orderList"]) == 10
    assert emulator.stats()["token_requests"] == 0
    assert API_KEY not in caplog.text

    schneider_conn(login="", password="", api_key="not-the-right-key-123")
    with pytest.raises(SchneiderPermissionError, match="API key was rejected") as failure:
        asyncio.run(go())
    assert "not-the-right-key-123" not in str(failure.value) and "not-the-right-key-123" not in caplog.text


def test_a_revoked_token_is_replaced_once_and_the_call_replayed(schneider_conn, emulator):
    schneider_conn()

    async def go() -> None:
        hook = SchneiderAsyncHook()
        try:
            await hook.request("GET", ORDERS_PATH)
            emulator.revoke_tokens()
            await hook.request("GET", ORDERS_PATH)
            assert hook.token_requests == 2
        finally:
            await hook.aclose()

    asyncio.run(go())
    assert emulator.stats()["token_requests"] == 2


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 429, "retry_after": "0.2"},
        {"status": 503},
        {"status": 500, "code": "policies.ratelimit.SpikeArrestViolation"},
    ],
    ids=["429 Retry-After", "503", "spike arrest as 500"],
)
def test_throttles_and_gateway_errors_are_retried(schneider_conn, emulator, fault):
    schneider_conn(**FAST_RETRIES)
    emulator.add_fault(target="api", kind="status", times=2, **fault)

    async def go() -> Any:
        hook = SchneiderAsyncHook()
        try:
            return await hook.request("GET", ORDERS_PATH)
        finally:
            await hook.aclose()

    assert asyncio.run(go())["orderList"]
    assert emulator.stats()["api_calls"] == 3


def test_retry_after_as_an_http_date_is_honoured(schneider_conn, emulator, caplog):
    schneider_conn(**FAST_RETRIES)
    emulator.add_fault(target="api", kind="status", status=429, retry_after=http_date_in(30), times=1)

    async def go() -> Any:
        hook = SchneiderAsyncHook()
        try:
            return await hook.request("GET", ORDERS_PATH)
        finally:
            await hook.aclose()

    assert asyncio.run(go())["orderList"]
    # The date was read as a wait of about 30 s, then capped by the connection's retry_after_cap.
    assert re.search(r"HTTP 429, Retry-After (29|30)\.\d+s capped to", caplog.text), caplog.text


def test_the_host_cap_holds_between_the_async_hook_and_across_its_calls(schneider_conn, emulator):
    """The triggerer's client takes the same host slots as the sync hook's processes."""
    schneider_conn(client_max_in_flight=2)
    emulator.configure(latency_ms=150)

    async def go() -> int:
        hook = SchneiderAsyncHook()
        try:
            await asyncio.gather(*(hook.request("GET", ORDERS_PATH, params={"page": 1}) for _ in range(8)))
            return (await hook.get_conn()).peak_in_flight
        finally:
            await hook.aclose()

    assert asyncio.run(go()) <= 2
    assert emulator.stats()["peak_concurrency"] <= 2


# -- coalesced triggers ------------------------------------------------------------------------------------------


@only_profile("default")
def test_two_hundred_triggers_share_one_token_ten_calls_in_flight_and_no_thread(schneider_conn, emulator, caplog):
    """A cold cache, 200 sensors deferred on one country (250 orders, 3 pages), 300 ms per call: one token
    request, at most 10 calls in flight at the gateway, each round the 3 listing pages, no thread per poll,
    and every trigger sees its order flip."""
    schneider_conn()
    emulator.configure(latency_ms=300)
    caplog.set_level(logging.DEBUG)
    numbers = orders(200, start=26)  # not the orders the emulator starts as Shipped
    threads: list[str] = []

    async def go() -> dict[str, dict[str, Any]]:
        triggers = [waiting(n, poll_interval=1.0) for n in numbers]
        run = asyncio.ensure_future(first_events(triggers, 60))
        await asyncio.sleep(5)  # past the token request (its thread, and the deadline thread, are gone by now)
        threads.extend(t.name for t in threading.enumerate())
        for number in numbers:  # flipped from a thread: the emulator's control API is blocking
            await asyncio.to_thread(emulator.set_order_status, "FR", number, "Shipped")
        return await run

    events = asyncio.run(go())
    stats = emulator.stats()
    assert {e["status"] for e in events.values()} == {"success"} and len(events) == 200
    assert stats["token_requests"] == 1
    assert stats["peak_concurrency"] <= 10
    calls = stats["api_calls_by_path"][ORDERS_PATH]
    assert calls <= 3 * 8, calls  # a few rounds of 3 pages, never 200 lookups a round
    # No thread polls: neither the loop's executor (asyncio.to_thread) nor one of ours. (Outside a triggerer,
    # Airflow reads an AIRFLOW_CONN_ variable through asgiref's executor: that thread is Airflow's.)
    assert not [name for name in threads if name.startswith(("asyncio", "schneider"))], threads
    for secret in (CLIENT_SECRET, *emulator.issued_tokens()):
        assert secret not in caplog.text


@only_profile("default")
def test_a_dripping_answer_does_not_delay_other_triggers(schneider_conn, emulator):
    """One country's gateway drips for 20 s; a trigger on another country still sees its flip at once."""
    schneider_conn(attempt_timeout=30, **FAST_RETRIES)
    emulator.add_fault(target="/v1/supply-chain/partner-order-status/orders/DE", kind="drip", interval_s=2)
    stuck = SchneiderOrderStatusTrigger(
        country="DE", order_number="DE00000030", target_statuses=["Shipped"], deadline=time.time() + 60
    )
    moving = waiting("FR00000030", poll_interval=0.5)

    async def go() -> float:
        stuck_run = asyncio.ensure_future(first_events([stuck], 60))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        await asyncio.to_thread(emulator.set_order_status, "FR", "FR00000030", "Shipped")
        events = await first_events([moving], 10)
        stuck_run.cancel()
        return events["FR00000030"]["seen_at"] - started

    assert asyncio.run(go()) < 5


def test_a_cancelled_trigger_leaves_nothing_running(schneider_conn, emulator):
    schneider_conn()
    from airflow_provider_schneider.triggers import polls

    async def go() -> tuple[int, int]:
        task = asyncio.ensure_future(first_events([waiting("FR00000040")], 60))
        await asyncio.sleep(1.0)
        here = polls.board()
        assert here.pollers and here.hooks
        task.cancel()
        await asyncio.sleep(0.2)
        return len(here.pollers), len(here.hooks) + len(here.closing)

    assert asyncio.run(go()) == (0, 0)


# -- the event trigger -------------------------------------------------------------------------------------------


@only_profile("default")
def test_the_event_trigger_fires_when_an_order_reaches_a_status_and_never_carries_a_token(schneider_conn, emulator):
    schneider_conn()
    trigger = SchneiderOrderStatusEventTrigger(
        country="FR", target_statuses=["Shipped"], order_number_prefix="FR000000", poll_interval=1
    )

    async def go() -> list[dict[str, Any]]:
        gen = trigger.run()
        events: list[dict[str, Any]] = []

        async def collect() -> None:
            async for event in gen:
                events.append(event.payload)
                if len(events) == 2:
                    return

        run = asyncio.ensure_future(collect())
        await asyncio.sleep(1.5)  # the first look: orders already Shipped are remembered, not announced
        await asyncio.to_thread(emulator.set_order_status, "FR", "FR00000050", "Shipped")
        await asyncio.to_thread(emulator.set_order_status, "FR", "FR00000060", "Shipped")
        await asyncio.wait_for(run, 20)
        await gen.aclose()
        return events

    events = asyncio.run(go())
    assert sorted(e["order_number"] for e in events) == ["FR00000050", "FR00000060"]
    assert all(e["order_status"] == "Shipped" and e["order"]["orderNumber"] == e["order_number"] for e in events)
    text = repr(events)
    for secret in (CLIENT_SECRET, *emulator.issued_tokens()):
        assert secret not in text
