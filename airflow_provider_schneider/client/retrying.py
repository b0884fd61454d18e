"""Retry policy as a value: which failures are transient, how long to wait, when to give up.

Shared by the token endpoint and API calls so both honour ``Retry-After`` and the same budget. The budget
is two tenacity stops composed: ``stop_after_attempt(max_attempts) | wait budget``, the latter firing when
the next sleep would push the total time spent *sleeping* past ``max_total_wait``. A retry whose wait would
overrun the budget is not attempted: the call fails at once with the last error, so a dead gateway ends a
task after a known time instead of hanging it. Back-off sleeps end early when the pull is cancelled.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import tenacity

from airflow_provider_schneider.client.cancellation import cancellable_sleep
from airflow_provider_schneider.config.settings import RetryPolicy

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class TransientFailure(Exception):
    """Raised inside an attempt to ask for another one; carries the error to raise if none is left.

    ``status`` is the HTTP status that caused it (``None`` for transport failures); ``retry_after`` is the
    server's ``Retry-After`` in seconds, when it sent one; ``throttled`` means the server asked us to slow
    down (429, a ``Retry-After``, or a gateway's rate-limit code whatever the status, e.g. a 500 spike arrest).
    """

    def __init__(
        self,
        error: Exception,
        *,
        retry_after: float | None = None,
        reason: str = "",
        status: int | None = None,
        throttled: bool = False,
    ):
        super().__init__(reason or str(error))
        self.error = error
        self.retry_after = retry_after
        self.reason = reason or type(error).__name__
        self.status = status
        self.throttled = throttled or status == 429 or retry_after is not None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (``"120"``, ``"1.5"``) or an HTTP date; ``None`` when absent or garbage.

    A date in the past means "now" (0 s); negative or non-finite numbers are ignored.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive result means the zone was missing
            return None
        return max(0.0, when.timestamp() - (time.time() if now is None else now))
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        return None
    return seconds


def backoff_delay(policy: RetryPolicy, attempt_number: int, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with "equal jitter": half the step is fixed, half random.

    Step ``n`` is ``min(backoff_max, backoff_initial * 2 ** (n - 1))``; the wait is uniform in
    ``[step / 2, step]``, so retries keep growing yet a stampede of clients does not retry in lockstep.
    """
    try:
        step = policy.backoff_initial * 2.0 ** (attempt_number - 1)
    except OverflowError:
        step = policy.backoff_max
    step = min(step, policy.backoff_max)
    return step / 2 + rng() * step / 2


class wait_retry_after_or_backoff(tenacity.wait.wait_base):
    """Jittered exponential backoff, unless the server said how long to wait (then that, capped)."""

    def __init__(self, policy: RetryPolicy):
        self.policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TransientFailure) and exc.retry_after is not None:
            return min(exc.retry_after, self.policy.retry_after_cap)
        return backoff_delay(self.policy, retry_state.attempt_number)


class stop_when_wait_budget_spent(tenacity.stop.stop_base):
    """Stop when the next sleep would push the total time slept past ``max_total_wait``."""

    def __init__(self, max_total_wait: float):
        self.max_total_wait = max_total_wait

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return retry_state.idle_for + (retry_state.upcoming_sleep or 0.0) > self.max_total_wait


def _note_budget(error: Exception, attempts: int, slept: float, why: str) -> Exception:
    """Append how the retry budget was spent to the error's message (shown in the task log and UI)."""
    if error.args and isinstance(error.args[0], str):
        error.args = (f"{error.args[0]} [gave up after {attempts} attempt(s), {slept:.1f}s of waiting: {why}]",)
    return error


