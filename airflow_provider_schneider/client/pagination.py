"""Page-number pagination that stops on ``totalNumberOfPages`` (Order Status never returns an empty page),
cross-checked against ``totalNumberOfRecords`` so a lying page count never makes a pull loop.

Page 1 says how many pages exist; pages 2..N are then fetched concurrently through a bounded window and
yielded strictly in page order, so records come out in a stable order and memory stays flat.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from airflow_provider_schneider.client.concurrency import ordered_map

log = logging.getLogger(__name__)

FetchPage = Callable[[int], Any]
RaiseError = Callable[[str, int], Exception]
#: Given page 1 and a way to fetch (and check) any other page, how many leading pages the caller already
#: holds (a resumed pull, which may re-read the last page it holds to prove nothing moved): 0 for none.
HeldPages = Callable[["Page", Callable[[int], "Page"]], int]


@dataclass(frozen=True)
class Page:
    number: int
    total_pages: int
    total_records: int | None
    body: dict[str, Any]
    #: The page's records, when the pull said which field holds them.
    records: list[Any] | None = None


def _as_int(value: Any) -> int | None:
    """Counters may arrive as numbers or numeric strings; anything else is ``None``."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number != int(number):
        return None
    return int(number)


def dig(body: Any, records_field: str) -> Any:
    """``body[records_field]``; a dotted field (``data.items``) walks nested objects."""
    value = body
    for part in records_field.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def records_of(page: Page, records_field: str, raise_error: RaiseError) -> list[Any]:
    """The record list of a page; a missing field is only fine when the API said there are no records."""
    if page.records is not None:
        return page.records
    records = dig(page.body, records_field)
    if records is None and (page.total_records == 0 or page.total_pages == 0):
        return []
    if not isinstance(records, list):
        raise raise_error(f"field '{records_field}' is missing or not a list", page.number)
    return records


class PageCounters:
    """Reads and checks the ``pagination`` block (and, given ``records_field``, the records) of a response."""

    def __init__(self, error: RaiseError, records_field: str | None = None):
        self.error = error
        self.records_field = records_field

    def read(self, body: Any, page: int) -> Page:
        if not isinstance(body, dict):
            raise self.error(f"expected a JSON object, got {type(body).__name__}", page)
        block = body.get("pagination")
        if not isinstance(block, dict):
            raise self.error("response has no 'pagination' block; cannot tell how many pages exist", page)
        total_pages = _as_int(block.get("totalNumberOfPages"))
        if total_pages is None or total_pages < 0:
            raise self.error(f"pagination.totalNumberOfPages is {block.get('totalNumberOfPages')!r}, not a count", page)
        total_records = _as_int(block.get("totalNumberOfRecords"))
        if total_records is not None and total_records < 0:
            raise self.error(f"pagination.totalNumberOfRecords is {total_records}, not a count", page)
        result = Page(page, total_pages, total_records, body)
        if self.records_field is None:
            return result
        return Page(page, total_pages, total_records, body, records_of(result, self.records_field, self.error))


def last_page(first: Page, max_pages: int, error: RaiseError) -> int:
    """The last page worth fetching, after checking page 1's counters against each other.

    ``totalNumberOfRecords`` and the size of page 1 (the effective page size: a gateway may clamp the one
    asked for) say how many pages the records need; a page count that disagrees, or one beyond
    ``max_pages``, is refused: it cannot be told which of the two numbers lies.
    """
    pages, records = first.total_pages, first.total_records
    if records == 0:
        if pages > 1:
            log.warning("Page 1 announces %d pages but 0 records: nothing to fetch beyond page 1", pages)
        return min(pages, 1)
    if pages > max_pages:
        raise error(
            f"pagination announces {pages} pages, more than the connection's max_pages={max_pages}; "
            "refusing to trust it (raise 'max_pages' if the pull is really that large)",
            1,
        )
    if records is None and first.records == [] and pages > 1:
        log.warning("Page 1 is empty and announces %d pages but no record count: nothing can follow it", pages)
        return 1
    if records is None or first.records is None or pages <= 1:
        return pages
    per_page = len(first.records)
    if per_page == 0:
        raise error(f"page 1 is empty but pagination announces {records} records on {pages} pages", 1)
    needed = math.ceil(records / per_page)
    if needed != pages:
        raise error(
            f"inconsistent pagination: {records} records at {per_page} per page need {needed} page(s), "
            f"but totalNumberOfPages is {pages}",
            1,
        )
    return pages


def iter_pages(
    fetch: FetchPage,
    *,
    counters: PageCounters,
    max_concurrency: int = 1,
    max_pages: int = 100_000,
    held: HeldPages | None = None,
) -> Iterator[Page]:
    """Yield every page once, in order. Pages 2..N run ``max_concurrency`` at a time once page 1 is in.

    ``held`` (a resumed pull) is asked, once page 1 is in and checked, how many leading pages the caller
    already has; those are not yielded and pages after them are fetched (page 1 is always read: it carries
    the totals a resume is checked against).

    A later page whose ``totalNumberOfPages`` differs from page 1's, or whose ``pageNumber`` is not the one
    asked for, is an error: the data moved under us and records could be lost or duplicated. Without a
    record count, an empty page before the announced last one ends the pull (nothing follows it).
    """
    first = counters.read(fetch(1), 1)
    last = last_page(first, max_pages, counters.error)
    # Some gateways count pages from 0: compare echoes relative to page 1's, not to our own numbering.
    first_echo = _as_int(first.body["pagination"].get("pageNumber"))
    offset = 0 if first_echo is None else first_echo - 1

    def checked(number: int) -> Page:
        page = counters.read(fetch(number), number)
        if page.total_pages != first.total_pages:
            raise counters.error(
                f"totalNumberOfPages changed from {first.total_pages} to {page.total_pages} during the pull", number
            )
        echoed = _as_int(page.body["pagination"].get("pageNumber"))
        if echoed is not None and echoed - offset != number:
            raise counters.error(f"asked for page {number} but the API returned page {echoed - offset}", number)
        if page.total_records != first.total_records and None not in (page.total_records, first.total_records):
            # Same page count, so nothing is skipped past the end, but records may have shifted between
            # pages (a duplicate or a miss at a page boundary). Worth a line in the log, not a failure.
            log.warning(
                "totalNumberOfRecords changed from %s to %s during the pull (page %d); records may have shifted",
                first.total_records,
                page.total_records,
                number,
            )
        return page

    skip = min(held(first, checked), last) if held is not None else 0
    if skip < 1:
        yield first
    start = max(2, skip + 1)
    if last < start:
        return

    for page in ordered_map(checked, range(start, last + 1), concurrency=max_concurrency):
        yield page
        if page.records == [] and page.number < last and first.total_records is None:
            log.warning("Page %d of %d is empty: stopping, no records can follow an empty page", page.number, last)
            return
