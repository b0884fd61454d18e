"""Product Catalog v1/v2: full scope, detail and delta modes (delta wins over references)."""

from __future__ import annotations

import datetime as dt

from . import data
from .errors import invalid_field
from .routing import Request, Response
from .state import EmulatorState

ID_TYPES = ("specific", "duns")
IDENTIFIERS = ("commercialReference", "gtin")
CHANGE_TYPES = (*data.CHANGE_TYPES, "all")


def _ids(req: Request) -> dict[str, str]:
    """The four mandatory ids, echoed back in every answer."""
    out = {}
    for name, key in (("supplierid", "supplierID"), ("customerid", "customerID")):
        out[key] = req.required(name)
        id_type = req.required(f"{name}-type")
        if id_type not in ID_TYPES:
            raise invalid_field(f"{name}-type", id_type, f"must be one of {', '.join(ID_TYPES)}")
        out[f"{key}Type"] = id_type
    return out


def _delta(state: EmulatorState, req: Request) -> list[dict[str, object]]:
    raw_date = req.required("date-of-reference")
    try:
        since = dt.date.fromisoformat(raw_date)
    except ValueError:
        raise invalid_field("date-of-reference", raw_date, "must be YYYY-MM-DD") from None
    change_type = req.required("change-type")
    if change_type not in CHANGE_TYPES:
        raise invalid_field("change-type", change_type, f"must be one of {', '.join(CHANGE_TYPES)}")
    cfg, today = state.config, state.today()
    until = since if cfg.delta_semantics == "on" else today
    if since > today:
        return []
    return data.delta(cfg.seed, since, until, change_type, cfg.products)


def _detail(state: EmulatorState, req: Request) -> list[dict[str, object]]:
    identifier = req.first("product-identifier") or "commercialReference"
    if identifier not in IDENTIFIERS:
        raise invalid_field("product-identifier", identifier, f"must be one of {', '.join(IDENTIFIERS)}")
    cfg = state.config
    found = (data.find_product(ref, cfg.products, identifier) for ref in req.values("product-reference"))
    return [data.product_detail(cfg.seed, index) for index in found if index is not None]


def list_products(state: EmulatorState, req: Request) -> Response:
    """``GET .../product-catalog/products``; optional etim/description/filtering params are accepted."""
    body: dict[str, object] = dict(_ids(req))
    if req.first("date-of-reference") is not None or req.first("change-type") is not None:
        body["products"] = _delta(state, req)
    elif req.first("product-reference") is not None:
        body["products"] = _detail(state, req)
    else:
        cfg = state.config
        body["products"] = [data.product_summary(cfg.seed, i) for i in range(cfg.products)]
    return Response(200, body)