def _announce_retries(
    policy: RetryPolicy, log: logging.Logger, what: str, on_wait: Callable[[float, TransientFailure], None] | None
) -> Callable[[tenacity.RetryCallState], None]:
    """tenacity's ``before_sleep``: say why and how long, and tell ``on_wait`` (a throttle pauses the client)."""

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        if isinstance(exc, TransientFailure):
            reason = exc.reason
            if exc.retry_after is not None:
                reason += f", Retry-After {exc.retry_after:.1f}s" + (
                    f" capped to {policy.retry_after_cap:g}s" if exc.retry_after > policy.retry_after_cap else ""
                )
            if on_wait is not None:
                on_wait(wait, exc)
        else:
            reason = type(exc).__name__
        log.warning(
            "Retrying %s in %.2fs (attempt %d of %d failed: %s)",
            what,
            wait,
            state.attempt_number,
            policy.max_attempts,
            reason,
        )

    return before_sleep


def _retry_options(policy: RetryPolicy) -> dict[str, Any]:
    return {
        "stop": tenacity.stop_after_attempt(policy.max_attempts) | stop_when_wait_budget_spent(policy.max_total_wait),
        "wait": wait_retry_after_or_backoff(policy),
        "retry": tenacity.retry_if_exception_type(TransientFailure),
        "reraise": True,
    }


def _exhausted(
    exhausted: TransientFailure, statistics: dict[str, Any], policy: RetryPolicy, log: logging.Logger, what: str
) -> Exception:
    attempts = int(statistics.get("attempt_number", 1))
    slept = float(statistics.get("idle_for", 0.0))
    why = "attempts exhausted" if attempts >= policy.max_attempts else "retry wait budget exhausted"
    log.error("Giving up on %s after %d attempt(s) (%s): %s", what, attempts, why, exhausted.reason)
    return _note_budget(exhausted.error, attempts, slept, f"{why}, last failure {exhausted.reason}")


def call_with_retries(
    attempt: Callable[[], T],
    *,
    policy: RetryPolicy,
    log: logging.Logger,
    what: str,
    on_wait: Callable[[float, TransientFailure], None] | None = None,
) -> T:
    """Run ``attempt`` until it returns, raises a non-transient error, or the budget is spent.

    ``attempt`` signals a transient failure by raising :class:`TransientFailure`; when the budget runs out,
    the wrapped error is raised (never a tenacity ``RetryError``), its message saying how many attempts
    were made, so callers see one exception type whatever happened.
    """
    try:  # the common case, an answer at the first attempt, costs no retry machinery
        return attempt()
    except TransientFailure as failure:
        first: list[TransientFailure] = [failure]

    def replayed() -> T:
        """Attempt 1 is the failure just seen (not sent again); the next ones are real."""
        if first:
            raise first.pop()
        return attempt()

    retrying = tenacity.Retrying(
        before_sleep=_announce_retries(policy, log, what, on_wait), sleep=cancellable_sleep, **_retry_options(policy)
    )
    try:
        return retrying(replayed)
    except TransientFailure as exhausted:
        error = _exhausted(exhausted, retrying.statistics, policy, log, what)
    raise error from None


async def async_call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    log: logging.Logger,
    what: str,
    on_wait: Callable[[float, TransientFailure], None] | None = None,
) -> T:
    """:func:`call_with_retries` for a coroutine: the same policy, budget, logs and errors; waits are
    ``asyncio.sleep`` (cancelled with the task that awaits them). ``attempt`` must be an ``async def``
    function: tenacity awaits only what it recognises as a coroutine function."""
    retrying = tenacity.AsyncRetrying(
        before_sleep=_announce_retries(policy, log, what, on_wait), **_retry_options(policy)
    )
    try:
        return await retrying(attempt)
    except TransientFailure as exhausted:
        error = _exhausted(exhausted, retrying.statistics, policy, log, what)
    raise error from None


def no_retry(attempt: Callable[[], T]) -> T:
    """Run once; a transient failure surfaces as its wrapped error (for writes that must not be replayed)."""
    try:
        return attempt()
    except TransientFailure as failure:
        error = failure.error
    raise error from None
