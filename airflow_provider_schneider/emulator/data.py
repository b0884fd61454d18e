"""Deterministic business data, computed on the fly.

Every record is a pure function of ``seed`` and a key (country and index, product index, calendar day), so
nothing big lives in memory, a page of a million orders costs O(page size), and tests can compute the exact
records the server will send. Product references do not depend on the seed, so DAG examples stay valid.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
from collections.abc import Iterator

ORDER_STATUSES = ("Open", "In Progress", "Partially Shipped", "Shipped", "Invoiced", "Cancelled")
CHANGE_TYPES = ("new", "update", "delete")  # as in the change log; requests may also ask for "all"
PURCHASERS_PER_COUNTRY = 6
MAX_CHANGES_PER_DAY = 15
_ORDER_BASE_DATE = dt.date(2023, 1, 1)
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
_PLANTS = ("FR10", "DE20", "ES30", "IT40", "SE50", "CN60")
_BACKSLASH_INDEXES = (7, 13)  # the one or two references holding a backslash
_EXAMPLE_SLASH_REFERENCE = "LC1D09/BD"  # product index 1, the example used in the docs


def _digest(*parts: object) -> bytes:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=32).digest()


def _num(digest: bytes, start: int, length: int = 4) -> int:
    return int.from_bytes(digest[start : start + length], "big")


# ---------------------------------------------------------------- orders


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
    """Order ``index`` (0-based) of ``country``; the base record, before any status override."""
    d = _order_digest(seed, country, index)
    lines = 1 + _num(d, 12) % 20
    status, purchaser = _status_and_purchaser(seed, country, d)
    return {
        "orderNumber": order_number(country, index),
        "purchaserId": purchaser,
        "orderStatus": status,
        "orderDate": (_ORDER_BASE_DATE + dt.timedelta(days=_num(d, 4) % 730)).isoformat(),
        "customerPurchaseOrder": f"PO-{_num(d, 8) % 1_000_000:06d}",
        "totalAmount": round(lines * (20 + _num(d, 16) % 50_000 / 100), 2),
        "currency": currency(country),
        "country": country,
        "numberOfLines": lines,
    }


# ---------------------------------------------------------------- product catalogue


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


# ---------------------------------------------------------------- stock, availability, prices, quotes


def add_working_days(day: dt.date, days: int) -> dt.date:
    """``day`` plus ``days`` Monday-to-Friday days."""
    while days > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day


def stock_levels(seed: int, index: int, today: dt.date) -> list[dict[str, object]]:
    """1 to 3 plants with a quantity; out-of-stock plants announce a later availability date."""
    d = _digest(seed, "stock", index)
    first = _num(d, 0) % len(_PLANTS)
    out = []
    for k in range(1 + _num(d, 4) % 3):
        qd = _digest(seed, "stock", index, k)
        quantity = 0 if _num(qd, 0) % 7 == 0 else _num(qd, 4) % 5000
        later = add_working_days(today, 1 + _num(qd, 8) % 30)
        out.append(
            {
                "plant": _PLANTS[(first + k) % len(_PLANTS)],
                "quantity": quantity,
                "unitOfMeasure": "PCE",
                "nextAvailabilityDate": (today if quantity else later).isoformat(),
            }
        )
    return out


def availability(seed: int, index: int, quantity: int, today: dt.date) -> dict[str, object]:
    """Delivery promise for ``quantity``: large orders and long lead times raise ``shortage``."""
    d = _digest(seed, "availability", index)
    lead = 1 + _num(d, 0) % 25
    if quantity > _num(d, 4) % 2000:
        lead += 10
    return {
        "deliveryDate": add_working_days(today, lead).isoformat(),
        "shortage": lead > 20,
        "currLeadTime": lead,
    }


def has_net_price_error(seed: int, index: int) -> bool:
    """True for the deterministic ~1 in 10 references whose net price is a business error."""
    return _num(_digest(seed, "netprice", index), 0) % 10 == 0


def net_price(
    seed: int, index: int | None, reference: str, quantity: int, currency_code: str, today: dt.date
) -> dict[str, object]:
    """Net price answer; unknown references and the error subset report ``errorMessages`` inside a 200."""
    errors: list[dict[str, str]] = []
    warnings: list[dict[str, str]] = []
    body: dict[str, object] = {
        "catalogNumber": reference,
        "productNumber": None,
        "productDescription": None,
        "quantity": quantity,
        "listPrice": None,
        "netPrice": None,
        "netPriceUOM": "PCE",
        "totalNetPrice": None,
        "currencyCode": currency_code,
        "priceDate": today.isoformat(),
        "materialPriceGroup": None,
        "standardLeadTime": None,
        "errorMessages": errors,
        "warningMessages": warnings,
        "minOrderQuantity": None,
        "promiseQuantity": 0,
    }
    if index is None:
        errors.append({"code": "MATERIAL_NOT_FOUND", "message": f"Material {reference} does not exist"})
        return body
    d = _digest(seed, "netprice", index)
    list_price = round(5 + _num(d, 4) % 200_000 / 100, 2)
    unit_price = round(list_price * (1 - (10 + _num(d, 8) % 36) / 100), 2)
    min_qty = (1, 1, 1, 5, 10)[_num(d, 12) % 5]
    body.update(
        {
            "productNumber": f"{_num(d, 16) % 10**9:09d}",
            "productDescription": _description(seed, index),
            "materialPriceGroup": f"{chr(65 + _num(d, 20) % 26)}{_num(d, 24) % 10}",
            "standardLeadTime": 1 + _num(d, 28) % 30,
            "minOrderQuantity": min_qty,
        }
    )
    if has_net_price_error(seed, index):
        errors.append({"code": "NO_PRICE", "message": f"No net price available for {reference}"})
        return body
    if quantity < min_qty:
        warnings.append({"code": "MIN_QTY", "message": f"Minimum order quantity is {min_qty}"})
    body.update(
        {
            "listPrice": list_price,
            "netPrice": unit_price,
            "totalNetPrice": round(unit_price * quantity, 2),
            "promiseQuantity": quantity,
        }
    )
    return body


def quote(seed: int, quote_number: str, products: int) -> dict[str, object] | None:
    """A quote for any all-digit number of 6..12 digits; None (-> 404) otherwise."""
    if not (quote_number.isdigit() and 6 <= len(quote_number) <= 12):
        return None
    d = _digest(seed, "quote", quote_number)
    created = _ORDER_BASE_DATE + dt.timedelta(days=_num(d, 0) % 730)
    lines: list[dict[str, str | int | float]] = []
    for k in range(1 + _num(d, 4) % 10):
        ld = _digest(seed, "quote", quote_number, k)
        index = _num(ld, 0) % products
        qty = 1 + _num(ld, 4) % 100
        price = round(5 + _num(ld, 8) % 100_000 / 100, 2)
        lines.append(
            {
                "quoteLineId": f"{quote_number}-{(k + 1) * 10:04d}",
                "catalogNumber": product_reference(index),
                "totalOrderQuantity": qty,
                "itemDescription": _description(seed, index),
                "netPrice": price,
                "totalNetPrice": round(price * qty, 2),
                "unitOfMeasure": "PCE",
            }
        )
    header = {
        "quoteId": f"Q{_num(d, 8) % 10**9:09d}",
        "quoteNumber": quote_number,
        "quoteStatus": ("Draft", "Sent", "Accepted", "Expired")[_num(d, 12) % 4],
        "createdDate": created.isoformat(),
        "expirationDate": (created + dt.timedelta(days=90)).isoformat(),
        "currencyCode": "EUR",
        "totalAmount": round(sum(float(line["totalNetPrice"]) for line in lines), 2),
    }
    return {"quoteHeader": header, "quoteLines": lines}


def iter_days(since: dt.date, until: dt.date) -> Iterator[dt.date]:
    """Calendar days from ``since`` to ``until`` inclusive."""
    day = since
    while day <= until:
        yield day
        day += dt.timedelta(days=1)
