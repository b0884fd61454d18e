"""SchneiderOrderStatusSensor and its trigger, for real against the emulator (no mocks).

Poke mode runs the sensor's own loop (``execute`` of BaseSensorOperator); deferrable mode runs the
trigger's ``run()`` generator on a real event loop, and once in a separate process re-created from
``serialize()`` as a restarted triggerer would. The emulator moves orders through statuses on request.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_schneider.exceptions import SchneiderConfigError, SchneiderOrderStatusFailed
from airflow_provider_schneider.sensors.order_status import SchneiderOrderStatusSensor
from airflow_provider_schneider.triggers.order_status import SchneiderOrderStatusTrigger
from tests.conftest import API_KEY, CLIENT_SECRET

pytestmark = pytest.mark.timeout(60)

ORDER = "FR00000001"
ORDERS_PATH = "/v1/supply-chain/partner-order-status/orders/FR"

try:  # Airflow >= 3.2 keeps these in the Task SDK
    from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, TaskDeferred
except ImportError:  # pragma: no cover - Airflow 3.0 / 3.1
    from airflow.exceptions import AirflowFailException, AirflowSensorTimeout, TaskDeferred  # type: ignore[no-redef]


def sensor(**kwargs: Any) -> SchneiderOrderStatusSensor:
    kwargs.setdefault("country", "FR")
    kwargs.setdefault("order_number", ORDER)
    kwargs.setdefault("target_statuses", ["Shipped", "Invoiced"])
    kwargs.setdefault("poke_interval", 0.2)
    kwargs.setdefault("timeout", 30)
    return SchneiderOrderStatusSensor(task_id=kwargs.pop("task_id", "wait"), **kwargs)


def trigger(**kwargs: Any) -> SchneiderOrderStatusTrigger:
    kwargs.setdefault("country", "FR")
    kwargs.setdefault("order_number", ORDER)
    kwargs.setdefault("target_statuses", ["Shipped"])
    kwargs.setdefault("failure_statuses", ["Cancelled"])
    kwargs.setdefault("poll_interval", 0.2)
    kwargs.setdefault("deadline", time.time() + 30)
    return SchneiderOrderStatusTrigger(**kwargs)


def first_event(trig: SchneiderOrderStatusTrigger) -> dict[str, Any]:
    """Run the trigger on a fresh event loop until its first event, as the triggerer does."""

    async def run() -> Any:
        gen = trig.run()
        try:
            return await anext(gen)
        finally:
            await gen.aclose()

    return asyncio.run(run()).payload


def orders_calls(emulator) -> int:
    return emulator.stats()["api_calls_by_path"].get(ORDERS_PATH, 0)


@contextlib.contextmanager
def moving_order(emulator, steps: list[tuple[int, str]]) -> Iterator[None]:
    """Move the order as the waiter progresses, not by the clock: once the emulator has answered ``calls``
    order lookups, set ``status``; for each step in turn, in a background thread."""

    def run() -> None:
        for calls, status in steps:
            while orders_calls(emulator) < calls and not stop.is_set():
                time.sleep(0.02)
            if stop.is_set():
                return
            emulator.set_order_status("FR", ORDER, status)

    stop = threading.Event()
    mover = threading.Thread(target=run, daemon=True)
    mover.start()
    try:
        yield
    finally:
        stop.set()
        mover.join(timeout=5)


def assert_no_secret(text: str, *secrets: str) -> None:
    for secret in (CLIENT_SECRET, API_KEY, *secrets):
        assert secret not in text


# -- poke mode -------------------------------------------------------------------------------------------


def test_poke_follows_the_order_status(emulator, schneider_conn):
    emulator.set_order_status("FR", ORDER, "Open")
    s = sensor()
    assert s.poke({}) is False
    emulator.set_order_status("FR", ORDER, "In Progress")
    assert s.poke({}) is False
    emulator.set_order_status("FR", ORDER, "invoiced")  # statuses compare case-insensitively
    done = s.poke({})
    assert done and done.xcom_value["orderNumber"] == ORDER
    assert done.xcom_value["orderStatus"].casefold() == "invoiced"
    assert emulator.stats()["token_requests"] == 1  # three pokes, one token


def test_poke_mode_sensor_loop_waits_until_shipped(emulator, schneider_conn):
    """BaseSensorOperator's own poke loop (execute) while the order moves; returns the order (XCom)."""
    emulator.set_order_status("FR", ORDER, "Open")
    with moving_order(emulator, [(2, "In Progress"), (4, "Shipped")]):
        order = sensor(target_statuses="Shipped").execute({})
    assert order["orderNumber"] == ORDER and order["orderStatus"] == "Shipped"
    assert orders_calls(emulator) >= 4  # it polled through Open and In Progress
    assert emulator.stats()["token_requests"] == 1


