"""Net Price v1.0, Distributor Quote v1.0 and the mySE Order Entry FR v2 write API.

Net Price and Order Entry report business errors inside a 200 (``errorMessages``), as Schneider documents.
"""

from __future__ import annotations

import re
from typing import Any

from . import data
from .errors import invalid_field, missing_field, not_found
from .routing import Request, Response
from .state import EmulatorState

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def net_price(state: EmulatorState, req: Request) -> Response:
    """``GET /v1/customer-journey/distributor/product-netprice/product-reference``."""
    reference = req.required("catalog-number")
    quantity = req.integer("quantity", 1, minimum=1)
    currency = req.first("currencyCode") or "EUR"
    if not _CURRENCY.match(currency):
        raise invalid_field("currencyCode", currency, "must be an ISO 4217 code such as EUR")
    cfg = state.config
    index = data.find_product(reference, cfg.products)
    return Response(200, data.net_price(cfg.seed, index, reference, quantity, currency, state.today()))


def quote_lines(state: EmulatorState, req: Request) -> Response:
    """``GET /v1/customer-journey/distributor/quote/quotelines/{quote-number}`` (base path assumed)."""
    number = req.params["quote_number"]
    body = data.quote(state.config.seed, number, state.config.products)
    if body is None:
        raise not_found("QUOTE_NOT_FOUND", f"Quote {number} was not found")
    return Response(200, body)


def _order_lines(req: Request) -> list[dict[str, Any]]:
    payload = req.json()
    if not isinstance(payload, dict) or not payload.get("orderLines"):
        raise missing_field("orderLines")
    lines = payload["orderLines"]
    if not isinstance(lines, list):
        raise invalid_field("orderLines", "...", "must be a list of {catalogNumber, quantity}")
    for line in lines:
        ok = isinstance(line, dict) and isinstance(line.get("catalogNumber"), str)
        qty = line.get("quantity") if isinstance(line, dict) else None
        if not ok or not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
            raise invalid_field("orderLines", line, "each line needs catalogNumber and a positive quantity")
    return lines


def _check(state: EmulatorState, lines: list[dict[str, Any]]) -> dict[str, Any]:
    """Price each line; unknown or unpriced references become errorMessages of a 200 answer."""
    cfg, today = state.config, state.today()
    errors: list[dict[str, str]] = []
    warnings: list[dict[str, str]] = []
    priced = []
    for number, line in enumerate(lines, start=1):
        reference = line["catalogNumber"]
        index = data.find_product(reference, cfg.products)
        price: dict[str, Any] = data.net_price(cfg.seed, index, reference, line["quantity"], "EUR", today)
        errors.extend({**e, "lineNumber": str(number)} for e in price["errorMessages"])
        warnings.extend({**w, "lineNumber": str(number)} for w in price["warningMessages"])
        priced.append(
            {
                "lineNumber": number,
                "catalogNumber": reference,
                "quantity": line["quantity"],
                "netPrice": price["netPrice"],
                "totalNetPrice": price["totalNetPrice"],
                "currencyCode": "EUR",
            }
        )
    return {"valid": not errors, "orderLines": priced, "errorMessages": errors, "warningMessages": warnings}


def validate_order(state: EmulatorState, req: Request) -> Response:
    """``POST .../orders/validate``: a dry run, never creates anything."""
    return Response(200, _check(state, _order_lines(req)))


def submit_order(state: EmulatorState, req: Request) -> Response:
    """``POST .../orders/submit``: creates an order (counted in stats) unless a business error blocks it."""
    body = _check(state, _order_lines(req))
    body["orderId"] = None
    if body["valid"]:
        body["orderId"] = state.submissions.create({"orderLines": body["orderLines"]})
        body["status"] = state.submissions.status(body["orderId"])
        state.stats.order_submitted()
    return Response(200, body)


def order_status(state: EmulatorState, req: Request) -> Response:
    """``GET .../orders/{order-id}/status``: RECEIVED, then IN_PROCESS, then CONFIRMED (5 s apart)."""
    order_id = req.params["order_id"]
    status = state.submissions.status(order_id)
    if status is None:
        raise not_found("ORDER_NOT_FOUND", f"Order {order_id} was not found")
    return Response(200, {"orderId": order_id, "status": status})
