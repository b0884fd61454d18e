"""The hash every generated record is keyed on, so a record is a pure function of ``seed`` and its key.

One module for it so orders, the catalogue and the per-reference answers draw from the same function and
stay reproducible by tests (which compute the exact records the server sends).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator

#: Orders and quotes are dated within two years of this day.
BASE_DATE = dt.date(2023, 1, 1)


def _digest(*parts: object) -> bytes:
    return hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=32).digest()


def _num(digest: bytes, start: int, length: int = 4) -> int:
    return int.from_bytes(digest[start : start + length], "big")


def iter_days(since: dt.date, until: dt.date) -> Iterator[dt.date]:
    """Calendar days from ``since`` to ``until`` inclusive."""
    day = since
    while day <= until:
        yield day
        day += dt.timedelta(days=1)
