"""The order trigger as it was before the coalesced polls (provider 0.1, issue 20's baseline): each trigger
polls its own order with the blocking hook in a thread of the triggerer's default executor. Kept only so
``benchmarks/deferred_sensors.py`` can measure the baseline in the same run; never used by the provider."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_schneider.pulls.order_lookup import (
    ERROR,
    FAILURE,
    NOT_FOUND,
    SUCCESS,
    TIMEOUT,
    classify,
    find_order,
    order_status_of,
    outcome_message,
)
from airflow_provider_schneider.triggers.order_status import SchneiderOrderStatusTrigger


class ThreadPoolOrderStatusTrigger(SchneiderOrderStatusTrigger):
    """Same arguments and events as :class:`SchneiderOrderStatusTrigger`; one blocking lookup per poll."""

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_schneider.exceptions import AirflowFailException
        from airflow_provider_schneider.hooks.schneider import SchneiderHook
        from airflow_provider_schneider.redaction import redact

        hook = SchneiderHook(self.schneider_conn_id)
        polls = errors = 0
        last: dict[str, Any] | None = None
        try:
            while True:
                remaining = self._remaining()
                if remaining is not None and remaining <= 0:
                    status = order_status_of(last) if last else None
                    wanted = " or ".join(repr(s) for s in self.target_statuses)
                    yield self._event(
                        TIMEOUT,
                        f"Timed out waiting for order {self.order_number} ({self.country}) to reach {wanted}; "
                        f"last status seen: {status!r} after {polls} poll(s)",
                        last,
                        polls,
                    )
                    return
                try:
                    order = await asyncio.to_thread(
                        find_order, hook, self.country, self.order_number, hook.settings.page_size
                    )
                except Exception as exc:  # noqa: BLE001 - every failure becomes an event or a backoff
                    errors += 1
                    permanent = isinstance(exc, AirflowFailException)
                    text = redact(str(exc), hook.settings.secrets if "settings" in hook.__dict__ else ())
                    if permanent or errors >= self.max_consecutive_errors:
                        yield self._event(
                            ERROR,
                            f"Gave up polling order {self.order_number} ({self.country}) after {errors} failed "
                            f"poll(s): {type(exc).__name__}: {text}",
                            last,
                            polls,
                            permanent=permanent,
                        )
                        return
                    delay = self._backoff(errors)
                    self.log.warning("Order status poll failed (%d in a row), next in %.1fs: %s", errors, delay, text)
                else:
                    errors = 0
                    polls += 1
                    last = order or last
                    outcome = classify(order, self.target_statuses, self.failure_statuses)
                    message = outcome_message(
                        outcome, self.country, self.order_number, order_status_of(order or {}), self.target_statuses
                    )
                    if outcome in (SUCCESS, FAILURE) or (outcome == NOT_FOUND and self.fail_if_not_found):
                        yield self._event(outcome, message, order, polls)
                        return
                    delay = self._backoff(polls - 1 if self.exponential_backoff else 0)
                    self.log.info("%s (poll %d); next poll in %.1fs", message, polls, delay)
                remaining = self._remaining()
                await asyncio.sleep(max(0.0, delay if remaining is None else min(delay, remaining)))
        finally:
            hook.close()
