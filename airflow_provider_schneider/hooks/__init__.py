"""The hook of the Schneider provider.

Imported lazily: ``from airflow_provider_schneider.hooks import SchneiderHook``.
"""

from __future__ import annotations

from airflow_provider_schneider import lazy_attributes

_WHERE = {
    "SchneiderHook": "schneider",
    "SchneiderAsyncHook": "schneider_async",
}
__all__ = sorted(_WHERE)
__getattr__ = lazy_attributes(__name__, _WHERE)
