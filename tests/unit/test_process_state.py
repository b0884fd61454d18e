"""The provider's per-process state: what a reset forgets, the refresh locks, said-once warnings, and what a
forked child gets (the fork handler's method called directly; no fork)."""

from __future__ import annotations

import threading

import pytest

from airflow_provider_schneider.process import STATE, SYSTEM_CLOCK, ProcessState


@pytest.fixture(autouse=True)
def clean_state():
    STATE.reset()
    yield
    STATE.reset()


def fill(state: ProcessState) -> None:
    state.tokens["digest/fingerprint"] = object()
    state.rejected["digest"] = {"token-id": 1.0}
    state.say_once("token_type 'mac'")
    state.watchdog = threading.Thread(target=lambda: None)
    state.refresh_lock("digest")


def test_reset_forgets_everything():
    fill(STATE)
    lock = STATE.lock
    STATE.reset()
    assert STATE.tokens == {} and STATE.rejected == {} and STATE.said == set()
    assert STATE.watchdog is None and STATE.refresh_locks == {}
    assert STATE.lock is not lock
    assert STATE.say_once("token_type 'mac'")  # said again after a reset


def test_a_new_state_starts_empty():
    state = ProcessState()
    assert (state.tokens, state.rejected, state.said, state.refresh_locks, state.watchdog) == ({}, {}, set(), {}, None)


def test_one_refresh_lock_per_key():
    a = STATE.refresh_lock("credential-a")
    assert STATE.refresh_lock("credential-a") is a
    b = STATE.refresh_lock("credential-b")
    assert b is not a
    with a:
        assert not b.locked()  # credentials never wait for each other


def test_threads_asking_at_once_get_the_same_lock():
    got: list[threading.Lock] = []
    start = threading.Barrier(8)

    def ask() -> None:
        start.wait(10)
        got.append(STATE.refresh_lock("credential"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(got) == 8 and len({id(lock) for lock in got}) == 1


def test_say_once():
    assert STATE.say_once("a") is True
    assert STATE.say_once("a") is False
    assert STATE.say_once("b") is True
    assert STATE.said == {"a", "b"}


def test_after_fork_gives_fresh_locks_and_no_thread():
    fill(STATE)
    held = STATE.refresh_lock("digest")
    held.acquire()  # a parent thread was refreshing at fork time...
    STATE.lock.acquire()  # ...or inside the state lock
    parent_lock = STATE.lock
    try:
        STATE.after_fork()
        assert STATE.lock is not parent_lock and not STATE.lock.locked()
        fresh = STATE.refresh_lock("digest")
        assert fresh is not held and not fresh.locked()
        assert STATE.watchdog is None
        # What the child may keep: the cached tokens, the rejections seen, the things said.
        assert "digest/fingerprint" in STATE.tokens and STATE.rejected == {"digest": {"token-id": 1.0}}
        assert STATE.say_once("token_type 'mac'") is False
    finally:
        held.release()
        parent_lock.release()


def test_the_system_clock_is_the_real_clock():
    import time

    assert abs(SYSTEM_CLOCK.time() - time.time()) < 60
    assert abs(SYSTEM_CLOCK.monotonic() - time.monotonic()) < 60
