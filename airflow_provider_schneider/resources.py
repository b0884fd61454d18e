"""The catalog of Schneider read APIs, as data (facts from Schneider's API portal; see README).

An operator is a thin layer over an entry here; a new API version is a new entry.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from airflow_provider_schneider.exceptions import SchneiderConfigError


def path_segment(value: object, substitutions: Mapping[str, str] | None = None) -> str:
    """Quote one path segment; ``/`` and ``\\`` never go out raw (substituted, else percent-encoded)."""
    text = str(value)
    for raw, replacement in (substitutions or {}).items():
        text = text.replace(raw, replacement)
    return quote(text, safe="-._~")


PAGE_NUMBER = "page_number"
SINGLE = "single"


@dataclass(frozen=True)
class Resource:
    """One API operation: where it lives, where its records are, how it pages, what it requires."""

    name: str
    path: str
    records_field: str | None
    pagination: str = SINGLE
    required_params: tuple[str, ...] = ()
    max_page_size: int | None = None
    description: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.path) if name)

    def render_path(self, values: Mapping[str, Any], substitutions: Mapping[str, str] | None = None) -> str:
        """Fill the path template, quoting each value as one segment (never a raw ``/``)."""
        missing = [name for name in self.path_params if values.get(name) in (None, "")]
        if missing:
            raise SchneiderConfigError(f"Resource '{self.name}' needs path parameter(s) {missing} for {self.path}")
        return self.path.format(**{k: path_segment(values[k], substitutions) for k in self.path_params})

    def check_params(self, params: Mapping[str, Any]) -> None:
        missing = [name for name in self.required_params if params.get(name) in (None, "", [])]
        if missing:
            raise SchneiderConfigError(f"Resource '{self.name}' needs query parameter(s) {missing}")


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource(
            "order_status",
            "/v1/supply-chain/partner-order-status/orders/{country}",
            records_field="orderList",
            pagination=PAGE_NUMBER,
            max_page_size=100,
            description="Partner Order Status v1.1: orders of the customer linked to the credentials.",
        ),
        Resource(
            "order_status_legacy",
            "/v1/supply-chain/order-status/orders/{country}",
            records_field="orderList",
            pagination=PAGE_NUMBER,
            max_page_size=200,
            description="Older Order Status variant (200 orders per page).",
        ),
        Resource(
            "product_catalog",
            "/v2/reference-data/product/product-catalog/products",
            records_field="products",
            required_params=("supplierid", "supplierid-type", "customerid", "customerid-type"),
            description="Product Catalog v2: full scope, detail or delta (date-of-reference + change-type).",
        ),
        Resource(
            "product_catalog_v1",
            "/v1/reference-data/product/product-catalog/products",
            records_field="products",
            required_params=("supplierid", "supplierid-type", "customerid", "customerid-type"),
            description="Product Catalog v1.",
        ),
        Resource(
            "stock_level",
            "/productstocklevelchecker/1.1/products/{product_reference}",
            records_field=None,
            description="Product Stock Level Checker v1.1, one product per call.",
        ),
        Resource(
            "product_availability",
            "/v2/sales-operation/product-availability/products/{product_reference}",
            records_field=None,
            required_params=("quantity",),
            description="Product Availability v2: delivery date, shortage and lead time for a quantity.",
        ),
        Resource(
            "net_price",
            "/v1/customer-journey/distributor/product-netprice/product-reference",
            records_field=None,
            required_params=("catalog-number", "quantity"),
            description="Product Net Price v1.0; business errors arrive inside a 200 (errorMessages).",
        ),
        Resource(
            "distributor_quote",
            # The base path is not published; assumed (configurable by passing ``endpoint`` instead).
            "/v1/customer-journey/distributor/quote/quotelines/{quote_number}",
            records_field="quoteLines",
            description="Distributor Quote v1.0: quote header and lines.",
        ),
    )
}


def get_resource(name: str) -> Resource:
    try:
        return RESOURCES[name]
    except KeyError:
        raise SchneiderConfigError(
            f"Unknown Schneider resource {name!r}; known: {', '.join(sorted(RESOURCES))}"
        ) from None
