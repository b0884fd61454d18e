"""Run a DAG when an order reaches a status: an event trigger for Airflow's ``AssetWatcher``.

The trigger watches a country's orders through the same coalesced poller as the order sensors of the
triggerer (:mod:`.polls`: one listing answers every watcher of the country) and fires one event per order
that *reaches* one of ``target_statuses`` while it watches: an order already in such a status when the
watch starts is remembered, not announced (a triggerer restart would otherwise announce it again), unless
``fire_on_start`` asks for it. The event carries the order record, never a token.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_schneider.config.settings import DEFAULT_CONN_ID
from airflow_provider_schneider.pulls.order_lookup import normalize_statuses, order_status_of


class SchneiderOrderStatusEventTrigger(BaseEventTrigger):
    """Fire an event each time an order of ``country`` reaches one of ``target_statuses``.

    :param order_numbers: only these orders (default: every order of the country).
    :param order_number_prefix: only orders whose number starts with it (e.g. a branch prefix).
    :param poll_interval: seconds between looks at the country's orders.
    :param max_poll_interval: cap of the back-off after failed polls.
    :param fire_on_start: also fire for orders already in a target status at the first look.

    Event payload: ``{"country", "order_number", "order_status", "previous_status", "order"}``.
    """

    def __init__(
        self,
        *,
        country: str,
        target_statuses: Iterable[str],
        order_numbers: Iterable[str] | None = None,
        order_number_prefix: str | None = None,
        schneider_conn_id: str = DEFAULT_CONN_ID,
        poll_interval: float = 60.0,
        max_poll_interval: float = 600.0,
        fire_on_start: bool = False,
    ):
        super().__init__()
        self.schneider_conn_id = schneider_conn_id
        self.country = country.strip().upper()
        self.target_statuses = list(normalize_statuses(target_statuses))
        if not self.target_statuses:
            raise ValueError("SchneiderOrderStatusEventTrigger: target_statuses is empty")
        self.order_numbers = sorted({str(n).strip() for n in order_numbers or () if str(n).strip()}) or None
        self.order_number_prefix = (order_number_prefix or "").strip() or None
        self.poll_interval = max(float(poll_interval), 1.0)
        self.max_poll_interval = max(float(max_poll_interval), self.poll_interval)
        self.fire_on_start = bool(fire_on_start)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Plain values only (they identify the watcher: equal arguments, one trigger)."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "schneider_conn_id": self.schneider_conn_id,
                "country": self.country,
                "target_statuses": list(self.target_statuses),
                "order_numbers": self.order_numbers,
                "order_number_prefix": self.order_number_prefix,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "fire_on_start": self.fire_on_start,
            },
        )

    def _wanted(self, number: str) -> bool:
        if self.order_numbers is not None and number.casefold() not in {n.casefold() for n in self.order_numbers}:
            return False
        return self.order_number_prefix is None or number.casefold().startswith(self.order_number_prefix.casefold())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_schneider.redaction import redact
        from airflow_provider_schneider.triggers.logs import say
        from airflow_provider_schneider.triggers.polls import watching

        targets = {s.casefold() for s in self.target_statuses}
        seen: dict[str, str] | None = None  # order key -> status at the previous look
        errors = 0
        async with watching(self.schneider_conn_id, self.country, None) as watch:
            while True:
                answer = await watch.next()
                if answer.error is not None or answer.orders is None:
                    errors += 1
                    delay = min(self.poll_interval * 2 ** min(errors, 16), self.max_poll_interval)
                    await say(
                        self.log,
                        logging.WARNING,
                        "Order Status of %s could not be read (%d in a row), next look in %.0fs: %s",
                        self.country,
                        errors,
                        delay,
                        redact(str(answer.error)),
                    )
                    watch.poll_in(delay)
                    continue
                errors = 0
                current: dict[str, str] = {}
                for key, order in answer.orders.items():
                    number = str(order.get("orderNumber", "")).strip()
                    if not number or not self._wanted(number):
                        continue
                    status = str(order_status_of(order) or "")
                    current[key] = status
                    before = None if seen is None else seen.get(key)
                    reached = status.casefold() in targets
                    was_there = before is not None and before.casefold() in targets
                    first_look = seen is None and not self.fire_on_start
                    if reached and not was_there and not first_look:
                        yield TriggerEvent(
                            {
                                "country": self.country,
                                "order_number": number,
                                "order_status": status,
                                "previous_status": before,
                                "order": dict(order),
                            }
                        )
                seen = {**(seen or {}), **current}
                watch.poll_in(self.poll_interval)
