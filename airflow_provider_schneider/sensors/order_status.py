"""SchneiderOrderStatusSensor: wait until an order reaches a status, poking or deferred to the triggerer."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_schneider.config.settings import DEFAULT_CONN_ID
from airflow_provider_schneider.exceptions import (
    AirflowSensorTimeout,
    SchneiderConfigError,
    SchneiderError,
    SchneiderOrderStatusFailed,
)
from airflow_provider_schneider.pulls.order_lookup import (
    ERROR,
    FAILURE,
    NOT_FOUND,
    PENDING,
    SUCCESS,
    TIMEOUT,
    classify,
    find_order,
    normalize_statuses,
    order_status_of,
    outcome_message,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_schneider.hooks.schneider import SchneiderHook
    from airflow_provider_schneider.triggers.order_status import SchneiderOrderStatusTrigger

# Extra time the task-level deferral timeout grants beyond the trigger's own deadline, so the trigger's
# timeout event (which names the last status seen) normally arrives before Airflow's generic one.
DEFER_TIMEOUT_GRACE = 120.0


def _as_field(value: str | Iterable[str] | None) -> str | list[str] | None:
    return value if value is None or isinstance(value, str) else list(value)


class SchneiderOrderStatusSensor(BaseSensorOperator):
    """Wait until order ``order_number`` of ``country`` reaches one of ``target_statuses``.

    Looks the order up with the Order Status API filter ``order-number`` and an exact match on
    ``orderNumber``; statuses compare case-insensitively. Returns (XCom) the order record as last seen.

    :param country: ISO 3166 alpha-2 code (templated).
    :param order_number: the full order number (templated).
    :param target_statuses: one status or several, e.g. ``"Shipped"`` or ``["Shipped", "Invoiced"]``.
    :param failure_statuses: statuses that mean the target will never come (default ``Cancelled``):
        the task fails at once with :class:`SchneiderOrderStatusFailed`, without retries.
    :param fail_if_not_found: fail at once when the API does not know the order; by default keep waiting
        (an order may show up in Order Status some time after it was placed).
    :param deferrable: hand the wait to the triggerer (:class:`SchneiderOrderStatusTrigger`) instead of
        holding a worker slot; ``timeout``, ``poke_interval``, ``exponential_backoff`` and ``max_wait``
        keep their meaning. Default: Airflow's ``[operators] default_deferrable`` (read when the sensor is
        built, as the official providers do).
    :param start_from_trigger: deferrable mode: the wait starts in the triggerer, with no worker run at all
        before it (Airflow's ``start_from_trigger``). The trigger's arguments are fixed when the DAG is
        parsed, so ``country``, ``order_number`` and the statuses must be literal values, not templates,
        and the task cannot be mapped; the wait ends ``timeout`` seconds after it started (Airflow's trigger
        timeout).
    :param end_from_trigger: deferrable mode: the triggerer ends the task (success, with the order as its
        XCom, or failure) without resuming it on a worker; the reason of a failure is in the triggerer's log.
    :param max_consecutive_errors: deferrable mode: API failures in a row (after the hook's retries) the
        trigger tolerates, backing off, before the task fails.
    """

    template_fields: Sequence[str] = ("country", "order_number", "target_statuses", "failure_statuses")
    ui_color = "#3dcd58"

    def __init__(
        self,
        *,
        country: str,
        order_number: str,
        target_statuses: str | Iterable[str],
        failure_statuses: str | Iterable[str] | None = ("Cancelled",),
        schneider_conn_id: str = DEFAULT_CONN_ID,
        fail_if_not_found: bool = False,
        deferrable: bool | None = None,
        max_consecutive_errors: int = 5,
        start_from_trigger: bool = False,
        end_from_trigger: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.country = country
        self.order_number = order_number
        # Kept as given (strings may be templates); normalized after rendering, in _targets_and_failures.
        self.target_statuses = _as_field(target_statuses)
        self.failure_statuses = _as_field(failure_statuses)
        self.schneider_conn_id = schneider_conn_id
        self.fail_if_not_found = fail_if_not_found
        if deferrable is None:
            from airflow.configuration import conf

            deferrable = conf.getboolean("operators", "default_deferrable", fallback=False)
        self.deferrable = bool(deferrable or start_from_trigger)
        self.max_consecutive_errors = max_consecutive_errors
        self.end_from_trigger = bool(end_from_trigger)
        if start_from_trigger:
            self._start_in_the_triggerer()

    def _start_in_the_triggerer(self) -> None:
        """Airflow's ``start_from_trigger``: the trigger's arguments, fixed now (they cannot be templates)."""
        from airflow.triggers.base import StartTriggerArgs

        fields = {name: getattr(self, name) for name in self.template_fields}
        templated = sorted(name for name, value in fields.items() if "{{" in str(value) or "{%" in str(value))
        if templated:
            raise SchneiderConfigError(
                f"{self.task_id}: start_from_trigger=True needs literal values, but {templated} are templates"
            )
        trigger = self.build_trigger()
        trigger.deadline = None  # fixed at parse time it would be long past: Airflow's trigger timeout ends it
        _, kwargs = trigger.serialize()
        self.start_trigger_args = StartTriggerArgs(
            trigger_cls=f"{type(trigger).__module__}.{type(trigger).__qualname__}",
            trigger_kwargs=kwargs,
            next_method="execute_complete",
            next_kwargs=None,
            timeout=timedelta(seconds=float(self.timeout)),
        )
        self.start_from_trigger = True

    # -- helpers ------------------------------------------------------------------------------------------

    def _targets_and_failures(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Rendered statuses, validated: at least one target, and no status both target and failure."""
        targets = normalize_statuses(self.target_statuses)
        failures = normalize_statuses(self.failure_statuses)
        if not targets:
            raise SchneiderConfigError(f"{self.task_id}: target_statuses is empty")
        both = {s.casefold() for s in targets} & {s.casefold() for s in failures}
        if both:
            raise SchneiderConfigError(f"{self.task_id}: status(es) {sorted(both)} are both target and failure")
        if not str(self.country or "").strip() or not str(self.order_number or "").strip():
            raise SchneiderConfigError(f"{self.task_id}: country and order_number are required")
        return targets, failures

    @cached_property
    def hook(self) -> SchneiderHook:
        """One hook for all the pokes of a task run (one session, one token); closed when the run ends."""
        from airflow_provider_schneider.hooks.schneider import SchneiderHook

        return SchneiderHook(self.schneider_conn_id)

    def close_hook(self) -> None:
        """Close the cached hook, if any; the next poke opens a new one."""
        hook = self.__dict__.pop("hook", None)
        if hook is not None:
            hook.close()

    def on_kill(self) -> None:
        self.close_hook()
        super().on_kill()

    # -- poke mode ----------------------------------------------------------------------------------------

    def poke(self, context: Context) -> bool | PokeReturnValue:
        targets, failures = self._targets_and_failures()
        country, number = str(self.country).strip(), str(self.order_number).strip()
        order = find_order(self.hook, country, number, self.hook.settings.page_size)
        outcome = classify(order, targets, failures)
        message = outcome_message(outcome, country, number, order_status_of(order or {}), targets)
        if outcome == SUCCESS:
            self.log.info("%s", message)
            return PokeReturnValue(is_done=True, xcom_value=order)
        if outcome == FAILURE or (outcome == NOT_FOUND and self.fail_if_not_found):
            raise SchneiderOrderStatusFailed(message)
        self.log.info("%s", message)
        return False

    # -- deferrable mode ----------------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        try:
            if not self.deferrable:
                return super().execute(context)
            done = self.poke(context)  # one look first: no trip to the triggerer if the order is already there
            if done:
                return done.xcom_value if isinstance(done, PokeReturnValue) else None
            self.defer(
                trigger=self.build_trigger(),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout + max(DEFER_TIMEOUT_GRACE, self.poke_interval)),
            )
        finally:  # done, failed, timed out or deferred: this run pokes no more
            self.close_hook()

    def build_trigger(self, deadline: float | None = None) -> SchneiderOrderStatusTrigger:
        """The trigger for this wait; ``deadline`` defaults to now + ``timeout``."""
        from airflow_provider_schneider.triggers.order_status import SchneiderOrderStatusTrigger

        targets, failures = self._targets_and_failures()
        max_wait = self.max_wait.total_seconds() if self.max_wait else max(600.0, float(self.poke_interval))
        return SchneiderOrderStatusTrigger(
            schneider_conn_id=self.schneider_conn_id,
            country=str(self.country).strip(),
            order_number=str(self.order_number).strip(),
            target_statuses=targets,
            failure_statuses=failures,
            fail_if_not_found=self.fail_if_not_found,
            poll_interval=float(self.poke_interval),
            exponential_backoff=bool(self.exponential_backoff),
            max_poll_interval=max_wait,
            max_consecutive_errors=self.max_consecutive_errors,
            deadline=time.time() + float(self.timeout) if deadline is None else deadline,
            end_from_trigger=self.end_from_trigger,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: return the order on success, otherwise fail with the trigger's reason."""
        if not isinstance(event, dict) or "status" not in event:
            raise SchneiderError(f"{self.task_id}: the order status trigger returned no usable event: {event!r}")
        status, message = event["status"], str(event.get("message", ""))
        if status == SUCCESS:
            self.log.info("%s", message)
            return event.get("order")
        if status in (FAILURE, NOT_FOUND):
            raise SchneiderOrderStatusFailed(message)
        if status == TIMEOUT:
            raise AirflowSensorTimeout(message)
        if status == ERROR and event.get("permanent"):
            raise SchneiderOrderStatusFailed(message)
        if status in (ERROR, PENDING):
            raise SchneiderError(message or f"{self.task_id}: order status trigger ended with {status!r}")
        raise SchneiderError(f"{self.task_id}: unknown order status trigger event {status!r}: {message}")
