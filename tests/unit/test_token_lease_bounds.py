"""The cluster-tier path of a renewal is bounded: a forged lease is no lease, and one deadline
(``token_wait_timeout``) covers the host lock wait, the Variable reads, the lease and the waits.

Time is injected (:class:`tests.support.tokens.FakeClock`): a Variable call costs its latency in fake seconds
and every sleep advances the clock at once, so waits of minutes are measured without waiting. The token
endpoint is a fake ``fetch`` that records when it was asked; the files and locks are real.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any

import pytest

from airflow_provider_schneider.config.fields import TOKEN_CLUSTER_LEASE_ENV as LEASE_ENV
from airflow_provider_schneider.config.fields import TOKEN_CLUSTER_SETTLE_ENV as SETTLE_ENV
from airflow_provider_schneider.process import STATE
from airflow_provider_schneider.tokens.lease import (
    MAX_WAIT,
    Budget,
    ClusterLease,
    LeaseRecord,
)
from airflow_provider_schneider.tokens.manager import TokenManager
from airflow_provider_schneider.tokens.token import Token
from tests.support.fakes import FakeClock, OnSleep
from tests.support.tokens import FakeVariableApi, settings_for, use_fake_variables

FORGED = json.dumps({"holder": "x", "until": 1e12})  # "a holder until year 33658"


class Endpoint:
    """A token endpoint on the fake clock: records when it was asked."""

    def __init__(self, clock: FakeClock):
        self.clock = clock
        self.asked_at: list[float] = []

    def __call__(self) -> Token:
        self.asked_at.append(self.clock.now)
        return Token(secrets.token_urlsafe(24), self.clock.now + 3600, 3600)


class Store:
    """A :class:`~airflow_provider_schneider.tokens.lease.LeaseStore` in memory."""

    ok = True

    def __init__(self, value: str | None = None):
        self.value = value

    def get(self) -> str | None:
        return self.value

    def set(self, value: str) -> None:
        self.value = value

    def delete(self) -> None:
        self.value = None


@pytest.fixture
def host(tmp_path, monkeypatch):
    """``host(latency=..., **extra)`` -> (manager, api, endpoint, clock): one worker host on a fake clock."""
    monkeypatch.delenv(LEASE_ENV, raising=False)
    monkeypatch.delenv(SETTLE_ENV, raising=False)
    STATE.reset()

    def make(latency: float = 0.0, **extra: Any):
        clock = FakeClock()
        api = use_fake_variables(monkeypatch, FakeVariableApi(clock, latency))
        settings = settings_for(tmp_path / "host", **{"token_cluster_settle": 0.5, **extra})
        endpoint = Endpoint(clock)
        manager = TokenManager(settings, endpoint, clock=clock)
        return manager, api, endpoint, clock

    yield make
    STATE.reset()


def lease_key(manager: TokenManager) -> str:
    assert manager.variable is not None
    return manager.variable.lease_store().key


def test_a_forged_lease_does_not_delay_a_cold_renewal(host, caplog):
    manager, api, endpoint, clock = host()
    api.values[lease_key(manager)] = FORGED
    started = clock.now
    with caplog.at_level(logging.WARNING, logger="airflow_provider_schneider.tokens.lease"):
        manager.get_token()

    assert clock.sleeps == [0.5]  # the settle delay of its own lease, no wait for the forged one
    assert endpoint.asked_at == [started + 0.5] and manager.last_source == "endpoint"
    assert "forged or broken" in caplog.text
    assert lease_key(manager) not in api.values  # overwritten by our lease, which we then released
    assert manager.variable.variable_key in api.values  # type: ignore[union-attr] - the token is published


def test_forged_and_damaged_leases_are_no_leases():
    now = 1_700_000_000.0
    assert LeaseRecord("a", now + MAX_WAIT).live(now)
    assert not LeaseRecord("a", now - 1).live(now)
    assert not LeaseRecord("a", 1e12).live(now) and not LeaseRecord("a", now + 3600).live(now)
    for raw in (
        '{"holder": "x", "until": NaN}',
        '{"holder": "x", "until": Infinity}',
        '{"holder": "x", "until": 1e999}',
    ):
        assert LeaseRecord.parse(raw) is None
    clock = FakeClock(now)
    store = Store(FORGED)
    lease = ClusterLease(store, settle=0.5, wait=10, clock=clock)
    assert lease.acquire() == "won" and clock.sleeps == [0.5]
    lease.release()
    assert store.value is None
    # A forged lease landing during the settle delay: lost, and the wait it implies is bounded by ours.
    forge = Store()
    lease = ClusterLease(forge, settle=0.5, wait=10, clock=OnSleep(lambda s: forge.set(FORGED), clock))
    assert lease.acquire() == "lost" and lease.until <= clock.now + 10 and not lease.still_held_by_other()


@pytest.mark.parametrize(
    ("case", "latency", "timeout"),
    [
        ("empty cluster tier", 5.0, 10),  # the issue: 5 s a Variable call took a cold token 50-60 s
        ("live lease, holder never delivers", 5.0, 10),
        ("live lease, holder never delivers", 0.0, 2),  # the loser's wait plus settle used to exceed it
        ("lease won, slow calls", 1.0, 10),
    ],
)
def test_the_cluster_tier_path_ends_within_token_wait_timeout(host, case, latency, timeout):
    manager, api, endpoint, clock = host(latency=latency, token_wait_timeout=timeout)
    if case.startswith("live lease"):
        api.values[lease_key(manager)] = LeaseRecord("other-host", clock.now + MAX_WAIT).dump()
    started = clock.now
    token = manager.get_token()

    asked = endpoint.asked_at[0] - started
    assert asked <= timeout + latency  # the budget plus at most one Variable call in flight
    assert clock.now - started <= timeout + latency  # and no cluster-tier call after it either
    assert all(at - latency < started + timeout for _, _, at in api.calls)  # none started past the deadline
    assert manager.last_source == "endpoint" and token.expires_at - clock.now > 3000


def test_a_spent_budget_skips_the_cluster_tier_and_says_so(host, caplog):
    manager, api, endpoint, clock = host(latency=5.0, token_wait_timeout=4)
    with caplog.at_level(logging.INFO, logger="airflow_provider_schneider.tokens.manager"):
        manager.get_token()
    assert [action for action, _, _ in api.calls] == ["get"]  # one read, then nothing: the budget was spent
    assert endpoint.asked_at[0] - api.calls[0][2] == 0
    assert "cluster lease given up: token_wait_timeout spent" in caplog.text
    assert "not published: token_wait_timeout spent" in caplog.text


def test_budget():
    clock = FakeClock(100.0)
    budget = Budget(10, clock)
    assert budget.left() == 10 and not budget.spent
    clock.sleep(12)
    assert budget.left() == 0 and budget.spent
    assert Budget(-5, clock).spent and Budget(0, clock).spent


def test_replaces_survives_the_cache_round_trip():
    """``Token.replaces`` goes through both shared tiers; a damaged one is dropped, never trusted."""
    token = Token("t" * 40, 2_000_000_000.0, 3600, replaces="ab" * 16)
    assert Token.from_json(token.to_json()) == token and token.issued_at == 2_000_000_000.0 - 3600
    assert Token.from_json({**token.to_json(), "replaces": "<not an id>"}) == Token("t" * 40, 2e9, 3600)
