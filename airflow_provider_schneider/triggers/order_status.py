"""Wait for a Schneider order's status in the triggerer, without holding a worker slot.

The trigger is stateless: everything it needs is in ``serialize()`` (connection id and plain parameters,
never a token, with an absolute deadline), so a triggerer restart re-creates it and it simply polls again.
It does not call the API itself: it holds a watch on its order (:mod:`.polls`), and the poller of its
connection and country answers every trigger of the triggerer waiting on that country with the fewest calls,
on the event loop (:class:`~..hooks.schneider_async.SchneiderAsyncHook`: no thread per poll). Tokens come
from the hook's cache tiers (memory -> host file -> Variable when available -> endpoint), so a restarted
triggerer reuses the cached token instead of asking for a new one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from airflow.triggers.base import BaseTrigger, TaskFailedEvent, TaskSuccessEvent, TriggerEvent

from airflow_provider_schneider.config.settings import DEFAULT_CONN_ID
from airflow_provider_schneider.pulls.order_lookup import (
    ERROR,
    FAILURE,
    NOT_FOUND,
    SUCCESS,
    TIMEOUT,
    classify,
    normalize_statuses,
    order_status_of,
    outcome_message,
)


class SchneiderOrderStatusTrigger(BaseTrigger):
    """Poll Order Status until the order reaches a target or failure status, or the deadline passes.

    Yields exactly one event: ``{"status": success|failure|not_found|timeout|error, "message", "country",
    "order_number", "order_status", "order" (the order record, or None), "polls"}``; ``error`` events also
    carry ``permanent`` (a rejected credential or bad configuration, which no retry can fix).

    :param deadline: absolute end of the wait (epoch seconds), so a re-created trigger keeps the same end.
    :param poll_interval: seconds between polls while the order is pending.
    :param exponential_backoff: double the pending interval after each poll (up to ``max_poll_interval``).
    :param max_poll_interval: cap of every wait, including the backoff after errors.
    :param max_consecutive_errors: API failures in a row (after the hook's own retries) before giving up.
    :param end_from_trigger: end the task from the triggerer (success with the order as its XCom, or failure)
        instead of resuming it on a worker; the outcome's sentence is in the triggerer's log.
    """

    def __init__(
        self,
        *,
        country: str,
        order_number: str,
        target_statuses: Iterable[str],
        failure_statuses: Iterable[str] = (),
        schneider_conn_id: str = DEFAULT_CONN_ID,
        fail_if_not_found: bool = False,
        poll_interval: float = 60.0,
        exponential_backoff: bool = False,
        max_poll_interval: float = 600.0,
        max_consecutive_errors: int = 5,
        deadline: float | None = None,
        end_from_trigger: bool = False,
    ):
        super().__init__()
        self.schneider_conn_id = schneider_conn_id
        self.country = country
        self.order_number = order_number
        self.target_statuses = list(normalize_statuses(target_statuses))
        self.failure_statuses = list(normalize_statuses(failure_statuses))
        self.fail_if_not_found = bool(fail_if_not_found)
        self.poll_interval = max(float(poll_interval), 0.0)
        self.exponential_backoff = bool(exponential_backoff)
        self.max_poll_interval = max(float(max_poll_interval), self.poll_interval)
        self.max_consecutive_errors = max(int(max_consecutive_errors), 1)
        self.deadline = None if deadline is None else float(deadline)
        self.end_from_trigger = bool(end_from_trigger)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Connection id and plain values only: never a token or a secret (they would land in the DB)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "schneider_conn_id": self.schneider_conn_id,
                "country": self.country,
                "order_number": self.order_number,
                "target_statuses": list(self.target_statuses),
                "failure_statuses": list(self.failure_statuses),
                "fail_if_not_found": self.fail_if_not_found,
                "poll_interval": self.poll_interval,
                "exponential_backoff": self.exponential_backoff,
                "max_poll_interval": self.max_poll_interval,
                "max_consecutive_errors": self.max_consecutive_errors,
                "deadline": self.deadline,
                "end_from_trigger": self.end_from_trigger,
            },
        )

    def _event(
        self, status: str, message: str, order: Mapping[str, Any] | None, polls: int, **extra: Any
    ) -> TriggerEvent:
        if self.end_from_trigger:  # no worker resumes the task (a failure's reason: see _finish)
            if status == SUCCESS:  # Airflow logs the event (with the order) itself
                return TaskSuccessEvent(xcoms={"return_value": dict(order) if order else None})
            return TaskFailedEvent()
        return TriggerEvent(
            {
                "status": status,
                "message": message,
                "country": self.country,
                "order_number": self.order_number,
                "order_status": order_status_of(order) if order else None,
                "order": dict(order) if order else None,
                "polls": polls,
                **extra,
            }
        )

    async def _finish(
        self, status: str, message: str, order: Mapping[str, Any] | None, polls: int, **extra: Any
    ) -> TriggerEvent:
        """The last event; when no worker resumes the task, a failure's reason goes to the triggerer's log."""
        if self.end_from_trigger and status != SUCCESS:
            from airflow_provider_schneider.triggers.logs import say

            await say(self.log, logging.ERROR, "%s", message)
        return self._event(status, message, order, polls, **extra)

    def _backoff(self, exponent: int) -> float:
        return min(self.poll_interval * 2 ** min(exponent, 32), self.max_poll_interval)

    def _remaining(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.time()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_schneider.exceptions import AirflowFailException
        from airflow_provider_schneider.redaction import redact
        from airflow_provider_schneider.triggers.logs import say
        from airflow_provider_schneider.triggers.polls import watching

        polls = errors = 0
        last: dict[str, Any] | None = None
        said: str | None = None  # the pending status last logged at INFO
        async with watching(self.schneider_conn_id, self.country, self.order_number) as watch:
            while True:
                remaining = self._remaining()
                if remaining is not None and remaining <= 0:
                    status = order_status_of(last) if last else None
                    wanted = " or ".join(repr(s) for s in self.target_statuses)
                    yield await self._finish(
                        TIMEOUT,
                        f"Timed out waiting for order {self.order_number} ({self.country}) to reach {wanted}; "
                        f"last status seen: {status!r} after {polls} poll(s)",
                        last,
                        polls,
                    )
                    return
                try:
                    answer = await asyncio.wait_for(watch.next(), remaining)
                except asyncio.TimeoutError:
                    continue  # the deadline: said above
                if answer.error is not None:
                    exc = answer.error
                    errors += 1
                    permanent = isinstance(exc, AirflowFailException)
                    text = redact(str(exc))
                    if permanent or errors >= self.max_consecutive_errors:
                        yield await self._finish(
                            ERROR,
                            f"Gave up polling order {self.order_number} ({self.country}) after {errors} failed "
                            f"poll(s): {type(exc).__name__}: {text}",
                            last,
                            polls,
                            permanent=permanent,
                        )
                        return
                    delay = self._backoff(errors)
                    level = logging.WARNING if errors == 1 else logging.DEBUG  # the poller logs each failure once
                    what = "Order status poll failed (%d in a row), next in %.1fs: %s"
                    await say(self.log, level, what, errors, delay, text)
                else:
                    order = answer.order
                    errors = 0
                    polls += 1
                    last = order or last
                    outcome = classify(order, self.target_statuses, self.failure_statuses)
                    message = outcome_message(
                        outcome, self.country, self.order_number, order_status_of(order or {}), self.target_statuses
                    )
                    if outcome in (SUCCESS, FAILURE) or (outcome == NOT_FOUND and self.fail_if_not_found):
                        yield await self._finish(outcome, message, order, polls)
                        return
                    delay = self._backoff(polls - 1 if self.exponential_backoff else 0)
                    # A poll is said at INFO only when the status moved since the last one (hundreds of triggers
                    # answered by one round must not each write a line at once: see .logs), else at DEBUG.
                    status = order_status_of(order or {})
                    level = logging.INFO if polls > 1 and status != said else logging.DEBUG
                    said = status
                    await say(self.log, level, "%s (poll %d); next poll in %.1fs", message, polls, delay)
                watch.poll_in(delay if remaining is None else min(delay, max(0.0, remaining)))
