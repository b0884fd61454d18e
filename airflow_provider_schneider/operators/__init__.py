"""Operators of the Schneider provider (imported lazily: ``from airflow_provider_schneider.operators import X``)."""

from __future__ import annotations

from importlib import import_module
from typing import Any

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


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
