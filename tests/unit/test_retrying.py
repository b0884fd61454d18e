"""The retry policy as values: Retry-After parsing, jittered backoff, and the two caps of the budget."""

from __future__ import annotations

import logging
import time
from email.utils import formatdate

import pytest

from airflow_provider_schneider.client.retrying import (
    TransientFailure,
    backoff_delay,
    call_with_retries,
    no_retry,
    parse_retry_after,
)
from airflow_provider_schneider.config.settings import RetryPolicy

log = logging.getLogger("tests.retrying")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", 1.0), (" 2.5 ", 2.5), ("0", 0.0), ("", None), (None, None), ("soon", None), ("-3", None), ("nan", None)],
)
def test_retry_after_seconds(value, expected):
    assert parse_retry_after(value) == expected


def test_retry_after_http_date():
    now = 1_800_000_000.0
    assert parse_retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30.0)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 0.0  # in the past: go now
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00", now=now) is None  # no zone: not an HTTP date


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    policy = RetryPolicy(backoff_initial=1.0, backoff_max=8.0)
    lows = [backoff_delay(policy, n, rng=lambda: 0.0) for n in range(1, 7)]
    highs = [backoff_delay(policy, n, rng=lambda: 1.0) for n in range(1, 7)]
    assert lows == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert highs == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert backoff_delay(policy, 10_000) <= 8.0  # no overflow


def _failing(failure: TransientFailure, calls: list[float]):
    def attempt():
        calls.append(time.monotonic())
        raise failure

    return attempt


def test_attempt_cap_raises_the_wrapped_error_with_the_count():
    calls: list[float] = []
    policy = RetryPolicy(max_attempts=3, backoff_initial=0.01, backoff_max=0.02)
    with pytest.raises(ValueError, match=r"boom \[gave up after 3 attempt\(s\).*attempts exhausted"):
        call_with_retries(
            _failing(TransientFailure(ValueError("boom"), reason="HTTP 503"), calls),
            policy=policy,
            log=log,
            what="GET /x",
        )
    assert len(calls) == 3


def test_wait_budget_stops_before_a_wait_that_would_overrun_it():
    """Retry-After 0.3 s, budget 0.5 s: one wait fits, the second would not -> 2 attempts, not 5."""
    calls: list[float] = []
    policy = RetryPolicy(max_attempts=5, max_total_wait=0.5, retry_after_cap=10)
    failure = TransientFailure(ValueError("throttled"), retry_after=0.3, reason="HTTP 429", status=429)
    with pytest.raises(ValueError, match="wait budget exhausted"):
        call_with_retries(_failing(failure, calls), policy=policy, log=log, what="GET /x")
    assert len(calls) == 2


def test_retry_after_is_capped():
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=2, retry_after_cap=0.05)
    failure = TransientFailure(ValueError("throttled"), retry_after=3600, reason="HTTP 429", status=429)
    with pytest.raises(ValueError):
        call_with_retries(
            _failing(failure, []),
            policy=policy,
            log=log,
            what="GET /x",
            on_wait=lambda seconds, _f: waits.append(seconds),
        )
    assert waits == [0.05]


def test_non_transient_errors_and_no_retry_mode_run_once():
    calls: list[float] = []

    def attempt():
        calls.append(0)
        raise KeyError("not transient")

    with pytest.raises(KeyError):
        call_with_retries(attempt, policy=RetryPolicy(), log=log, what="GET /x")
    with pytest.raises(ValueError, match="^write failed$"):
        no_retry(_failing(TransientFailure(ValueError("write failed")), calls))
    assert len(calls) == 2
