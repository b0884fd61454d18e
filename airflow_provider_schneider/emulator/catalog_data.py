"""Product catalogue data: references, GTINs, summaries, details and the daily change log.

Product references do not depend on the seed (DAG examples and docs name them); descriptions, statuses and
the change log do. Stock, prices and quotes build on these references (:mod:`supply_data`).
"""

from __future__ import annotations

import datetime as dt
import functools

from .seeded import _digest, _num, iter_days

CHANGE_TYPES = ("new", "update", "delete")  # as in the change log; requests may also ask for "all"
MAX_CHANGES_PER_DAY = 15
#: (reference prefix, description stem) of the product families the catalogue is built from.
_FAMILIES = (
    ("LC1D", "TeSys D contactor"),
    ("A9F7", "Acti9 iC60N miniature circuit breaker"),
    ("GV2ME", "TeSys GV2 motor circuit breaker"),
    ("ATV320U", "Altivar Machine ATV320 variable speed drive"),
    ("XB4BA", "Harmony XB4 push button"),
    ("RXM4AB", "Harmony RXM plug-in relay"),
    ("METSEPM", "PowerLogic PM5000 power meter"),
    ("LV4", "ComPacT NSX circuit breaker"),
    ("XUB0", "OsiSense XU photoelectric sensor"),
    ("TM221CE", "Modicon M221 logic controller"),
    ("HMIST6", "Harmony ST6 HMI touch panel"),
    ("BMXP34", "Modicon M340 processor"),
)
_BACKSLASH_INDEXES = (7, 13)  # the one or two references holding a backslash
_EXAMPLE_SLASH_REFERENCE = "LC1D09/BD"  # product index 1, the example used in the docs


def product_reference(index: int) -> str:
    """Commercial reference of product ``index``; every 25th holds '/', indexes 7 and 13 hold a backslash."""
    if index == 1:
        return _EXAMPLE_SLASH_REFERENCE
    prefix = _FAMILIES[index % len(_FAMILIES)][0]
    base = f"{prefix}{index:04d}"
    if index in _BACKSLASH_INDEXES:
        return f"{base}\\X"
    if index % 25 == 1:
        return f"{base}/BD"
    return base


def gtin(index: int) -> str:
    """A valid 13-digit GTIN (check digit included) for product ``index``."""
    body = f"3606480{index:05d}"
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


@functools.lru_cache(maxsize=8)
def _reference_index(products: int) -> dict[str, int]:
    return {product_reference(i): i for i in range(products)}


@functools.lru_cache(maxsize=8)
def _gtin_index(products: int) -> dict[str, int]:
    return {gtin(i): i for i in range(products)}


def find_product(reference: str, products: int, identifier: str = "commercialReference") -> int | None:
    """Index of the product with this commercial reference (or GTIN), None when unknown."""
    table = _gtin_index(products) if identifier == "gtin" else _reference_index(products)
    return table.get(reference)


def _description(seed: int, index: int) -> str:
    stem = _FAMILIES[index % len(_FAMILIES)][1]
    rating = (6, 9, 12, 18, 25, 32, 40, 65)[_num(_digest(seed, "rating", index), 0) % 8]
    return f"{stem}, {rating} A"


def _status(seed: int, index: int) -> str:
    return "discontinued" if _num(_digest(seed, "status", index), 0) % 20 == 0 else "active"


def product_summary(seed: int, index: int) -> dict[str, object]:
    """List-mode item: identifiers, description and status."""
    return {
        "identifiers": {"commercialReference": product_reference(index), "gtin": gtin(index)},
        "description": _description(seed, index),
        "status": _status(seed, index),
    }


def product_detail(seed: int, index: int) -> dict[str, object]:
    """Detail-mode record: the summary plus the attributes a full product record carries."""
    d = _digest(seed, "detail", index)
    family = _FAMILIES[index % len(_FAMILIES)]
    return {
        **product_summary(seed, index),
        "brand": "Schneider Electric",
        "range": family[1].split(" ")[0],
        "longDescription": f"{_description(seed, index)} - reference {product_reference(index)}",
        "etimClass": f"EC{_num(d, 0) % 4000:06d}",
        "countryOfOrigin": ("FR", "DE", "ES", "CN", "IN", "ID")[_num(d, 4) % 6],
        "weight": {"value": round(0.05 + _num(d, 8) % 5000 / 1000, 3), "unit": "kg"},
        "packagingQuantity": (1, 1, 1, 5, 10, 50)[_num(d, 12) % 6],
        "unitOfMeasure": "PCE",
    }


def catalog_changes(seed: int, day: dt.date, products: int) -> list[dict[str, object]]:
    """The change log of one calendar day: 0..15 changes, each on a distinct product."""
    key = day.isoformat()
    count = min(_num(_digest(seed, "changes", key), 0) % (MAX_CHANGES_PER_DAY + 1), products)
    seen: set[int] = set()
    out: list[dict[str, object]] = []
    attempt = 0
    while len(out) < count:
        d = _digest(seed, "change", key, attempt)
        attempt += 1
        index = _num(d, 0) % products
        if index in seen:
            continue
        seen.add(index)
        reference, code = product_reference(index), gtin(index)
        out.append(
            {
                "commercialReference": reference,
                "gtin": code,
                "identifiers": {"commercialReference": reference, "gtin": code},
                "changeType": ("new", "update", "update", "update", "delete")[_num(d, 4) % 5],
                "changeDate": key,
                "description": _description(seed, index),
                "status": _status(seed, index),
            }
        )
    return out


def delta(
    seed: int, since: dt.date, until: dt.date, change_type: str = "all", products: int = 500
) -> list[dict[str, object]]:
    """All changes with ``since <= changeDate <= until`` of ``change_type`` (or ``all``), oldest day first."""
    return [
        change
        for day in iter_days(since, until)
        for change in catalog_changes(seed, day, products)
        if change_type in ("all", change["changeType"])
    ]
