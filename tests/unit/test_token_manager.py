"""TokenManager on its seams: a fake token endpoint (``fetch``), a fake clock, a real host cache directory and a
fake Task SDK ``Variable`` for the cluster tier.

No Airflow process, no emulator, no real sleeps: time advances only through the fake clock, and the threads of
the single-flight tests coordinate through events and a lock that reports who is waiting for it.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import threading
from typing import Any

import pytest

from airflow_provider_schneider.config.fields import TOKEN_CLUSTER_LEASE_ENV as LEASE_ENV
from airflow_provider_schneider.config.fields import TOKEN_CLUSTER_SETTLE_ENV as SETTLE_ENV
from airflow_provider_schneider.exceptions import SchneiderTokenEndpointError
from airflow_provider_schneider.process import STATE
from airflow_provider_schneider.tokens import manager as manager_module
from airflow_provider_schneider.tokens.lease import MAX_WAIT, LeaseRecord
from airflow_provider_schneider.tokens.manager import CLOCK_SLACK, TokenManager
from airflow_provider_schneider.tokens.token import Token, token_id
from tests.support.fakes import FakeClock
from tests.support.tokens import FakeVariableApi, settings_for, use_fake_variables

T0 = 1_700_000_000.0
HANG_GUARD = 10.0  # seconds a coordination event may take before the test fails instead of hanging


class FakeFetch:
    """The token endpoint: one new token per call (``queue`` first), counts calls; ``error`` makes it raise;
    with ``gate`` set it blocks until the test opens it (``entered`` says a call is in progress)."""

    def __init__(self, clock: FakeClock, lifetime: float = 3600.0):
        self.clock = clock
        self.lifetime = lifetime
        self.calls = 0
        self.queue: list[Token] = []
        self.error: Exception | None = None
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self) -> Token:
        with self._lock:
            self.calls += 1
            number = next(self._numbers)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(HANG_GUARD), "the test never opened the fake endpoint"
        if self.error is not None:
            raise self.error
        if self.queue:
            return self.queue.pop(0)
        return Token(f"issued-{number}-{'x' * 20}", self.clock.now + self.lifetime, self.lifetime)


class WaitersLock:
    """A refresh lock that tells the test how many threads asked for it (so it can open the endpoint only
    once every thread is queued behind the one refreshing)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked = 0
        self._changed = threading.Condition()

    def __enter__(self) -> bool:
        with self._changed:
            self._asked += 1
            self._changed.notify_all()
        return self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def wait_for_askers(self, count: int) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: self._asked >= count, HANG_GUARD), f"{self._asked}/{count} asked"


def token(name: str, issued: float, lifetime: float = 3600.0, replaces: str | None = None) -> Token:
    return Token(f"{name}-{'y' * 20}", issued + lifetime, lifetime, replaces)


@pytest.fixture(autouse=True)
def clean_state(monkeypatch):
    monkeypatch.delenv(LEASE_ENV, raising=False)
    monkeypatch.delenv(SETTLE_ENV, raising=False)
    STATE.reset()
    yield
    STATE.reset()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def fetch(clock) -> FakeFetch:
    return FakeFetch(clock)


@pytest.fixture
def make(tmp_path, fetch, clock):
    """``make(**extra)``: a manager of ``schneider_default`` with its host cache under ``tmp_path`` (no
    refresh spread unless asked for, so the refresh point is exact)."""

    def build(**extra: Any) -> TokenManager:
        settings = settings_for(tmp_path / "host", **{"token_refresh_spread": 0, "token_cache": "memory,file", **extra})
        return TokenManager(settings, fetch, clock=clock)

    return build


@pytest.fixture
def variables(monkeypatch, clock) -> FakeVariableApi:
    """The cluster tier usable, as inside a running task, on the fake clock."""
    return use_fake_variables(monkeypatch, FakeVariableApi(clock))


def tiers_hold(manager: TokenManager) -> dict[str, Token | None]:
    held: dict[str, Token | None] = {}
    for tier in (manager.memory, manager.file, manager.variable):
        if tier is not None:
            held[tier.name] = tier.read()
    return held


# -- reuse ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tiers", ["memory", "memory,file", "none"])
def test_many_get_token_calls_make_one_request(make, fetch, clock, tiers):
    manager = make(token_cache=tiers)
    first = manager.get_token()
    for _ in range(50):
        clock.sleep(30)  # 25 minutes in all: still far from the refresh point
        assert manager.get_token() is first
    assert fetch.calls == 1 and manager.token_requests == 1 and manager.last_source == "endpoint"


