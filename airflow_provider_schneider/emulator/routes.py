"""The emulated gateway's resource paths, mapped to their handlers (``/token`` is handled separately)."""

from __future__ import annotations

from . import catalog, orders, products, sales
from .routing import Router

ORDER_ENTRY = "/v2/customer-order/system/myse-order-entry-fr"


def build_api_router() -> Router:
    router = Router()
    for method, path, handler in (
        ("GET", "/v1/supply-chain/partner-order-status/orders/{country}", orders.list_orders_v11),
        ("GET", "/v1/supply-chain/order-status/orders/{country}", orders.list_orders_legacy),
        ("GET", "/v2/reference-data/product/product-catalog/products", catalog.list_products),
        ("GET", "/v1/reference-data/product/product-catalog/products", catalog.list_products),
        ("POST", "/productstocklevelchecker/1.1/products/stock-levels", products.stock_levels_bulk),
        ("GET", "/productstocklevelchecker/1.1/products/{reference}", products.stock_level),
        ("GET", "/v2/sales-operation/product-availability/products/{reference}", products.availability),
        ("GET", "/v1/customer-journey/distributor/product-netprice/product-reference", sales.net_price),
        ("GET", "/v1/customer-journey/distributor/quote/quotelines/{quote_number}", sales.quote_lines),
        ("POST", ORDER_ENTRY + "/orders/validate", sales.validate_order),
        ("POST", ORDER_ENTRY + "/orders/submit", sales.submit_order),
        ("GET", ORDER_ENTRY + "/orders/{order_id}/status", sales.order_status),
    ):
        router.add(method, path, handler)
    return router
