"""The trigger of the Schneider provider.

Imported lazily: ``from airflow_provider_schneider.triggers import SchneiderOrderStatusTrigger``.
"""

from __future__ import annotations

from airflow_provider_schneider import lazy_attributes

_WHERE = {
    "SchneiderOrderStatusTrigger": "order_status",
    "SchneiderOrderStatusEventTrigger": "order_events",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_attributes(__name__, _WHERE)
