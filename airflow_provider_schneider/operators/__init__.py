"""Operators of the Schneider provider (imported lazily: ``from airflow_provider_schneider.operators import X``)."""

from __future__ import annotations

from airflow_provider_schneider import lazy_attributes

_WHERE = {
    "SchneiderBaseOperator": "base",
    "SchneiderApiOperator": "api",
    "SchneiderOrderStatusOperator": "orders",
    "SchneiderProductCatalogOperator": "catalog",
    "SchneiderStockLevelOperator": "products",
    "SchneiderProductAvailabilityOperator": "products",
    "SchneiderNetPriceOperator": "products",
    "DELTA_SINCE_INTERVAL_START": "catalog",
    "CHANGED_BEFORE_INTERVAL_END": "catalog",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_attributes(__name__, _WHERE)