def test_a_new_token_goes_into_every_tier(make, fetch, variables):
    manager = make(token_cache="memory,file,variable")
    issued = manager.get_token()
    assert tiers_hold(manager) == {"memory": issued, "file": issued, "variable": issued}
    assert manager.variable is not None and manager.variable.lease_store().key not in variables.values  # released


def test_another_process_on_the_host_takes_the_file_token(make, fetch):
    issued = make().get_token()
    STATE.reset()  # a new process: empty memory tier
    manager = make()
    assert manager.memory is not None and manager.memory.read() is None
    assert manager.get_token() == issued
    assert manager.last_source == "file" and fetch.calls == 1
    assert manager.memory.read() == issued  # promoted into memory


def test_another_hook_in_the_process_takes_the_memory_token(make, fetch):
    issued = make().get_token()
    manager = make()
    assert manager.get_token() == issued and manager.last_source == "memory" and fetch.calls == 1


def test_cluster_token_is_promoted_into_file_and_memory(make, fetch, variables):
    peer = token("from-another-host", T0 - 60)
    manager = make(token_cache="memory,file,variable")
    assert manager.variable is not None and manager.variable.status() is None
    manager.variable.write(peer)

    assert manager.get_token() == peer and manager.last_source == "variable" and fetch.calls == 0
    assert tiers_hold(manager) == {"memory": peer, "file": peer, "variable": peer}

    STATE.reset()  # another process of this host: the file answers, the Variable is not asked
    calls = len(variables.calls)
    second = make(token_cache="memory,file,variable")
    assert second.get_token() == peer and second.last_source == "file"
    assert len(variables.calls) == calls

    third = make(token_cache="memory,file,variable")  # another hook of that process
    assert third.get_token() == peer and third.last_source == "memory" and fetch.calls == 0
    assert len(variables.calls) == calls


def test_outside_a_task_the_cluster_tier_is_never_called(make, fetch, monkeypatch):
    import airflow.sdk

    api = FakeVariableApi()
    monkeypatch.setattr(airflow.sdk, "Variable", api)  # reachable, but not inside a task
    manager = make(token_cache="memory,file,variable")
    manager.get_token()
    assert manager.variable is not None and manager.variable.status() == "outside a task"
    assert api.calls == [] and fetch.calls == 1 and manager.file is not None and manager.file.read() is not None


def test_a_rotated_secret_does_not_read_the_old_entries(make, fetch, tmp_path, clock):
    old = make().get_token()
    settings = dataclasses.replace(make().settings, client_secret="rotated-secret")
    rotated = TokenManager(settings, fetch, clock=clock)
    fresh = rotated.get_token()
    assert fresh != old and fetch.calls == 2
    assert rotated.file is not None and rotated.file.read() == fresh  # overwritten under the new key
    STATE.reset()
    assert make().file.read() is None  # type: ignore[union-attr] - the old secret cannot open it any more


def test_a_manager_needs_a_client_secret(make, fetch, clock):
    settings = dataclasses.replace(make().settings, client_secret=None)
    with pytest.raises(ValueError, match="client secret"):
        TokenManager(settings, fetch, clock=clock)


# -- freshness ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lifetime", "leeway", "spread", "renew_before"),
    [
        (3600, 300, 0.0, 300),  # the leeway
        (600, 300, 0.0, 150),  # capped to a quarter of a short token's life
        (3600, 300, 0.5, 450),  # stretched by this process's spread
        (600, 300, 0.5, 225),  # capped, then stretched
        (3600, 0, 0.5, 0),  # no leeway: used up to its expiry
    ],
)
def test_renewal_ahead_of_expiry(make, fetch, clock, monkeypatch, lifetime, leeway, spread, renew_before):
    drawn: list[tuple[float, float]] = []

    def highest(low: float, high: float) -> float:
        drawn.append((low, high))
        return high

    monkeypatch.setattr(manager_module.random, "uniform", highest)
    fetch.lifetime = lifetime
    manager = make(token_leeway=leeway, token_refresh_spread=spread)
    assert drawn == [(0.0, spread)]  # each process draws its own point in [0, token_refresh_spread]
    first = manager.get_token()

    clock.now = first.expires_at - renew_before - 1
    assert manager.get_token() is first and fetch.calls == 1
    clock.now = first.expires_at - renew_before
    second = manager.get_token()
    assert second != first and fetch.calls == 2 and manager.last_source == "endpoint"


