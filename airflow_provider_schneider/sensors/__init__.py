"""The sensor of the Schneider provider.

Imported lazily: ``from airflow_provider_schneider.sensors import SchneiderOrderStatusSensor``.
"""

from __future__ import annotations

from airflow_provider_schneider import lazy_attributes

_WHERE = {
    "SchneiderOrderStatusSensor": "order_status",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_attributes(__name__, _WHERE)
