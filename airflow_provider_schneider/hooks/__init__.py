"""The hook of the Schneider provider.

Imported lazily: ``from airflow_provider_schneider.hooks import SchneiderHook``.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_WHERE = {
    "SchneiderHook": "schneider",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