def test_poke_failure_status_fails_clearly_without_retry(emulator, schneider_conn):
    emulator.set_order_status("FR", ORDER, "Cancelled")
    with pytest.raises(SchneiderOrderStatusFailed) as info:
        sensor().execute({})
    assert isinstance(info.value, AirflowFailException)  # Airflow will not retry the task
    assert "'Cancelled'" in str(info.value) and "will never reach 'Shipped' or 'Invoiced'" in str(info.value)
    assert orders_calls(emulator) == 1


def test_exact_match_and_not_found_policy(emulator, schneider_conn):
    # "FR0000001" is a prefix of FR00000010..FR00000019: the API returns them, none is the order asked for.
    prefix = sensor(order_number="FR0000001")
    assert prefix.poke({}) is False
    missing = sensor(order_number="FR99999999", fail_if_not_found=True)
    with pytest.raises(SchneiderOrderStatusFailed, match="FR99999999 .* not found"):
        missing.poke({})


def test_poke_mode_timeout(emulator, schneider_conn):
    emulator.set_order_status("FR", ORDER, "Open")
    with pytest.raises(AirflowSensorTimeout):
        sensor(timeout=1, poke_interval=0.3).execute({})


def test_invalid_status_configuration(emulator, schneider_conn):
    from airflow_provider_schneider.exceptions import SchneiderConfigError

    with pytest.raises(SchneiderConfigError, match="both target and failure"):
        sensor(target_statuses=["Shipped", "Cancelled"]).poke({})
    with pytest.raises(SchneiderConfigError, match="target_statuses is empty"):
        sensor(target_statuses=[]).poke({})


# -- deferrable mode -------------------------------------------------------------------------------------


def test_deferrable_execute_returns_at_once_when_already_there(emulator, schneider_conn):
    emulator.set_order_status("FR", ORDER, "Shipped")
    assert sensor(deferrable=True).execute({})["orderStatus"] == "Shipped"  # no trip to the triggerer


def test_deferrable_execute_defers_with_plain_kwargs(emulator, schneider_conn):
    emulator.set_order_status("FR", ORDER, "Open")
    s = sensor(deferrable=True, timeout=600, poke_interval=5)
    with pytest.raises(TaskDeferred) as info:
        s.execute({})
    deferred = info.value
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout.total_seconds() > 600  # Airflow's backstop comes after the trigger's own deadline
    classpath, kwargs = deferred.trigger.serialize()
    assert classpath == "airflow_provider_schneider.triggers.order_status.SchneiderOrderStatusTrigger"
    assert kwargs["deadline"] == pytest.approx(time.time() + 600, abs=30)
    assert kwargs["poll_interval"] == 5.0 and kwargs["failure_statuses"] == ["Cancelled"]


def test_the_sensor_closes_its_hook_when_the_wait_ends(emulator, schneider_conn, monkeypatch):
    """Poke mode (done, failed), deferred mode (handed to the triggerer) and on_kill: the cached hook, with
    its HTTP session, is closed each time and not kept on the task."""
    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    closed: list[SchneiderHook] = []
    close = SchneiderHook.close
    monkeypatch.setattr(SchneiderHook, "close", lambda hook: (closed.append(hook), close(hook))[-1])

    emulator.set_order_status("FR", ORDER, "Shipped")
    done = sensor()
    done.execute({})
    emulator.set_order_status("FR", ORDER, "Cancelled")
    failed = sensor()
    with pytest.raises(SchneiderOrderStatusFailed):
        failed.execute({})
    emulator.set_order_status("FR", ORDER, "Open")
    deferred = sensor(deferrable=True)
    with pytest.raises(TaskDeferred):
        deferred.execute({})
    killed = sensor()
    assert killed.poke({}) is False
    killed.on_kill()
    assert len(closed) == 4 and len(set(map(id, closed))) == 4
    assert not [s for s in (done, failed, deferred, killed) if "hook" in s.__dict__]


