"""Token reuse and renewal with real processes (no threads standing in for processes) against the emulator.

Each child is a separate Python interpreter (tests/support/tokens.py) that builds ``SchneiderHook`` from the
``AIRFLOW_CONN_*`` environment, like a task process does. The emulator's counters are the ground truth.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tokens import (
    TOKEN_LOG_LINE,
    expected_order_digest,
    finish_child,
    issued_tokens,
    run_child,
    start_child,
    wait_for,
)

SWARM = 16

pytestmark = pytest.mark.timeout(300)


def test_sixteen_processes_started_together_make_one_token_request(emulator, schneider_conn, tmp_path: Path):
    """16 processes, empty cache, released at once: one request; also with a slow token endpoint.

    The 16 task processes are forked from one launcher that imported the provider (as Airflow's supervisor
    forks task processes), so they start within milliseconds of each other instead of importing Airflow
    16 times; each is a separate process with its own memory and its own lock file handle.

    The last round turns the shared tiers off (``token_cache="memory"``) as a control: the same swarm then
    makes 16 requests, so the single-flight assertion of the other rounds can fail.
    """
    schneider_conn("schneider_swarm_slow", scope="swarm-slow")
    schneider_conn("schneider_swarm_memory_only", scope="swarm-memory-only", token_cache="memory")
    rounds = [
        ("schneider_default", {"token_latency_ms": 0}, 1),
        ("schneider_swarm_slow", {"token_latency_ms": 400}, 1),
        ("schneider_swarm_memory_only", {"token_latency_ms": 400}, SWARM),
    ]
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    swarm = start_child({"mode": "swarm", "dir": str(barrier), "count": SWARM, "rounds": [r[0] for r in rounds]})
    try:
        wait_for(lambda: len(list(barrier.glob("ready-*"))) == SWARM, "16 task processes to start")
        requests_per_round = []
        for number, (_, knobs, _) in enumerate(rounds):
            emulator.reset_counters()
            emulator.configure(**knobs)
            (barrier / f"go-{number}").touch()  # every process polls for this file: they start together
            wait_for(lambda n=number: len(list(barrier.glob(f"done-{n}-*"))) == SWARM, f"round {number}")
            requests_per_round.append(emulator.stats()["token_requests"])
    finally:
        results, logs = finish_child(swarm)

    assert requests_per_round == [expected for _, _, expected in rounds]
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]]
    assert len({r["pid"] for r in results}) == SWARM  # 16 distinct processes
    for number, (_, _, expected) in enumerate(rounds):
        in_round = [r for r in results if r["round"] == number]
        assert len(in_round) == SWARM
        sources = sorted(r["source"] for r in in_round)
        if expected == 1:  # one process asked, the 15 others waited on the host lock and read its token
            assert sources == ["endpoint"] + ["file"] * (SWARM - 1)
            assert len({r["token_id"] for r in in_round}) == 1
        else:
            assert sources == ["endpoint"] * SWARM
            assert len({r["token_id"] for r in in_round}) == SWARM

    assert logs.count(TOKEN_LOG_LINE) == sum(requests_per_round)  # one INFO line per token request
    assert logs.count("connection 'schneider_swarm_slow' (cache miss: memory (empty), file (empty)") == 1
    for token in issued_tokens(emulator):
        assert token not in logs


@pytest.mark.latest_only
def test_pull_longer_than_the_token_lifetime_renews_before_expiry(emulator, schneider_conn):
    """8 s tokens, a ~15 s pull: renewed mid-pull, complete, and not a single 401 at the gateway."""
    emulator.configure(token_lifetime=8, latency_ms=250, orders_per_country=1200)
    schneider_conn(max_concurrency=2)

    [result], log = run_child({"mode": "pull", "page_size": 10})

    stats = emulator.stats()
    assert result["count"] == result["unique"] == 1200
    assert result["digest"] == expected_order_digest("FR", 1200)
    assert stats["token_requests"] >= 2  # renewed mid-pull
    assert stats["token_requests"] == result["token_requests"]
    assert stats["unauthorized"] == 0  # proactive refresh: no request ever left with an expired token
    assert stats["api_calls"] == 120  # no replays
    assert log.count(TOKEN_LOG_LINE) == stats["token_requests"]
    assert "memory (expiring)" in log


def test_token_revoked_mid_pull_is_refreshed_once_and_the_pull_is_exact(emulator, schneider_conn):
    """Revoke every token while a pull runs in another process: one refresh, replays, exact records."""
    emulator.configure(latency_ms=60, orders_per_country=1500)
    # The 25th call is held for 5 s, so the pull is still under way when the revocation below comes, even
    # if this test process is starved on a loaded machine (150 calls of 60 ms otherwise take ~2 s in all).
    emulator.add_fault(target="api", kind="delay", delay_s=5, skip=24, times=1)
    pull = start_child({"mode": "pull", "page_size": 10})
    try:
        wait_for(lambda: emulator.stats()["api_calls"] >= 20, "the pull to be under way")
        revoked = emulator.revoke_tokens()
    finally:
        [result], log = finish_child(pull)

    stats = emulator.stats()
    assert revoked == 1
    assert stats["token_requests"] == 2  # the first token, and exactly one refresh
    assert 1 <= stats["unauthorized"] <= 4  # the calls in flight (max_concurrency 4), each replayed once
    assert stats["api_calls"] == 150 + stats["unauthorized"]
    assert result["count"] == result["unique"] == 1500
    assert result["digest"] == expected_order_digest("FR", 1500)
    assert log.count("previous token rejected with HTTP 401") == 1
