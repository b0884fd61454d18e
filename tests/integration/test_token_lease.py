"""Cross-host single flight (token_lease.py) over a fake, last-writer-wins Variable store.

"Hosts" are forked processes, each with its own token file cache; they share only the fake Variable store
(files in a directory: no lock, no compare-and-set, like Airflow Variables). The proof on real Celery
workers is the cluster run (scripts/e2e_cluster.py); here are the failure modes: a slow or failing Variable
API, a lease holder that never delivers, a holder whose renewal fails, foreign or damaged values.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_schneider.config.fields import TOKEN_CLUSTER_LEASE_ENV as LEASE_ENV
from airflow_provider_schneider.config.fields import TOKEN_CLUSTER_SETTLE_ENV as SETTLE_ENV
from airflow_provider_schneider.process import STATE
from airflow_provider_schneider.tokens import tiers as token_tiers
from airflow_provider_schneider.tokens.lease import (
    ClusterLease,
    LeaseRecord,
)
from airflow_provider_schneider.tokens.manager import TokenManager
from airflow_provider_schneider.tokens.token import Token, token_id
from tests.support.fakes import OnSleep
from tests.support.tokens import settings_for

#: Version-agnostic (the hook and its transport, or a fake store): the lowest-version run skips it.
pytestmark = pytest.mark.latest_only

LIFETIME = 60.0


class FakeVariables:
    """``airflow.sdk.Variable`` backed by one file per key: shared by forked processes, last writer wins."""

    root = Path("/nonexistent")
    latency = 0.0  # seconds per call
    down = False

    @classmethod
    def _path(cls, key: str) -> Path:
        return cls.root / key

    @classmethod
    def _call(cls) -> None:
        if cls.down or (cls.root / "DOWN").exists():
            raise ConnectionError("Variable API down")
        time.sleep(cls.latency)

    @classmethod
    def get(cls, key: str, default: Any = None) -> Any:
        cls._call()
        try:
            return cls._path(key).read_text()
        except FileNotFoundError:
            return default

    @classmethod
    def set(cls, key: str, value: str, description: str | None = None) -> None:
        cls._call()
        tmp = cls.root / f".{key}.{secrets.token_hex(4)}"
        tmp.write_text(value)
        os.replace(tmp, cls._path(key))

    @classmethod
    def delete(cls, key: str) -> None:
        cls._call()
        cls._path(key).unlink(missing_ok=True)


@pytest.fixture
def variables(tmp_path, monkeypatch):
    import airflow.sdk

    root = tmp_path / "variables"
    root.mkdir()
    monkeypatch.setattr(FakeVariables, "root", root)
    monkeypatch.setattr(FakeVariables, "latency", 0.0)
    monkeypatch.setattr(FakeVariables, "down", False)
    monkeypatch.setattr(airflow.sdk, "Variable", FakeVariables)
    monkeypatch.setattr(token_tiers, "in_task_context", lambda: True)
    monkeypatch.setenv(SETTLE_ENV, "1.0")  # generous: the timing assumption holds on a loaded machine
    monkeypatch.delenv(LEASE_ENV, raising=False)
    STATE.reset()
    yield FakeVariables
    STATE.reset()


class Endpoint:
    """A token endpoint that counts its calls in a file (shared by forked processes)."""

    def __init__(self, directory: Path, latency: float = 0.2, fail: bool = False):
        self.log = directory / "token_requests"
        self.latency = latency
        self.fail = fail

    def __call__(self) -> Token:
        time.sleep(self.latency)
        if self.fail:
            raise RuntimeError("token endpoint failed")
        token = Token(secrets.token_urlsafe(24), time.time() + LIFETIME, LIFETIME)
        with open(self.log, "a") as out:
            out.write(token_id(token) + "\n")
        return token

    @property
    def requests(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0


def _host(cache_dir: str, endpoint: Endpoint, start: Any, results: Any, extra: dict[str, Any]) -> None:
    STATE.reset()
    manager = TokenManager(settings_for(Path(cache_dir), **extra), endpoint)
    start.wait(30)
    token = manager.get_token()
    results.put((token_id(token), manager.last_source, token.expires_at - time.time()))


def run_hosts(tmp_path: Path, endpoint: Endpoint, hosts: int = 4, **extra: Any) -> list[tuple[str, str, float]]:
    """``hosts`` processes with separate file caches ask for a token at the same moment."""
    ctx = multiprocessing.get_context("fork")
    start, results = ctx.Barrier(hosts), ctx.Queue()
    procs = [
        ctx.Process(target=_host, args=(str(tmp_path / f"host-{i}"), endpoint, start, results, extra))
        for i in range(hosts)
    ]
    for proc in procs:
        proc.start()
    got = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    return got


def test_hosts_renewing_at_once_cause_one_token_request(tmp_path, variables):
    endpoint = Endpoint(tmp_path)
    got = run_hosts(tmp_path, endpoint, hosts=4)
    assert endpoint.requests == 1
    assert len({tid for tid, _, _ in got}) == 1  # every host has the winner's token
    assert sorted(source for _, source, _ in got) == ["endpoint", "variable", "variable", "variable"]
    assert all(left > LIFETIME - 30 for _, _, left in got)  # fresh, never an expiring token


def test_with_the_lease_off_each_host_renews_on_its_own(tmp_path, variables, monkeypatch):
    """The control: nothing but last-writer-wins Variables, so hosts that miss together all ask."""
    monkeypatch.setenv(LEASE_ENV, "off")
    endpoint = Endpoint(tmp_path, latency=1.0)  # longer than any start-up skew between the hosts
    got = run_hosts(tmp_path, endpoint, hosts=3)
    assert endpoint.requests == 3
    assert {source for _, source, _ in got} == {"endpoint"}


def test_a_down_variable_api_falls_back_to_a_plain_refresh(tmp_path, variables, caplog, monkeypatch):
    monkeypatch.setattr(variables, "down", True)
    endpoint = Endpoint(tmp_path, latency=0)
    manager = TokenManager(settings_for(tmp_path / "host"), endpoint)
    started = time.monotonic()
    token = manager.get_token()
    assert time.monotonic() - started < 20  # no wait for a lease (30 s): generous for a loaded machine
    assert endpoint.requests == 1 and manager.last_source == "endpoint" and token.access_token
    assert "off for this process" in caplog.text


def test_a_holder_that_never_delivers_delays_a_loser_by_a_bounded_wait(tmp_path, variables):
    """A live lease of a host that died: the loser waits at most token_wait_timeout, then renews itself."""
    manager = TokenManager(settings_for(tmp_path / "host", token_wait_timeout=2), Endpoint(tmp_path, latency=0))
    lease_key = manager.variable.lease_store().key  # type: ignore[union-attr]
    (variables.root / lease_key).write_text(LeaseRecord("dead-host", time.time() + 30).dump())  # its full term
    started = time.monotonic()
    token = manager.get_token()
    waited = time.monotonic() - started
    assert 1.5 < waited < 2 + 1.0 + 12  # the wait and the settle delay, not the lease's term (slack for load)
    assert manager.last_source == "endpoint" and token.expires_at - time.time() > LIFETIME - 10


def test_a_slow_variable_api_stretches_the_settle_delay(tmp_path, variables, monkeypatch):
    monkeypatch.setattr(variables, "latency", 0.3)
    manager = TokenManager(settings_for(tmp_path / "host"), Endpoint(tmp_path, latency=0))
    sleeps: list[float] = []
    lease = ClusterLease(manager.variable.lease_store(), settle=0.1, wait=10, clock=OnSleep(sleeps.append))  # type: ignore[union-attr]
    assert lease.acquire() == "won"
    assert sleeps and sleeps[0] >= 2 * 0.6 - 0.05  # twice the read + write that came before


def test_a_winner_whose_renewal_fails_releases_the_lease(tmp_path, variables):
    failing = TokenManager(settings_for(tmp_path / "a"), Endpoint(tmp_path, latency=0, fail=True))
    with pytest.raises(RuntimeError):
        failing.get_token()
    lease_key = failing.variable.lease_store().key  # type: ignore[union-attr]
    assert not (variables.root / lease_key).exists()  # nobody waits for a renewal that will not come
    STATE.reset()
    endpoint = Endpoint(tmp_path, latency=0)
    started = time.monotonic()
    TokenManager(settings_for(tmp_path / "b"), endpoint).get_token()
    assert endpoint.requests == 1 and time.monotonic() - started < 20  # not the 30 s a stale lease would cost


def test_the_cluster_tier_never_hands_out_a_foreign_or_expiring_token(tmp_path, variables):
    manager = TokenManager(settings_for(tmp_path / "host"), Endpoint(tmp_path, latency=0))
    key = manager.variable.variable_key  # type: ignore[union-attr]
    other = TokenManager(settings_for(tmp_path / "other"), Endpoint(tmp_path, latency=0))
    expiring = Token("old-token-value", time.time() + 2, LIFETIME)
    (variables.root / key).write_text(other.variable._cipher.seal(expiring))  # type: ignore[union-attr,arg-type]
    STATE.reset()
    token = manager.get_token()
    assert token.access_token != "old-token-value" and manager.last_source == "endpoint"
    (variables.root / key).write_text("not a sealed token")
    STATE.reset()
    manager._current = None
    assert manager.get_token().access_token != "not a sealed token"


def test_lease_records_and_knobs(monkeypatch):
    assert LeaseRecord.parse(LeaseRecord("a", 5.0).dump()) == LeaseRecord("a", 5.0)
    for damaged in (None, "", "{", json.dumps({"holder": "a"}), json.dumps({"holder": "", "until": 1}), "x" * 5000):
        assert LeaseRecord.parse(damaged) is None
    monkeypatch.delenv(LEASE_ENV, raising=False)
    monkeypatch.setenv(SETTLE_ENV, "1e9")
    nowhere = Path("/nonexistent")
    assert settings_for(nowhere).token_cluster_settle == 10.0  # the variable is clamped
    monkeypatch.setenv(SETTLE_ENV, "nan")
    assert settings_for(nowhere).token_cluster_settle == 0.5
    assert settings_for(nowhere, token_cluster_settle=0.2).token_cluster_settle == 0.2  # the field wins
    assert settings_for(nowhere).token_cluster_lease
    assert not settings_for(nowhere, token_cluster_lease="false").token_cluster_lease
    monkeypatch.setenv(LEASE_ENV, "off")
    assert not settings_for(nowhere).token_cluster_lease
    assert settings_for(nowhere, token_cluster_lease=True).token_cluster_lease  # the field wins


def test_the_connection_field_turns_the_lease_off(tmp_path, variables, caplog):
    """token_cluster_lease=false with no environment variable: the renewal never touches the lease Variable."""
    import logging

    endpoint = Endpoint(tmp_path, latency=0)
    manager = TokenManager(settings_for(tmp_path / "host", token_cluster_lease=False), endpoint)
    with caplog.at_level(logging.INFO, logger="airflow_provider_schneider.tokens.manager"):
        manager.get_token()
    lease_key = manager.variable.lease_store().key  # type: ignore[union-attr]
    assert endpoint.requests == 1 and manager.last_source == "endpoint"
    assert not (variables.root / lease_key).exists()
    assert "cluster lease off" in caplog.text


def test_a_foreign_write_during_the_settle_delay_loses_the_lease():
    class Store:
        ok = True
        value: str | None = None

        def get(self):
            return self.value

        def set(self, value):
            self.value = value

        def delete(self):
            self.value = None

    store = Store()
    lease = ClusterLease(
        store, settle=0.5, wait=10, clock=OnSleep(lambda s: store.set(LeaseRecord("other", time.time() + 20).dump()))
    )
    assert lease.acquire() == "lost" and lease.until <= time.time() + 10
    lease.release()
    assert store.value is not None  # someone else's lease is kept
    mine = ClusterLease(Store(), settle=0.5, wait=10, clock=OnSleep(lambda s: None))
    assert mine.acquire() == "won"
    mine.release()
    assert mine.store.value is None


def test_a_loser_takes_the_winners_token_and_says_so(tmp_path, variables, caplog):
    import logging
    import threading

    endpoint = Endpoint(tmp_path, latency=0)
    manager = TokenManager(settings_for(tmp_path / "host"), endpoint)
    winner = TokenManager(settings_for(tmp_path / "winner"), Endpoint(tmp_path / "w", latency=0))
    (tmp_path / "w").mkdir()
    lease_key = manager.variable.lease_store().key  # type: ignore[union-attr]
    (variables.root / lease_key).write_text(LeaseRecord("winner", time.time() + 20).dump())
    fresh = Token("the-winners-token", time.time() + LIFETIME, LIFETIME)
    key = manager.variable.variable_key  # type: ignore[union-attr]
    sealed = winner.variable._cipher.seal(fresh)  # type: ignore[union-attr]
    publish = threading.Timer(0.5, lambda: (variables.root / key).write_text(sealed))  # type: ignore[arg-type]
    publish.start()
    with caplog.at_level(logging.INFO, logger="airflow_provider_schneider.tokens.manager"):
        token = manager.get_token()
    publish.join()
    assert token.access_token == "the-winners-token" and manager.last_source == "variable"
    assert endpoint.requests == 0
    assert "(cluster lease): no request from here" in caplog.text
