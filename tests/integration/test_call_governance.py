"""Calls governed at deployment scale, with real processes and the emulator over loopback: the host-wide cap
per client, the wait for a slot, and the reaction to a spike arrest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_provider_schneider.client.host import HostCalls, client_folder
from tests.conftest import REPO
from tests.support.caller_child import RESULT_MARK

CHILD = REPO / "tests" / "support" / "caller_child.py"


def _run_children(count: int, calls: int, concurrency: int, go: Path) -> list[dict]:
    """Start ``count`` children, let them all get ready, then start them at once; their results."""
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), str(calls), str(concurrency), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(count)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "READY", child.stderr.read() if child.stderr else ""
        go.touch()
        results = []
        for child in children:
            out, err = child.communicate(timeout=180)
            line = next((x for x in out.splitlines() if x.startswith(RESULT_MARK)), None)
            assert line, err[-2000:]
            results.append(json.loads(line[len(RESULT_MARK) :]))
        return results
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()


def test_sixteen_processes_of_one_client_never_have_more_than_ten_calls_at_the_gateway(
    emulator, schneider_conn, tmp_path
):
    emulator.configure(latency_ms=150)
    results = _run_children(16, 6, 4, tmp_path / "go")  # 64 calls wanted at once
    assert all(r["outcome"] == "ok" and r["answers"] == 6 for r in results), results
    stats = emulator.stats()
    assert stats["api_calls"] == 96
    assert 8 <= stats["peak_concurrency"] <= 10, stats["peak_concurrency"]


def test_without_the_host_cap_the_same_processes_exceed_ten(emulator, schneider_conn, tmp_path):
    """The control of the test above: it measures something a missing cap would fail."""
    schneider_conn(client_max_in_flight=0)
    emulator.configure(latency_ms=150)
    results = _run_children(4, 8, 4, tmp_path / "go")
    assert all(r["outcome"] == "ok" for r in results), results
    assert emulator.stats()["peak_concurrency"] > 10


def test_a_lower_cap_from_the_worker_environment_holds_too(emulator, schneider_conn, tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_PROVIDER_SCHNEIDER_CLIENT_MAX_IN_FLIGHT", "3")
    emulator.configure(latency_ms=100)
    results = _run_children(3, 6, 4, tmp_path / "go")
    assert all(r["outcome"] == "ok" for r in results), results
    assert emulator.stats()["peak_concurrency"] <= 3


def test_a_killed_process_gives_its_slot_back(emulator, schneider_conn, token_cache_dir):
    """The kernel drops a dead holder's lock: a task killed mid-call never leaks a slot."""
    folder = client_folder(emulator.url, "demo-client", str(token_cache_dir))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from airflow_provider_schneider.client.host import HostCalls;"
            "from airflow_provider_schneider.process import private_directory;"
            "calls = HostCalls(private_directory(Path(sys.argv[1])), 1); print(calls.try_take(), flush=True);"
            "time.sleep(600)",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "0"
        mine = HostCalls(folder, 1)
        assert mine.try_take() is None
        holder.kill()
        holder.wait(10)
        assert mine.try_take() == 0
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_forked_child_takes_no_slot_its_parent_holds(tmp_path):
    from airflow_provider_schneider.process import STATE, private_directory

    STATE.reset()
    folder = private_directory(tmp_path / "calls")
    parent = HostCalls.open(folder, 1)
    assert parent is not None and parent.try_take() == 0
    pid = os.fork()
    if pid == 0:  # the child: its own handle, and the parent's slot stays the parent's
        child = HostCalls.open(folder, 1)
        os._exit(0 if child is not None and child is not parent and child.try_take() is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    parent.release(0)
    STATE.reset()


def test_a_call_waits_for_a_slot_then_fails_with_a_clear_error(emulator, schneider_conn, token_cache_dir):
    from airflow_provider_schneider.exceptions import SchneiderError
    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    schneider_conn(client_max_in_flight=1, slot_wait_timeout=1)
    from airflow_provider_schneider.process import private_directory

    blocker = HostCalls(private_directory(client_folder(emulator.url, "demo-client", str(token_cache_dir))), 1)
    assert blocker.try_take() == 0  # another process holds the only slot
    started = time.monotonic()
    with pytest.raises(SchneiderError, match="client_max_in_flight") as failure:
        SchneiderHook().request("GET", "/v1/supply-chain/partner-order-status/orders/FR")
    assert 1 <= time.monotonic() - started < 10
    assert "schneider_default" in str(failure.value) and "demo-secret" not in str(failure.value)
    blocker.release(0)
    assert SchneiderHook().request("GET", "/v1/supply-chain/partner-order-status/orders/FR")


def _spike_arrested_pull(emulator, calls: int) -> dict:
    from airflow_provider_schneider.client.concurrency import ordered_map
    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    hook = SchneiderHook()
    hook.get_token()
    emulator.reset_counters()
    path = "/v1/supply-chain/partner-order-status/orders/FR"
    answers = ordered_map(lambda n: hook.request("GET", path, params={"page": 1 + n % 3}), range(calls), concurrency=8)
    assert sum(1 for _ in answers) == calls
    return {**emulator.stats(), "limit": hook.client.limit}


def test_a_spike_arrest_slows_the_client_down_instead_of_being_hammered(emulator, schneider_conn):
    """10 calls/s allowed, 8 in flight wanted: the adaptive client halves its calls in flight, paces itself
    and is refused rarely; the same pull without adaptation is refused far more often (the control)."""
    emulator.configure(rate_limit=10, latency_ms=20)
    schneider_conn(max_concurrency=8, retry_max_attempts=20, retry_backoff_initial=0.2, retry_max_total_wait=120)
    adaptive = _spike_arrested_pull(emulator, 60)
    assert adaptive["limit"].throttles >= 1 and adaptive["limit"].rate is not None
    emulator.reset()
    emulator.configure(rate_limit=10, latency_ms=20)
    schneider_conn(
        max_concurrency=8,
        retry_max_attempts=20,
        retry_backoff_initial=0.2,
        retry_max_total_wait=120,
        adaptive_concurrency=False,
    )
    control = _spike_arrested_pull(emulator, 60)
    refused = adaptive["spike_arrests"] / adaptive["api_calls"]
    refused_control = control["spike_arrests"] / control["api_calls"]
    # The first burst is refused whatever a client does (8 calls in flight when the second fills up); after
    # it, few. Measured here: 12-19 % adaptive, 57-63 % without adaptation.
    assert refused <= 0.3, (adaptive["spike_arrests"], adaptive["api_calls"])
    assert refused_control > 2 * refused, (refused_control, refused)