def test_a_stale_file_token_is_not_taken(make, fetch, clock):
    manager = make(token_leeway=300)
    assert manager.file is not None
    stale = token("stale", clock.now - 3600 + 299)  # 299 s left, leeway 300
    manager.file.write(stale)
    got = manager.get_token()
    assert got != stale and fetch.calls == 1 and manager.file.read() == got


@pytest.mark.parametrize(("ahead", "used"), [(CLOCK_SLACK - 1, True), (CLOCK_SLACK + 1, False), (1e9, False)])
def test_a_token_from_the_future_is_not_used(make, fetch, clock, ahead, used):
    """A cached token valid longer than its lifetime (+ CLOCK_SLACK) from now was written under a clock that
    runs ahead of ours: not trusted."""
    manager = make()
    assert manager.file is not None
    future = token("future", clock.now + ahead)
    manager.file.write(future)
    got = manager.get_token()
    assert (got == future) is used
    assert fetch.calls == (0 if used else 1)
    assert manager.usable(future) is used


def test_a_non_finite_expiry_is_not_usable(make):
    manager = make()
    assert not manager.usable(Token("t" * 20, float("inf"), 3600))
    assert not manager.usable(None)


# -- rejection (HTTP 401) -----------------------------------------------------------------------------------


def test_invalidate_removes_the_token_from_every_tier(make, clock, variables):
    manager = make(token_cache="memory,file,variable")
    rejected = manager.get_token()
    clock.sleep(10)
    seen = clock.now
    since = manager.invalidate(rejected)
    assert since == seen
    assert tiers_hold(manager) == {"memory": None, "file": None, "variable": None}
    assert manager.variable is not None and manager.variable.variable_key not in variables.values
    assert manager.invalidate(rejected) == since  # first seen, not last seen


def test_invalidate_keeps_a_fresher_token_a_peer_stored(make, fetch, clock, variables):
    manager = make(token_cache="memory,file,variable")
    rejected = manager.get_token()
    clock.sleep(5)
    fresher = token("peer", clock.now)
    manager.file.write(fresher)  # type: ignore[union-attr]
    manager.variable.write(fresher)  # type: ignore[union-attr]

    manager.invalidate(rejected)
    assert tiers_hold(manager) == {"memory": None, "file": fresher, "variable": fresher}
    assert manager.get_token() == fresher and manager.last_source == "file" and fetch.calls == 1


def test_a_rejected_token_is_never_handed_out_again(make, fetch, clock, variables, caplog):
    manager = make(token_cache="memory,file,variable")
    rejected = manager.get_token()
    manager.invalidate(rejected)
    # A peer that has not seen the 401 writes the rejected token back into the shared tiers.
    manager.file.write(rejected)  # type: ignore[union-attr]
    manager.variable.write(rejected)  # type: ignore[union-attr]
    manager.memory.write(rejected)  # type: ignore[union-attr] - and another hook of this process, to memory

    with caplog.at_level(logging.INFO, logger="airflow_provider_schneider.tokens.manager"):
        renewed = manager.get_token()
    assert renewed != rejected and fetch.calls == 2
    assert "previous token rejected with HTTP 401" in caplog.text and "(rejected by the API)" in caplog.text
    for _ in range(3):
        clock.sleep(60)
        assert manager.get_token() == renewed
    assert tiers_hold(manager) == {"memory": renewed, "file": renewed, "variable": renewed}


def test_a_token_the_endpoint_issues_again_is_good_again(make, fetch, clock):
    manager = make()
    rejected = manager.get_token()
    manager.invalidate(rejected)
    fetch.queue.append(rejected)  # the gateway hands out the same token again
    assert manager.get_token() == rejected and fetch.calls == 2
    assert manager.get_token() == rejected and fetch.calls == 2  # reused, no longer treated as rejected


def test_a_replacement_request_marks_the_token_it_replaces(make, fetch, clock):
    manager = make()
    rejected = manager.get_token()
    manager.invalidate(rejected)
    clock.sleep(1)
    replacement = manager.get_token(replacing=rejected)
    assert replacement.replaces == token_id(rejected) and fetch.calls == 2
    assert manager.file.read() == replacement  # type: ignore[union-attr] - with the mark, for the other processes


