"""Order Status v1.1 (and its older variant): filtering and the last-page-again pagination trap."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable

from . import data
from .drift import drifted_order
from .errors import invalid_field
from .routing import Request, Response
from .state import EmulatorState

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_PURCHASER = re.compile(r"^(\d{5}|\d{10})$")
DEFAULT_PAGE_SIZE = 10

Builder = Callable[[int], dict[str, object] | None]


def _page_size(state: EmulatorState, req: Request, maximum: int) -> int:
    size = req.integer("page-size", DEFAULT_PAGE_SIZE, minimum=1)
    if size > maximum:
        if state.config.page_size_over_max == "clamp":
            return maximum
        raise invalid_field("page-size", size, f"must be <= {maximum}")
    return size


def _country(req: Request) -> str:
    country = req.params["country"]
    if not _COUNTRY.match(country):
        raise invalid_field("country", country, "must be an ISO 3166 alpha-2 code in upper case, e.g. FR")
    return country


def _filter(state: EmulatorState, req: Request, country: str) -> tuple[range, Builder]:
    """Validate the filters; return the candidate indexes and index -> order (None when filtered out).

    The order-number prefix narrows the index range directly; status and purchaser are tested on the
    cheap hashed fields before a whole record is built.
    """
    total = state.config.orders_per_country
    prefix = req.first("order-number")
    if prefix is not None and len(prefix) < 3:
        raise invalid_field("order-number", prefix, "needs at least 3 characters")
    wanted_status = req.first("order-status")
    if wanted_status is not None:
        allowed = data.order_statuses(country)
        if wanted_status.lower() not in {s.lower() for s in allowed}:
            raise invalid_field("order-status", wanted_status, f"must be one of {', '.join(allowed)}")
    purchaser = req.first("purchaser-id")
    if purchaser is not None and not _PURCHASER.match(purchaser):
        raise invalid_field("purchaser-id", purchaser, "must have 5 or 10 digits")
    seed = state.config.seed
    overrides = state.overrides.for_country(country)
    wanted = wanted_status.lower() if wanted_status is not None else None
    pool = data.purchaser_ids(seed, country)
    purchasers = {p for p in pool if int(p) == int(purchaser)} if purchaser is not None else None
    if purchasers == set():  # an id outside the pool matches nothing
        total = 0
    indexes = data.order_indexes(country, prefix, total) if prefix is not None else range(total)
    removed = set(state.config.removed_orders)
    drift_day = state.today() if state.config.drift == "daily" else None

    def build(index: int) -> dict[str, object] | None:
        number = data.order_number(country, index)
        if number in removed:
            return None
        if wanted is not None or purchasers is not None:
            status, purchaser_id = data.order_status_and_purchaser(seed, country, index)
            if wanted is not None and overrides.get(number, status).lower() != wanted:
                return None
            if purchasers is not None and purchaser_id not in purchasers:
                return None
        record = data.order(seed, country, index)
        if number in overrides:
            record["orderStatus"] = overrides[number]
        return record if drift_day is None else drifted_order(record, drift_day, index)

    return indexes, build


def _scan(build: Builder, indexes: Iterable[int], page: int, size: int) -> Response:
    """One pass over the candidates keeping only the requested page and the running last page."""
    count = 0
    wanted: list[dict[str, object]] = []
    tail: list[dict[str, object]] = []
    start = (page - 1) * size
    for index in indexes:
        record = build(index)
        if record is None:
            continue
        if count % size == 0:
            tail = []
        tail.append(record)
        if start <= count < start + size:
            wanted.append(record)
        count += 1
    pages = math.ceil(count / size)
    items = wanted if page <= pages else tail
    return _answer(items, count, min(page, max(pages, 1)), pages)


def _answer(items: list[dict[str, object]], count: int, page: int, pages: int) -> Response:
    pagination = {"totalNumberOfRecords": count, "pageNumber": page, "totalNumberOfPages": pages}
    return Response(200, {"orderList": items, "pagination": pagination})


def _list_orders(state: EmulatorState, req: Request, max_page_size: int) -> Response:
    country = _country(req)
    indexes, build = _filter(state, req, country)
    page = req.integer("page", 1, minimum=1)
    size = _page_size(state, req, max_page_size)
    if req.first("order-status") is not None or req.first("purchaser-id") is not None or state.config.removed_orders:
        return _scan(build, indexes, page, size)
    # every candidate matches: slice the page directly, O(page size) even for a million orders
    count = len(indexes)
    pages = math.ceil(count / size)
    page = min(page, max(pages, 1))  # the trap: beyond the end, the last page again
    start = (page - 1) * size
    items = [r for r in map(build, indexes[start : start + size]) if r is not None]
    return _answer(items, count, page, pages)


def list_orders_v11(state: EmulatorState, req: Request) -> Response:
    """``GET /v1/supply-chain/partner-order-status/orders/{country}`` (page-size max 100)."""
    return _list_orders(state, req, 100)


def list_orders_legacy(state: EmulatorState, req: Request) -> Response:
    """``GET /v1/supply-chain/order-status/orders/{country}``, the older variant (page-size max 200)."""
    return _list_orders(state, req, 200)
