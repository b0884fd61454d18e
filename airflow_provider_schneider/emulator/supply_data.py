"""Per-reference answers: stock levels, delivery availability, net prices and quotes.

Apart from the catalogue because these depend on a day (``today``) and a quantity as well as the product,
and are the answers of four APIs (Stock Level Checker, Product Availability, Net Price, Quote), not of the
catalogue's.
"""

from __future__ import annotations

import datetime as dt

from .catalog_data import _description, product_reference
from .seeded import BASE_DATE, _digest, _num

_PLANTS = ("FR10", "DE20", "ES30", "IT40", "SE50", "CN60")


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
    created = BASE_DATE + dt.timedelta(days=_num(d, 0) % 730)
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
