"""Order Status data: order numbers, purchasers and order records per country, computed from the seed.

Apart from the catalogue because an order is keyed by country and index (a page of a million orders costs
O(page size), a number prefix maps to a range of indexes without a scan) and uses no product.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib

from .seeded import BASE_DATE, _digest, _num

#: The emulator's order fields that Order Status's declared schema does not name (the API does not publish
#: them), with their types: what a DAG pulling from the emulator declares with ``schema_hints``.
UNDECLARED_ORDER_FIELDS = {
    "orderDate": "string",
    "customerPurchaseOrder": "string",
    "totalAmount": "double",
    "currency": "string",
    "country": "string",
    "numberOfLines": "bigint",
}
ORDER_STATUSES = ("Open", "In Progress", "Partially Shipped", "Shipped", "Invoiced", "Cancelled")
PURCHASERS_PER_COUNTRY = 6
_CURRENCIES = {
    "GB": "GBP",
    "US": "USD",
    "SE": "SEK",
    "DK": "DKK",
    "NO": "NOK",
    "CH": "CHF",
    "PL": "PLN",
    "BR": "BRL",
    "CN": "CNY",
    "JP": "JPY",
    "IN": "INR",
    "AU": "AUD",
    "CA": "CAD",
    "CZ": "CZK",
    "HU": "HUF",
    "MX": "MXN",
}


def order_statuses(country: str) -> tuple[str, ...]:
    """The order-status value list of a country (the same list everywhere in the emulator)."""
    return ORDER_STATUSES


def currency(country: str) -> str:
    """The currency orders of a country are priced in."""
    return _CURRENCIES.get(country, "EUR")


def order_number(country: str, index: int) -> str:
    """Unique order number: country code plus 8 digits (index 0 -> ``FR00000001``)."""
    return f"{country}{index + 1:08d}"


def order_index(country: str, number: str) -> int | None:
    """Inverse of :func:`order_number` (None when the number has another shape)."""
    digits = number[len(country) :]
    if not number.startswith(country) or len(digits) != 8 or not digits.isdigit():
        return None
    return int(digits) - 1


def order_indexes(country: str, prefix: str, total: int) -> range:
    """Indexes whose order number starts with ``prefix``: a range, so a prefix lookup never scans."""
    if len(prefix) <= len(country):
        return range(total) if country.startswith(prefix) else range(0)
    digits = prefix[len(country) :]
    if not prefix.startswith(country) or not digits.isdigit() or len(digits) > 8:
        return range(0)
    scale = 10 ** (8 - len(digits))
    # order number n is index n - 1
    return range(max(int(digits) * scale - 1, 0), min((int(digits) + 1) * scale - 1, total))


@functools.lru_cache(maxsize=1024)
def purchaser_ids(seed: int, country: str) -> tuple[str, ...]:
    """The small pool of 10-digit purchaser ids of a country; the first two also have a 5-digit form."""
    out = []
    for k in range(PURCHASERS_PER_COUNTRY):
        value = _num(_digest(seed, "purchaser", country, k), 0)
        number = 10_000 + value % 90_000 if k < 2 else 1_000_000_000 + value % 9_000_000_000
        out.append(f"{number:010d}")
    return tuple(out)


def _order_digest(seed: int, country: str, index: int) -> bytes:
    # same key as _digest(seed, "order", country, index), built faster: filtered scans call this per order
    return hashlib.blake2b(f"{seed}|order|{country}|{index}".encode(), digest_size=32).digest()


def _status_and_purchaser(seed: int, country: str, d: bytes) -> tuple[str, str]:
    pool = purchaser_ids(seed, country)
    status = ORDER_STATUSES[int.from_bytes(d[0:4], "big") % len(ORDER_STATUSES)]
    return status, pool[int.from_bytes(d[20:24], "big") % len(pool)]


def order_status_and_purchaser(seed: int, country: str, index: int) -> tuple[str, str]:
    """Just the filterable fields of an order, so a filtered scan skips building whole records."""
    return _status_and_purchaser(seed, country, _order_digest(seed, country, index))


def order(seed: int, country: str, index: int) -> dict[str, object]:
    """Order ``index`` (0-based) of ``country``; the base record, before any status override (a copy: the
    caller may change it)."""
    return dict(_order(seed, country, index))


@functools.lru_cache(maxsize=50_000)
def _order(seed: int, country: str, index: int) -> dict[str, object]:
    """Built once while it is used (a benchmark's repeated pulls must measure the client, not the emulator
    generating the same orders again under its one interpreter lock)."""
    d = _order_digest(seed, country, index)
    lines = 1 + _num(d, 12) % 20
    status, purchaser = _status_and_purchaser(seed, country, d)
    return {
        "orderNumber": order_number(country, index),
        "purchaserId": purchaser,
        "orderStatus": status,
        "orderDate": (BASE_DATE + dt.timedelta(days=_num(d, 4) % 730)).isoformat(),
        "customerPurchaseOrder": f"PO-{_num(d, 8) % 1_000_000:06d}",
        "totalAmount": round(lines * (20 + _num(d, 16) % 50_000 / 100), 2),
        "currency": currency(country),
        "country": country,
        "numberOfLines": lines,
    }
