"""Looking an order up in Order Status and judging its status: shared by the sensor (poke mode) and the
trigger (deferred mode).

Where the orders are (path, record field, page size) comes from the resource catalog's ``order_status``
entry. Stdlib only at import time: the sensor's module imports this while a DAG file is parsed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from airflow_provider_schneider.resources import get_resource

ORDER_RESOURCE = "order_status"

# Outcomes of one look at the order (also the ``status`` of the trigger's event, plus timeout/error).
SUCCESS = "success"
FAILURE = "failure"
PENDING = "pending"
NOT_FOUND = "not_found"
TIMEOUT = "timeout"
ERROR = "error"


def normalize_statuses(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """One status or several, as a tuple of non-empty stripped strings (order kept, duplicates dropped)."""
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(str(item).strip() for item in items if str(item).strip()))


def order_status_of(order: Mapping[str, Any]) -> str | None:
    """The order's status; ``orderStatus`` per the API, ``status`` accepted from other gateways."""
    value = order.get("orderStatus", order.get("status"))
    return None if value is None else str(value).strip()


class OrderPages(Protocol):
    """What a lookup needs: a paginated GET's records (the hook has it)."""

    def iter_records(
        self, path: str, *, records_field: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> Iterator[Any]: ...


def find_order(
    source: OrderPages, country: str, order_number: str, page_size: int | None = None
) -> dict[str, Any] | None:
    """The order whose ``orderNumber`` equals ``order_number`` (the API filter is a prefix match), or None.

    Blocking (``requests``); the trigger runs it in a thread.
    """
    resource = get_resource(ORDER_RESOURCE)
    assert resource.records_field is not None
    path = resource.render_path({"country": country})
    wanted = order_number.strip().casefold()
    records = source.iter_records(
        path,
        records_field=resource.records_field,
        params={"order-number": order_number.strip()},
        page_size=resource.page_size(page_size) if page_size else None,
    )
    for record in records:
        if isinstance(record, Mapping) and str(record.get("orderNumber", "")).strip().casefold() == wanted:
            return dict(record)
    return None


def classify(order: Mapping[str, Any] | None, targets: Iterable[str], failures: Iterable[str]) -> str:
    """SUCCESS, FAILURE, PENDING or NOT_FOUND; statuses compare case-insensitively."""
    if order is None:
        return NOT_FOUND
    status = (order_status_of(order) or "").casefold()
    if status in {s.casefold() for s in targets}:
        return SUCCESS
    if status in {s.casefold() for s in failures}:
        return FAILURE
    return PENDING


def outcome_message(outcome: str, country: str, order_number: str, status: str | None, targets: Iterable[str]) -> str:
    """The human sentence for an outcome, shared by the sensor's poke and the trigger's event."""
    wanted = " or ".join(repr(s) for s in targets)
    if outcome == SUCCESS:
        return f"Order {order_number} ({country}) reached status {status!r}"
    if outcome == FAILURE:
        return f"Order {order_number} ({country}) has status {status!r}, a failure status: it will never reach {wanted}"
    if outcome == NOT_FOUND:
        return f"Order {order_number} ({country}) was not found by the Order Status API"
    return f"Order {order_number} ({country}) has status {status!r}; waiting for {wanted}"
