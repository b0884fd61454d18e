"""Records that drift from day to day, as real APIs do (knob ``drift="daily"``; the day is ``today``).

A day's drift is a pure function of its date (the day number modulo :data:`CYCLE`) and of the record, so a
30-day backfill meets every kind of drift three times and a test knows what each day sent. The kinds are
what gateways and evolving APIs do to a record shape that nobody changed on purpose:

0. as generated; 1. an optional field null in every record; 2. quantities with decimals; 3. a new field;
4. a field missing; 5. an id as a number; 6. numbers as numeric text; 7. amounts that happen to be whole
(integers in a decimal field); 8. a value that fits no type (``"n/a"`` in an amount) in some records;
9. a nested field gains a sub-field (a new key inside ``delivery``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

DRIFT_STYLES = ("none", "daily")
CYCLE = 10
KINDS = (
    "none",
    "all_null",
    "decimal_quantities",
    "new_field",
    "missing_field",
    "id_as_number",
    "numbers_as_text",
    "whole_amounts",
    "unfit_value",
    "nested_new_field",
)


def kind_of_day(day: dt.date) -> str:
    """The drift ``day`` sends."""
    return KINDS[day.toordinal() % CYCLE]


def drifted_order(order: dict[str, Any], day: dt.date, index: int) -> dict[str, Any]:
    """``order`` as the API sends it on ``day`` (a copy). Every order also carries a nested ``delivery``."""
    record = dict(order)
    lines = int(record.get("numberOfLines") or 1)
    record["delivery"] = {"mode": ("standard", "express")[index % 2], "days": 1 + index % 5}
    kind = kind_of_day(day)
    if kind == "all_null":
        record["customerPurchaseOrder"] = None
    elif kind == "decimal_quantities":
        record["numberOfLines"] = lines + 0.5
    elif kind == "new_field":
        record["deliveryBlock"] = ("none", "credit", "export")[index % 3]
    elif kind == "missing_field":
        record.pop("currency", None)
    elif kind == "id_as_number":
        record["purchaserId"] = int(str(record["purchaserId"]))
    elif kind == "numbers_as_text":
        record["totalAmount"] = f"{record['totalAmount']}"
        record["numberOfLines"] = str(lines)
    elif kind == "whole_amounts":
        record["totalAmount"] = int(float(str(record["totalAmount"])))
    elif kind == "unfit_value" and index % 4 == 0:
        record["totalAmount"] = "n/a"
    elif kind == "nested_new_field":
        record["delivery"] = {**record["delivery"], "carrier": "DHL"}
    return record