def test_trigger_yields_success_when_the_order_moves(emulator, schneider_conn):
    emulator.set_order_status("FR", ORDER, "Open")
    with moving_order(emulator, [(2, "In Progress"), (4, "Shipped")]):
        event = first_event(trigger())
    assert event["status"] == "success" and event["order_status"] == "Shipped"
    assert event["order"]["orderNumber"] == ORDER and event["polls"] >= 4
    assert sensor(deferrable=True).execute_complete({}, event)["orderStatus"] == "Shipped"
    token = schneider_hook_token()
    assert_no_secret(json.dumps(event), token)


def test_trigger_failure_status_fails_the_task(emulator, schneider_conn):
    """Also exercises the emulator's clock-driven status schedule (only the outcome is asserted)."""
    emulator.schedule_order_statuses("FR", ORDER, ["Open", "Cancelled"], every_s=0.5)
    event = first_event(trigger())
    assert event["status"] == "failure" and event["order_status"] == "Cancelled"
    with pytest.raises(SchneiderOrderStatusFailed, match="'Cancelled', a failure status"):
        sensor(deferrable=True).execute_complete({}, event)


def test_trigger_timeout_names_the_last_status(emulator, schneider_conn):
    emulator.set_order_status("FR", ORDER, "In Progress")
    event = first_event(trigger(deadline=time.time() + 1.0, poll_interval=0.3))
    assert event["status"] == "timeout" and event["order_status"] == "In Progress"
    assert "last status seen: 'In Progress'" in event["message"]
    with pytest.raises(AirflowSensorTimeout, match="Timed out waiting for order FR00000001"):
        sensor(deferrable=True).execute_complete({}, event)


def test_trigger_not_found_keeps_waiting_or_fails(emulator, schneider_conn):
    waiting = first_event(trigger(order_number="FR99999999", deadline=time.time() + 0.8))
    assert waiting["status"] == "timeout" and waiting["order"] is None and waiting["polls"] >= 1
    failing = first_event(trigger(order_number="FR99999999", fail_if_not_found=True))
    assert failing["status"] == "not_found" and failing["polls"] == 1
    with pytest.raises(SchneiderOrderStatusFailed, match="not found"):
        sensor(deferrable=True).execute_complete({}, failing)


def test_trigger_backs_off_on_errors_and_recovers(emulator, schneider_conn):
    schneider_conn(retry_max_attempts=1)  # the hook gives up at once, so the trigger sees each 503
    emulator.add_fault(target=ORDERS_PATH, kind="status", status=503, times=2)
    emulator.set_order_status("FR", ORDER, "Shipped")
    event = first_event(trigger(poll_interval=0.1, max_poll_interval=0.3))
    assert event["status"] == "success" and event["polls"] == 1
    assert emulator.stats()["api_calls_by_status"] == {"503": 2, "200": 1}


def test_trigger_gives_up_after_consecutive_errors(emulator, schneider_conn):
    schneider_conn(retry_max_attempts=1)
    emulator.add_fault(target=ORDERS_PATH, kind="status", status=503, times=-1)
    event = first_event(trigger(poll_interval=0.05, max_consecutive_errors=3))
    assert event["status"] == "error" and event["permanent"] is False and "HTTP 503" in event["message"]
    assert emulator.stats()["api_calls_by_status"] == {"503": 3}
    with pytest.raises(Exception) as info:  # retryable: a plain SchneiderError, not a fail-fast one
        sensor(deferrable=True).execute_complete({}, event)
    assert not isinstance(info.value, AirflowFailException)


def test_trigger_rejected_credentials_fail_at_once(emulator, schneider_conn):
    schneider_conn(password="wrong-secret-value")
    event = first_event(trigger())
    assert event["status"] == "error" and event["permanent"] is True
    assert emulator.stats()["token_requests_by_status"] == {"401": 1}  # never retried
    assert_no_secret(json.dumps(event), "wrong-secret-value")
    with pytest.raises(SchneiderOrderStatusFailed):
        sensor(deferrable=True).execute_complete({}, event)


# -- serialization and restart ---------------------------------------------------------------------------


def schneider_hook_token() -> str:
    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    return SchneiderHook().get_token()


