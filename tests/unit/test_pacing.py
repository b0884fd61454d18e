"""The client's adaptive limit: halve on a throttle (once per window), grow back after successes, learn a pace."""

from __future__ import annotations

import threading

import pytest

from airflow_provider_schneider.client.cancellation import CancelScope, PullCancelled, within
from airflow_provider_schneider.client.pacing import GROW_EVERY, AdaptiveLimit, LocalPace
from tests.support.fakes import FakeClock


def _call(limit: AdaptiveLimit, outcome: str) -> None:
    limit.leave(limit.enter("GET /x"), outcome)


def test_a_throttle_halves_the_calls_in_flight_and_successes_grow_them_back_one_window_at_a_time():
    clock = FakeClock(0.0)
    limit = AdaptiveLimit(8, clock=clock.monotonic)
    _call(limit, "throttled")
    assert limit.limit == 4
    _call(limit, "throttled")
    assert limit.limit == 2
    for _ in range(2):
        _call(limit, "ok")
    assert limit.limit == 3  # +1 after `limit` successes in a row
    for _ in range(3):
        _call(limit, "ok")
    assert limit.limit == 4
    for _ in range(100):
        _call(limit, "ok")
    assert limit.limit == 8  # never above max_concurrency


def test_calls_refused_together_count_as_one_decrease():
    limit = AdaptiveLimit(8, clock=FakeClock(0.0).monotonic)
    windows = [limit.enter("GET /x") for _ in range(8)]  # eight calls sent before any answer
    for window in windows:
        limit.leave(window, "throttled")
    assert limit.limit == 4, "eight refusals of one burst must halve once, not eight times"
    assert limit.throttles == 8
    limit.leave(limit.enter("GET /x"), "throttled")  # sent after the decrease: it counts
    assert limit.limit == 2


def test_the_limit_never_goes_below_one_and_errors_say_nothing_about_limits():
    limit = AdaptiveLimit(2, clock=FakeClock(0.0).monotonic)
    for _ in range(10):
        _call(limit, "throttled")
    assert limit.limit == 1
    _call(limit, "error")
    assert limit.limit == 1 and limit.in_flight == 0


def test_off_it_keeps_max_concurrency_whatever_happens():
    limit = AdaptiveLimit(6, adaptive=False, clock=FakeClock(0.0).monotonic)
    for _ in range(5):
        _call(limit, "throttled")
    assert limit.limit == 6 and limit.rate is None and limit.reserve() == 0


def test_a_first_throttle_paces_at_ninety_percent_of_what_the_gateway_accepted_in_the_last_second():
    clock = FakeClock(0.0)
    limit = AdaptiveLimit(8, clock=clock.monotonic)
    for _ in range(20):
        _call(limit, "ok")
        clock.sleep(0.01)
    clock.sleep(2.0)
    for _ in range(10):  # only these fall in the last second
        _call(limit, "ok")
    _call(limit, "throttled")
    assert limit.rate == pytest.approx(9.0)
    assert limit.reserve() == 0
    assert limit.reserve() == pytest.approx(1 / 9.0)  # reserved moments are 1/rate apart
    assert limit.reserve() == pytest.approx(2 / 9.0)
    _call(limit, "throttled")  # refused again while paced: 90 % of the pace
    assert limit.rate == pytest.approx(8.1)


def test_the_pace_grows_while_no_throttle_comes_and_is_dropped_once_it_no_longer_binds():
    clock = FakeClock(0.0)
    limit = AdaptiveLimit(2, clock=clock.monotonic)
    for _ in range(20):
        _call(limit, "ok")
    _call(limit, "throttled")
    start = limit.rate
    assert start is not None
    for _ in range(4 * 40):  # busy: 20 successes a second, past four growth steps
        clock.sleep(GROW_EVERY / 40)
        _call(limit, "ok")
    assert limit.rate is not None and limit.rate >= start + 3
    clock.sleep(GROW_EVERY)
    _call(limit, "ok")  # one call in a whole growth step: far below the pace
    assert limit.rate is None


def test_a_thread_waiting_for_room_leaves_when_its_pull_is_cancelled():
    limit = AdaptiveLimit(1)
    window = limit.enter("GET /first")
    scope, failure = CancelScope(), []

    def waiter() -> None:
        with within(scope):
            try:
                limit.enter("GET /second")
            except PullCancelled as exc:
                failure.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    scope.cancel()
    thread.join(5)
    assert not thread.is_alive() and failure
    limit.leave(window, "ok")
    assert limit.in_flight == 0


def test_a_local_pace_spaces_calls_by_one_over_the_rate():
    clock = FakeClock(100.0)
    pace = LocalPace(4.0, clock=clock.monotonic)
    assert [pace.reserve() for _ in range(3)] == [0, 0.25, 0.5]
    clock.sleep(10)
    assert pace.reserve() == 0
