"""Retry policy as a value: which failures are transient, how long to wait, when to give up.

Shared by the token endpoint and API calls so both honour ``Retry-After`` and the same budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

import requests
import tenacity

from airflow_provider_schneider.settings import RetryPolicy

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})

#: Transport failures worth another try: refused/reset connections, timeouts, truncated bodies.
TRANSIENT_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class TransientFailure(Exception):
    """Raised inside an attempt to ask for another one; carries the error to raise if none is left."""

    def __init__(self, error: Exception, *, retry_after: float | None = None, reason: str = ""):
        super().__init__(reason or str(error))
        self.error = error
        self.retry_after = retry_after
        self.reason = reason or type(error).__name__


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (``"120"``, ``"1.5"``) or an HTTP date; ``None`` when absent or garbage."""
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
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


class _WaitRetryAfterOrBackoff(tenacity.wait.wait_base):
    """Exponential backoff with jitter, unless the server said how long to wait (then that, capped)."""

    def __init__(self, policy: RetryPolicy):
        self.policy = policy
        self.backoff = tenacity.wait_exponential_jitter(
            initial=policy.backoff_initial, max=policy.backoff_max, jitter=policy.backoff_initial
        )

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TransientFailure) and exc.retry_after is not None:
            return min(exc.retry_after, self.policy.retry_after_cap)
        return self.backoff(retry_state)


def call_with_retries(
    attempt: Callable[[], T],
    *,
    policy: RetryPolicy,
    log: logging.Logger,
    describe: str,
    on_wait: Callable[[float], None] | None = None,
) -> T:
    """Run ``attempt`` until it returns, raises a non-transient error, or the budget is spent.

    ``attempt`` signals a transient failure by raising :class:`TransientFailure`; when attempts or the total
    wait budget run out, the wrapped error is raised (not a tenacity ``RetryError``), so callers see one
    exception type whatever happened.
    """

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        reason = exc.reason if isinstance(exc, TransientFailure) else repr(exc)
        wait = state.next_action.sleep if state.next_action else 0.0
        if on_wait is not None:
            on_wait(wait)
        log.warning(
            "Retrying %s in %.1fs (attempt %d of %d failed: %s)",
            describe,
            wait,
            state.attempt_number,
            policy.max_attempts,
            reason,
        )

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.max_attempts) | tenacity.stop_before_delay(policy.max_total_wait),
        wait=_WaitRetryAfterOrBackoff(policy),
        retry=tenacity.retry_if_exception_type(TransientFailure),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except TransientFailure as exhausted:
        raise exhausted.error from None


def no_retry(attempt: Callable[[], T]) -> T:
    """Run once; a transient failure surfaces as its wrapped error (for writes that must not be replayed)."""
    try:
        return attempt()
    except TransientFailure as failure:
        raise failure.error from None


def describe_transport_error(exc: BaseException) -> str:
    """A short, secret-free name for a transport failure (the requests message may contain the URL)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "read timeout"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection broken mid-body (truncated response)"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed or was reset"
    return type(exc).__name__