def test_serialize_is_plain_and_secret_free(emulator, schneider_conn):
    trig = sensor(deferrable=True).build_trigger()
    first_event(trigger(target_statuses=["Open", "Shipped", "Invoiced", "In Progress", "Partially Shipped"]))
    token = schneider_hook_token()  # the token the trigger used, from the cache
    classpath, kwargs = trig.serialize()
    text = json.dumps(kwargs)  # plain JSON values only
    assert_no_secret(text, token)
    assert not {"password", "token", "access_token", "client_secret", "api_key"} & set(kwargs)
    module, name = classpath.rsplit(".", 1)
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)


RESUME = """
import asyncio, importlib, json, sys
classpath, kwargs = json.loads(sys.argv[1])
module, name = classpath.rsplit(".", 1)
trigger = getattr(importlib.import_module(module), name)(**kwargs)
async def first():
    gen = trigger.run()
    try:
        return await anext(gen)
    finally:
        await gen.aclose()
event = asyncio.run(first())
print("RESUMED " + json.dumps({"serialized": trigger.serialize(), "event": event.payload}))
"""


def test_trigger_survives_a_triggerer_restart(emulator, schneider_conn):
    """Kill the trigger mid-wait, re-create it in a new process from serialize(): it resumes, same deadline,
    and gets its token from the host file cache instead of the token endpoint."""
    emulator.set_order_status("FR", ORDER, "In Progress")
    trig = trigger(poll_interval=0.2)
    serialized = trig.serialize()

    async def run_then_kill() -> None:
        task = asyncio.ensure_future(anext(trig.run()))
        while not task.done() and await asyncio.to_thread(orders_calls, emulator) < 2:
            await asyncio.sleep(0.05)
        assert not task.done(), "the order is In Progress: the trigger must still be waiting"
        task.cancel()  # what a triggerer shutdown does to its running triggers
        with contextlib.suppress(asyncio.CancelledError):
            await task

    asyncio.run(run_then_kill())
    assert emulator.stats()["token_requests"] == 1
    emulator.set_order_status("FR", ORDER, "Shipped")

    proc = subprocess.run(
        [sys.executable, "-c", RESUME, json.dumps(serialized)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESUMED "))
    resumed = json.loads(line.removeprefix("RESUMED "))
    assert resumed["serialized"] == json.loads(json.dumps(serialized))  # same parameters, same deadline
    assert resumed["event"]["status"] == "success" and resumed["event"]["order_status"] == "Shipped"
    assert emulator.stats()["token_requests"] == 1  # the new process reused the host-cached token
    assert_no_secret(proc.stdout + proc.stderr)


def test_deferrable_defaults_to_airflows_default_deferrable(monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")
    assert sensor().deferrable is True
    assert sensor(deferrable=False).deferrable is False
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "false")
    assert sensor().deferrable is False


def test_start_from_trigger_fixes_plain_trigger_arguments_and_refuses_templates():
    waiting = sensor(start_from_trigger=True, end_from_trigger=True, timeout=600)
    args = waiting.start_trigger_args
    assert waiting.start_from_trigger is True and waiting.deferrable is True
    assert args.trigger_cls == "airflow_provider_schneider.triggers.order_status.SchneiderOrderStatusTrigger"
    assert args.next_method == "execute_complete" and args.timeout.total_seconds() == 600
    assert args.trigger_kwargs["deadline"] is None and args.trigger_kwargs["end_from_trigger"] is True
    assert args.trigger_kwargs["order_number"] == ORDER and CLIENT_SECRET not in json.dumps(args.trigger_kwargs)
    with pytest.raises(SchneiderConfigError, match="order_number"):
        sensor(order_number="{{ params.order_number }}", start_from_trigger=True)


def test_end_from_trigger_ends_the_task_in_the_triggerer(emulator, schneider_conn):
    from airflow.triggers.base import TaskFailedEvent, TaskSuccessEvent

    schneider_conn()
    emulator.set_order_status("FR", ORDER, "Shipped")

    async def first(trig: SchneiderOrderStatusTrigger) -> Any:
        gen = trig.run()
        try:
            return await anext(gen)
        finally:
            await gen.aclose()

    done = asyncio.run(first(trigger(end_from_trigger=True)))
    assert isinstance(done, TaskSuccessEvent) and done.xcoms["return_value"]["orderNumber"] == ORDER
    emulator.set_order_status("FR", ORDER, "Cancelled")
    assert isinstance(asyncio.run(first(trigger(end_from_trigger=True))), TaskFailedEvent)
