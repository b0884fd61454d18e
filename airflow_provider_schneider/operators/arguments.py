"""Product references as operators receive them: a list, a comma string, or nested chunks from XCom."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")

#: References listed in a manifest (not found, business errors); the counts beside them are complete.
MAX_LISTED = 100


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def as_items(value: Any) -> list[Any]:
    """Product references as a list, accepting a list, a comma string, or nested chunks from XCom.

    Repeated string references are called once (first position kept).
    """
    if value is None:
        return []
    if isinstance(value, str):
        flat: list[Any] = [part.strip() for part in value.split(",") if part.strip()]
    else:
        flat = []
        for item in value:
            flat.extend(as_items(item) if isinstance(item, (list, tuple)) else [item])
    seen: set[str] = set()
    out = []
    for item in flat:
        if isinstance(item, str):
            if item in seen:
                continue
            seen.add(item)
        out.append(item)
    return out
