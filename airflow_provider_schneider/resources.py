"""The catalog of Schneider read APIs, as data (facts from Schneider's API portal, https://api-explorer.se.com).

An operator is a thin layer over an entry here; a new API version is a new entry. Imports stay stdlib-only:
DAG files import operators, and operators import this module, on every parse loop.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from airflow_provider_schneider.exceptions import SchneiderConfigError

PAGE_NUMBER = "page_number"
SINGLE = "single"
PAGINATION_STYLES = (PAGE_NUMBER, SINGLE)

#: Named rules for characters that cannot travel raw in a path segment (a product reference like
#: ``LC1D09/BD``). Schneider does not document the replacement, so it is configurable; whatever the rule,
#: what is left of ``/`` and ``\`` (and every other reserved character) is percent-encoded afterwards.
PATH_SUBSTITUTION_RULES: dict[str, dict[str, str]] = {
    "percent": {},  # LC1D09/BD -> LC1D09%2FBD (the default)
    "tilde": {"/": "~2F", "\\": "~5C"},  # LC1D09/BD -> LC1D09~2FBD
    "underscore": {"/": "_", "\\": "_"},  # LC1D09/BD -> LC1D09_BD
    "dash": {"/": "-", "\\": "-"},
}

#: A substitution rule: a rule name above, a mapping ``{"/": "~2F"}`` or a callable ``str -> str``.
PathSubstitution = str | Mapping[str, str] | Callable[[str], str] | None


def substitute(value: str, rule: PathSubstitution) -> str:
    """Apply a substitution rule to one path value (before percent-encoding)."""
    if rule is None:
        return value
    if callable(rule):
        return str(rule(value))
    if isinstance(rule, str):
        try:
            rule = PATH_SUBSTITUTION_RULES[rule]
        except KeyError:
            raise SchneiderConfigError(
                f"Unknown path substitution rule {rule!r}; use one of {sorted(PATH_SUBSTITUTION_RULES)}, "
                "a mapping such as {'/': '~2F'} or a callable"
            ) from None
    for raw, replacement in rule.items():
        value = value.replace(raw, replacement)
    return value


def path_segment(value: object, rule: PathSubstitution = None) -> str:
    """One path segment as sent: substituted, then percent-encoded, so ``/`` and ``\\`` never go out raw
    and a value can never climb out of its segment (``.`` and ``..`` are encoded too)."""
    text = str(value).strip()
    if not text:
        raise SchneiderConfigError("A path parameter is empty; it would change which endpoint is called")
    quoted = quote(substitute(text, rule), safe="-_~.")
    if quoted in (".", ".."):
        quoted = quoted.replace(".", "%2E")
    return quoted


@dataclass(frozen=True)
class Resource:
    """One API operation: where it lives, where its records are, how it pages, what it requires.

    :param records_field: field of the JSON answer that holds the record list; ``None`` means the answer is
        the record (an object) or the record list (a JSON array).
    :param pagination: ``page_number`` (``page``/``page-size``, stop on ``totalNumberOfPages``) or ``single``.
    :param required_params: query parameters the API rejects a call without (checked after templating).
    :param record_schema: the declared record fields (name -> type text, see
        :mod:`airflow_provider_schneider.outputs.declared`), from the published facts only; ``None`` where
        the API's record is not documented (the columns are then inferred per pull).
    :param schema_version: bumped whenever ``record_schema`` changes (a new file schema).
    """

    name: str
    path: str
    records_field: str | None
    pagination: str = SINGLE
    method: str = "GET"
    required_params: tuple[str, ...] = ()
    max_page_size: int | None = None
    record_schema: Mapping[str, Any] | None = None
    schema_version: int = 1

    def __post_init__(self) -> None:
        if self.pagination not in PAGINATION_STYLES:
            raise ValueError(f"Resource {self.name}: pagination must be one of {PAGINATION_STYLES}")

    @property
    def path_params(self) -> tuple[str, ...]:
        return tuple(name for _, name, _, _ in string.Formatter().parse(self.path) if name)

    def render_path(self, values: Mapping[str, Any], rule: PathSubstitution = None) -> str:
        """Fill the path template, each value quoted as exactly one segment."""
        missing = [name for name in self.path_params if values.get(name) in (None, "")]
        if missing:
            raise SchneiderConfigError(f"Resource '{self.name}' needs path parameter(s) {missing} for {self.path}")
        return self.path.format(**{k: path_segment(values[k], rule) for k in self.path_params})

    def page_size(self, wanted: int) -> int:
        """``wanted`` records per page, capped at what this API accepts."""
        return min(wanted, self.max_page_size) if self.max_page_size else wanted

    def check_params(self, params: Mapping[str, Any]) -> None:
        missing = [name for name in self.required_params if params.get(name) in (None, "", [], ())]
        if missing:
            raise SchneiderConfigError(f"Resource '{self.name}' needs query parameter(s) {missing}")


_CATALOG_IDS = ("supplierid", "supplierid-type", "customerid", "customerid-type")

# Declared record schemas: the documented fields only (shared/schneider_apis.md, section 2); ids and codes as
# text, amounts and quantities as doubles, dates as the ISO text the API sends (their format is not
# published). ``productReference`` is the fan-out's own field (the product each answer is for).
#: Orders: the fields the API filters on (``order-number``, ``order-status``, ``purchaser-id``); the rest of
#: an order is not published and lands in ``_extra`` unless a DAG declares it (``schema_hints``).
ORDER_FIELDS = {"orderNumber": "string", "orderStatus": "string", "purchaserId": "string"}
#: Catalog items in list mode hold ``identifiers: {commercialReference, gtin}``.
CATALOG_FIELDS = {"identifiers": "struct<commercialReference: string, gtin: string>"}
AVAILABILITY_FIELDS = {
    "productReference": "string",
    "deliveryDate": "string",
    "shortage": "boolean",
    "currLeadTime": "bigint",
}
NET_PRICE_FIELDS = {
    "productReference": "string",
    "catalogNumber": "string",
    "productNumber": "string",
    "productDescription": "string",
    "quantity": "double",
    "listPrice": "double",
    "netPrice": "double",
    "netPriceUOM": "string",
    "totalNetPrice": "double",
    "currencyCode": "string",
    "priceDate": "string",
    "materialPriceGroup": "string",
    "standardLeadTime": "string",
    "minOrderQuantity": "double",
    "promiseQuantity": "double",
    "errorMessages": "list<json>",
    "warningMessages": "list<json>",
}
QUOTE_LINE_FIELDS = {
    "quoteLineId": "string",
    "catalogNumber": "string",
    "totalOrderQuantity": "double",
    "itemDescription": "string",
}

RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        # Partner Order Status v1.1: orders of the customer linked to the credentials.
        Resource(
            "order_status",
            "/v1/supply-chain/partner-order-status/orders/{country}",
            records_field="orderList",
            pagination=PAGE_NUMBER,
            max_page_size=100,
            record_schema=ORDER_FIELDS,
        ),
        # Older Order Status variant (200 orders per page).
        Resource(
            "order_status_legacy",
            "/v1/supply-chain/order-status/orders/{country}",
            records_field="orderList",
            pagination=PAGE_NUMBER,
            max_page_size=200,
            record_schema=ORDER_FIELDS,
        ),
        # Product Catalog v2: full scope, detail or delta (date-of-reference + change-type).
        Resource(
            "product_catalog",
            "/v2/reference-data/product/product-catalog/products",
            records_field="products",
            required_params=_CATALOG_IDS,
            record_schema=CATALOG_FIELDS,
        ),
        # Product Catalog v1.
        Resource(
            "product_catalog_v1",
            "/v1/reference-data/product/product-catalog/products",
            records_field="products",
            required_params=_CATALOG_IDS,
            record_schema=CATALOG_FIELDS,
        ),
        # Product Stock Level Checker v1.1, one product per call.
        Resource(
            "stock_level",
            "/productstocklevelchecker/1.1/products/{product_reference}",
            records_field=None,
        ),
        # Stock Level Checker v1.1 for Brazil, Finland and Sweden: many products per POST.
        Resource(
            "stock_levels_bulk",
            "/productstocklevelchecker/1.1/products/stock-levels",
            records_field=None,
            method="POST",
        ),
        # Product Availability v2: delivery date, shortage and lead time for a quantity.
        Resource(
            "product_availability",
            "/v2/sales-operation/product-availability/products/{product_reference}",
            records_field=None,
            required_params=("quantity",),
            record_schema=AVAILABILITY_FIELDS,
        ),
        # Product Net Price v1.0; business errors arrive inside a 200 (errorMessages).
        Resource(
            "net_price",
            "/v1/customer-journey/distributor/product-netprice/product-reference",
            records_field=None,
            required_params=("catalog-number", "quantity"),
            record_schema=NET_PRICE_FIELDS,
        ),
        # Distributor Quote v1.0: quote header and lines.
        Resource(
            "distributor_quote",
            # The base path is not published; assumed (pass ``endpoint`` to the generic operator otherwise).
            "/v1/customer-journey/distributor/quote/quotelines/{quote_number}",
            records_field="quoteLines",
            record_schema=QUOTE_LINE_FIELDS,
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