def test_replacing_skips_an_older_cached_token(make, fetch, clock):
    manager = make()
    rejected = manager.get_token()
    older = token("older", clock.now - 10)  # issued before the 401, maybe revoked with the rejected one
    clock.sleep(60)
    manager.invalidate(rejected)
    manager.file.write(older)  # type: ignore[union-attr]
    assert manager.usable(older)  # a fine token for a routine call...

    replacement = manager.get_token(replacing=rejected)
    assert replacement != older and fetch.calls == 2  # ...but not as a replacement
    assert replacement.issued_at >= clock.now


@pytest.mark.parametrize("tier", ["file", "variable"])
@pytest.mark.parametrize("why", ["marked as its replacement", "issued after the rejection"])
def test_replacing_takes_a_peers_replacement(make, fetch, clock, variables, tier, why):
    manager = make(token_cache="memory,file,variable", token_cluster_lease=False)
    rejected = manager.get_token()
    clock.sleep(60)
    since = manager.invalidate(rejected)
    clock.sleep(5)
    if why == "marked as its replacement":  # a peer saw the 401 earlier than we did and renewed
        peer = token("peer", since - 30, replaces=token_id(rejected))
    else:
        peer = token("peer", since + 1)
    getattr(manager, tier).write(peer)

    assert manager.get_token(replacing=rejected) == peer
    assert fetch.calls == 1 and manager.last_source == tier


def test_replacing_a_token_never_invalidated_here_counts_from_now(make, fetch, clock):
    manager = make()
    current = manager.get_token()
    clock.sleep(1)
    replacement = manager.get_token(replacing=current)
    assert replacement != current and replacement.replaces == token_id(current) and fetch.calls == 2


def test_a_process_remembers_a_bounded_number_of_rejections(make, clock):
    manager = make(token_cache="none")
    tokens = [token(f"r{i}", clock.now) for i in range(40)]
    for each in tokens:
        manager.invalidate(each)
    remembered = STATE.rejected[manager.key.digest]
    assert len(remembered) == 32
    assert token_id(tokens[0]) not in remembered and token_id(tokens[-1]) in remembered


# -- single flight --------------------------------------------------------------------------------------------


def run_threads(count: int, target: Any) -> tuple[list[threading.Thread], list[Any], list[BaseException]]:
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = target(index)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads, results, errors


def finish(threads: list[threading.Thread], errors: list[BaseException]) -> None:
    for thread in threads:
        thread.join(HANG_GUARD)
        assert not thread.is_alive(), "a get_token call hung"
    assert not errors, errors


def queue_behind_refresh(manager: TokenManager, fetch: FakeFetch, count: int, call: Any) -> list[Any]:
    """Start ``count`` threads on ``call``; open the endpoint once all of them asked for the refresh lock."""
    lock = WaitersLock()
    STATE.refresh_locks[manager.key.digest] = lock  # type: ignore[assignment]
    fetch.gate = threading.Event()
    threads, results, errors = run_threads(count, call)
    assert fetch.entered.wait(HANG_GUARD)
    lock.wait_for_askers(count)
    fetch.gate.set()
    finish(threads, errors)
    return results


def test_threads_on_a_cold_cache_make_one_request(make, fetch):
    manager = make()
    results = queue_behind_refresh(manager, fetch, 8, lambda _: manager.get_token())
    assert fetch.calls == 1 and manager.token_requests == 1
    assert all(result == results[0] for result in results)


def test_hooks_of_one_process_share_the_refresh(make, fetch):
    managers = [make(), make()]
    results = queue_behind_refresh(managers[0], fetch, 8, lambda i: managers[i % 2].get_token())
    assert fetch.calls == 1 and len(set(results)) == 1
    assert sorted(m.last_source for m in managers) == ["endpoint", "memory"]


def test_threads_replacing_a_rejected_token_make_one_request(make, fetch, clock):
    manager = make()
    rejected = manager.get_token()
    clock.sleep(60)
    manager.invalidate(rejected)
    fetch.entered.clear()
    results = queue_behind_refresh(manager, fetch, 6, lambda _: manager.get_token(replacing=rejected))
    assert fetch.calls == 2 and len(set(results)) == 1 and results[0] != rejected


