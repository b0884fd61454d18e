"""Every call ends, in bounded time and memory, against a hostile gateway (the emulator's hostile faults).

Each case runs in a child process; time and peak RSS are measured from outside. The bounds are loose on
purpose (a loaded 2-core machine): they tell "ends and stays small" from "hangs or balloons" (before the
fix: hung past 90 s, or 3 to 6.4 GB RSS), they are not performance figures (see benchmarks/).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from airflow_provider_schneider.hooks.schneider import SchneiderHook
from tests.conftest import only_profile
from tests.support.faults import FAST_RETRIES, ORDERS_PATH
from tests.support.hostile import CASES, HostileCase, run_case

#: Peak RSS of a child that imported Airflow and the provider and made one call is ~150-250 MB; the
#: largest allowed body is 64 MiB, read once and parsed once.
MAX_RSS_MB = 700
#: Two attempts of a 3 s deadline plus back-off; generous for a loaded machine.
MAX_SECONDS = 30


#: The hostile answers are the same bytes in both dialects and version-agnostic client behaviour: one
#: dialect, and only on the latest Airflow (``make test-lowest`` skips ``latest_only``).
pytestmark = pytest.mark.latest_only


@only_profile("default")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_gateway_call_ends_bounded(emulator, case: HostileCase):
    measured = run_case(case, emulator, hard_timeout=120)
    assert measured.outcome != "killed", f"{case.name}: still running after 120 s"
    assert measured.elapsed < MAX_SECONDS, measured
    assert measured.peak_rss_mb < MAX_RSS_MB, measured
    if case.error is None:
        assert measured.outcome == "ok", measured
    else:
        assert (measured.outcome, measured.error) == ("error", case.error), measured
        assert case.text in measured.message, measured
        assert "'schneider_default'" in measured.message and ORDERS_PATH.split("/orders")[0] in (
            measured.message + ORDERS_PATH if case.op == "token" else measured.message
        )
        assert "demo-secret" not in measured.message


ASYNC_CASES = [dataclasses.replace(c, op=f"async_{c.op}") for c in CASES if c.op in ("get", "pages")]


@only_profile("default")
@pytest.mark.parametrize("case", ASYNC_CASES, ids=[c.name for c in ASYNC_CASES])
def test_hostile_gateway_async_call_ends_bounded(emulator, case: HostileCase):
    """The triggerer's hook meets the same hostile answers with the same bounds and the same errors."""
    test_hostile_gateway_call_ends_bounded(emulator, case)


@only_profile("default")
def test_lying_page_count_with_no_records_stops_after_page_one(emulator):
    (case,) = [c for c in CASES if c.fault["kind"] == "lie_pages"]
    measured = run_case(case, emulator)
    assert (measured.outcome, measured.records, measured.api_calls) == ("ok", 0, 1), measured


@only_profile("default")  # a client-side guarantee: the gateway's dialect does not matter
def test_consumer_leaving_a_fan_out_ends_it_at_once(emulator, schneider_conn):
    """Pages 2..N drip forever; once four of them are in flight a signal handler raises in the consumer, as
    Airflow's ``execution_timeout`` does: the pull ends at once (in-flight sockets shut down, threads not joined)
    instead of waiting for the drips, and the gateway sees the connections go."""
    schneider_conn(**{**FAST_RETRIES, "attempt_timeout": 600, "max_concurrency": 4})
    emulator.add_fault(target=ORDERS_PATH, kind="drip", interval_s=0.5, skip=1, times=-1)

    fired_at: list[float] = []

    def give_up(*_):
        fired_at.append(time.monotonic())
        raise TimeoutError("the consumer gave up")

    def alarm_once_four_pages_drip() -> None:
        deadline = time.monotonic() + 30
        while emulator.stats()["in_flight"] < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGALRM)  # handled in the main thread, like execution_timeout's alarm

    previous = signal.signal(signal.SIGALRM, give_up)
    threading.Thread(target=alarm_once_four_pages_drip, daemon=True).start()
    try:
        with pytest.raises(TimeoutError):
            for _ in SchneiderHook().iter_records(ORDERS_PATH, records_field="orderList"):
                pass
        ended = time.monotonic()  # the pull's teardown ran while the exception left the generator
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert ended - fired_at[0] < 60  # not the 600 s attempt deadline the endless drips would otherwise hold it for
    assert emulator.stats()["peak_concurrency"] == 4  # the four dripping pages were in flight
    deadline = time.monotonic() + 10
    while emulator.stats()["in_flight"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert emulator.stats()["in_flight"] == 0


TIMEOUT_DAG = textwrap.dedent(
    """
    from datetime import timedelta

    import pendulum
    from airflow.sdk import DAG

    from airflow_provider_schneider.operators.orders import SchneiderOrderStatusOperator

    with DAG("hostile_execution_timeout", schedule=None, start_date=pendulum.datetime(2026, 11, 1, tz="UTC")):
        SchneiderOrderStatusOperator(
            task_id="pull", country="FR", execution_timeout=timedelta(seconds=8), retries=0, max_concurrency=4
        )
    """
)


@only_profile("default")
def test_execution_timeout_stops_a_dripping_paged_pull(emulator, schneider_conn, airflow_db, tmp_path):
    """Page 1 answers, pages 2..N drip one byte every 2 s and the attempt deadline is far away: Airflow's
    ``execution_timeout`` (8 s) must end the task within seconds (before: hung until killed at 100 s)."""
    schneider_conn(**{**FAST_RETRIES, "attempt_timeout": 600, "max_concurrency": 4})
    emulator.add_fault(target=ORDERS_PATH, kind="drip", interval_s=2, skip=1, times=-1)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "hostile_timeout.py").write_text(TIMEOUT_DAG)
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "test", "hostile_execution_timeout"],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    assert "AirflowTaskTimeout" in output or "timed out" in output.lower(), output[-3000:]
    assert "state=failed" in output or proc.returncode != 0, output[-3000:]
    # Start-up (~10-30 s on a loaded 2-core machine) + 8 s timeout + teardown; a hang reaches the 240 s limit.
    assert elapsed < 120, f"airflow dags test took {elapsed:.0f}s"
