"""Stock Level Checker v1.1 and Product Availability v2: per-reference lookups.

A reference may hold '/' or '\\', which cannot travel raw in a path segment: the segment is percent-decoded
(``%2F``) and then the ``path_substitutions`` knob maps substitute tokens back to the original characters.
"""

from __future__ import annotations

from typing import Any

from . import data
from .errors import invalid_field, missing_field, not_found
from .routing import Request, Response
from .state import EmulatorState


def decode_reference(state: EmulatorState, segment: str) -> str:
    """Undo the configured substitutions on an already percent-decoded path segment, in knob order."""
    for token, original in state.config.path_substitutions.items():
        segment = segment.replace(token, original)
    return segment


def _product_index(state: EmulatorState, reference: str) -> int:
    index = data.find_product(reference, state.config.products)
    if index is None:
        raise not_found("PRODUCT_NOT_FOUND", f"Product {reference} was not found")
    return index


def _stock_body(state: EmulatorState, reference: str, index: int) -> dict[str, Any]:
    levels = data.stock_levels(state.config.seed, index, state.today())
    return {"productReference": reference, "stockLevels": levels}


def stock_level(state: EmulatorState, req: Request) -> Response:
    """``GET /productstocklevelchecker/1.1/products/{productReference}``."""
    reference = decode_reference(state, req.params["reference"])
    body = _stock_body(state, reference, _product_index(state, reference))
    for name in ("shipTo", "purchaserID"):
        if req.first(name) is not None:
            body[name] = req.first(name)
    return Response(200, body)


def stock_levels_bulk(state: EmulatorState, req: Request) -> Response:
    """``POST .../products/stock-levels`` (Brazil, Finland, Sweden): a list, unknown items flagged inline."""
    payload = req.json()
    if not isinstance(payload, dict) or "products" not in payload:
        raise missing_field("products")
    items = payload["products"]
    if not isinstance(items, list) or not all(isinstance(i, dict) and i.get("productReference") for i in items):
        raise invalid_field("products", "...", "must be a list of {productReference, referenceType}")
    out = []
    for item in items:
        reference = str(item["productReference"])
        index = data.find_product(reference, state.config.products)
        if index is None:
            error = {"code": "PRODUCT_NOT_FOUND", "userMessage": f"Product {reference} was not found"}
            entry: dict[str, Any] = {"productReference": reference, "stockLevels": [], "error": error}
        else:
            entry = _stock_body(state, reference, index)
        entry["referenceType"] = str(item.get("referenceType", "4"))
        out.append(entry)
    return Response(200, out)


def availability(state: EmulatorState, req: Request) -> Response:
    """``GET /v2/sales-operation/product-availability/products/{product-reference}?quantity=N&shipTo=..``."""
    reference = decode_reference(state, req.params["reference"])
    quantity = req.integer("quantity", minimum=1)
    index = _product_index(state, reference)
    answer = data.availability(state.config.seed, index, quantity, state.today())
    body = {"productReference": reference, "quantity": quantity, "shipTo": req.first("shipTo"), **answer}
    return Response(200, body)