def test_a_forked_child_does_not_wait_for_a_lock_its_parent_held(make, fetch):
    manager = make()
    parent_lock = STATE.refresh_lock(manager.key.digest)
    parent_lock.acquire()  # a thread of the parent was refreshing at fork time
    try:
        STATE.after_fork()
        threads, results, errors = run_threads(1, lambda _: manager.get_token())
        finish(threads, errors)
        assert results[0] is not None and fetch.calls == 1
    finally:
        parent_lock.release()


# -- the slow path's deadline (token_wait_timeout) ----------------------------------------------------------


def publish_on_sleep(clock: FakeClock, action: Any) -> None:
    """Run ``action`` at the first sleep of ``clock`` (a peer acting while we wait); time still advances."""
    sleep = clock.sleep
    done = []

    def sleeping(seconds: float) -> None:
        sleep(seconds)
        if not done:
            done.append(True)
            action()

    clock.sleep = sleeping  # type: ignore[method-assign]


def test_a_lease_loser_takes_the_holders_token_without_a_request(make, fetch, clock, variables):
    manager = make(token_cache="memory,file,variable", token_wait_timeout=20)
    store = manager.variable.lease_store()  # type: ignore[union-attr]
    variables.values[store.key] = LeaseRecord("other-host", clock.now + MAX_WAIT).dump()
    peer = token("holder", clock.now)
    publish_on_sleep(clock, lambda: manager.variable.write(peer))  # type: ignore[union-attr]

    started = clock.now
    assert manager.get_token() == peer
    assert fetch.calls == 0 and manager.last_source == "variable"
    assert clock.now - started < 1 and manager.file.read() == peer  # type: ignore[union-attr]


@pytest.mark.parametrize("timeout", [3, 12])
def test_a_lease_loser_renews_itself_when_the_budget_is_spent(make, fetch, clock, variables, timeout):
    manager = make(token_cache="memory,file,variable", token_wait_timeout=timeout)
    store = manager.variable.lease_store()  # type: ignore[union-attr]
    variables.values[store.key] = LeaseRecord("other-host", clock.now + MAX_WAIT).dump()  # never delivers

    started = clock.now
    got = manager.get_token()
    assert fetch.calls == 1 and manager.last_source == "endpoint"
    assert clock.now - started == pytest.approx(timeout)  # waited for the holder exactly as long as allowed
    assert all(at < started + timeout for _, _, at in variables.calls)  # no Variable call past the deadline
    assert manager.memory.read() == got and manager.file.read() == got  # type: ignore[union-attr]
    assert manager.variable.variable_key not in variables.values  # type: ignore[union-attr] - not published late


def test_a_slow_variable_api_bounds_the_wait(make, fetch, clock, monkeypatch):
    api = use_fake_variables(monkeypatch, FakeVariableApi(clock, latency=2.0))
    manager = make(token_cache="memory,file,variable", token_wait_timeout=5)
    started = clock.now
    manager.get_token()
    assert fetch.calls == 1
    assert clock.now - started <= 5 + 2.0  # the budget plus one call in flight
    assert all(at - 2.0 < started + 5 for _, _, at in api.calls)


# -- a failing endpoint -------------------------------------------------------------------------------------


def test_a_failing_request_propagates_and_leaves_the_tiers_untouched(make, fetch, variables):
    manager = make(token_cache="memory,file,variable")
    failure = SchneiderTokenEndpointError("token endpoint down")
    fetch.error = failure
    with pytest.raises(SchneiderTokenEndpointError) as raised:
        manager.get_token()
    assert raised.value is failure
    assert tiers_hold(manager) == {"memory": None, "file": None, "variable": None}
    assert STATE.tokens == {} and variables.values == {}  # no token, and the lease was released
    assert manager.token_requests == 0 and manager.last_source is None

    fetch.error = None  # no negative caching: the next call asks again
    assert manager.get_token() is not None and fetch.calls == 2


def test_a_failing_renewal_keeps_the_cached_token(make, fetch, clock, variables):
    manager = make(token_cache="memory,file,variable", token_leeway=300)
    old = manager.get_token()
    clock.now = old.expires_at - 100  # inside the leeway: time to renew
    fetch.error = SchneiderTokenEndpointError("token endpoint down")
    with pytest.raises(SchneiderTokenEndpointError):
        manager.get_token()
    assert tiers_hold(manager) == {"memory": old, "file": old, "variable": old}
    assert manager.token_requests == 1 and fetch.calls == 2
