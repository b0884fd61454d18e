"""Deterministic business data, computed on the fly: one import for every generator.

Every record is a pure function of ``seed`` and a key (country and index, product index, calendar day), so
nothing big lives in memory, a page of a million orders costs O(page size), and tests can compute the exact
records the server will send. Product references do not depend on the seed, so DAG examples stay valid.

The generators live by what they describe: :mod:`order_data` (Order Status), :mod:`catalog_data` (the
product catalogue and its change log), :mod:`supply_data` (stock, availability, net prices, quotes), all
keyed through :mod:`seeded`. Routes and tests use them as ``data.<name>``.
"""

from __future__ import annotations

from .catalog_data import (
    CHANGE_TYPES,
    MAX_CHANGES_PER_DAY,
    catalog_changes,
    delta,
    find_product,
    gtin,
    product_detail,
    product_reference,
    product_summary,
)
from .order_data import (
    ORDER_STATUSES,
    PURCHASERS_PER_COUNTRY,
    currency,
    order,
    order_index,
    order_indexes,
    order_number,
    order_status_and_purchaser,
    order_statuses,
    purchaser_ids,
)
from .seeded import iter_days
from .supply_data import add_working_days, availability, has_net_price_error, net_price, quote, stock_levels

__all__ = [
    "CHANGE_TYPES",
    "MAX_CHANGES_PER_DAY",
    "ORDER_STATUSES",
    "PURCHASERS_PER_COUNTRY",
    "add_working_days",
    "availability",
    "catalog_changes",
    "currency",
    "delta",
    "find_product",
    "gtin",
    "has_net_price_error",
    "iter_days",
    "net_price",
    "order",
    "order_index",
    "order_indexes",
    "order_number",
    "order_status_and_purchaser",
    "order_statuses",
    "product_detail",
    "product_reference",
    "product_summary",
    "purchaser_ids",
    "quote",
    "stock_levels",
]
