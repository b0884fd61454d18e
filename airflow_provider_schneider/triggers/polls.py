"""Coalesced order polls: in a triggerer process, one poller per connection and country answers every
trigger waiting on that country's orders.

A waiting trigger holds a :class:`Watch` (an order number, or ``None`` for every order of the country) and
says when it wants its next answer. The poller gathers the watches that are due and asks the API the
cheapest way: one lookup (``order-number`` filter) per distinct order when they are few, the country's
listing (page 1, then every other page at once under the client's cap) when the page count the API reports
is no larger than the number of orders waiting. A listing answers every watch of the country, due or not,
so a trigger learns its order moved one round earlier; an order the listing did not show is looked up
(a listing is not a snapshot: an order can move between pages while they are read), so "not found" is
always said by the API itself. Identical waits share one answer.

Everything runs on the triggerer's event loop (no thread per poll); one :class:`SchneiderAsyncHook` per
connection and loop, closed when the last watch of that connection ends; a poller stops with its last watch,
so a cleared task or a triggerer shutdown (which cancels the triggers) leaves nothing running.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import weakref
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow_provider_schneider.hooks.schneider_async import SchneiderAsyncHook
from airflow_provider_schneider.pulls.order_lookup import ORDER_RESOURCE
from airflow_provider_schneider.resources import get_resource

log = logging.getLogger(__name__)

#: A page count learned from a listing is trusted this long before page 1 is read again to decide.
PAGE_COUNT_TTL = 600.0


def order_key(order_number: Any) -> str:
    return str(order_number or "").strip().casefold()


@dataclasses.dataclass(frozen=True)
class Answer:
    """One round's answer for one watch: the order (``None``: the API does not know it), every order of the
    country (a whole-country watch), or the error that ended the round's call."""

    order: dict[str, Any] | None = None
    orders: Mapping[str, dict[str, Any]] | None = None
    error: BaseException | None = None


class Watch:
    """One trigger's interest in one order (or, ``order_number=None``, in every order of the country)."""

    def __init__(self, poller: CountryPoller, order_number: str | None):
        self.poller = poller
        self.order_number = order_number.strip() if order_number else None
        self.key = order_key(order_number) if order_number else None
        self.due = time.monotonic()  # the first answer is wanted at once
        self._answer: Answer | None = None
        self._ready = asyncio.Event()

    @property
    def answered(self) -> bool:
        return self._answer is not None

    def deliver(self, answer: Answer) -> None:
        self._answer = answer
        self._ready.set()

    async def next(self) -> Answer:
        """The next answer (the freshest one, when several came since the last call)."""
        await self._ready.wait()
        self._ready.clear()
        answer, self._answer = self._answer, None
        assert answer is not None
        return answer

    def poll_in(self, seconds: float) -> None:
        """The next answer is wanted ``seconds`` from now (or sooner, if a listing brings it)."""
        self.due = time.monotonic() + max(0.0, seconds)
        self.poller.wake()


class CountryPoller:
    """Polls one country's orders for every watch of one connection in one event loop."""

    def __init__(self, hook: SchneiderAsyncHook, country: str):
        self.hook = hook
        self.country = country
        resource = get_resource(ORDER_RESOURCE)
        assert resource.records_field is not None
        self.path = resource.render_path({"country": country})
        self.records_field = resource.records_field
        self.page_size = resource.max_page_size or None
        self.watches: set[Watch] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pages: tuple[int, float] | None = None  # the listing's page count, and when it was read
        #: rounds, listing pages and lookups asked (tests and benchmarks read them).
        self.stats = {"rounds": 0, "listing_calls": 0, "lookup_calls": 0}

    def add(self, order_number: str | None) -> Watch:
        watch = Watch(self, order_number)
        self.watches.add(watch)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"schneider-poll-{self.country}")
        self.wake()
        return watch

    def remove(self, watch: Watch) -> bool:
        """Forget ``watch``; ``True`` when it was the last one (the poller has stopped)."""
        self.watches.discard(watch)
        if self.watches:
            return False
        if self._task is not None:
            self._task.cancel()
            self._task = None
        return True

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while self.watches:
            now = time.monotonic()
            due = [w for w in self.watches if w.due <= now and not w.answered]
            if due:
                try:
                    await self._round(due)
                except Exception as exc:
                    log.exception("Order poll of %s failed", self.country)
                    for watch in due:
                        if not watch.answered:
                            watch.deliver(Answer(error=exc))
                continue
            waiting = [w.due for w in self.watches if not w.answered]
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, min(waiting) - now) if waiting else None)

    # -- one round ----------------------------------------------------------------------------------------------

    def _listing_pays(self, orders: int) -> bool:
        """Whether to read the country's listing for ``orders`` distinct orders (page 1 first when the page
        count is unknown or old: it answers the orders it shows, and says what the rest would cost)."""
        if orders < 2:
            return False
        known = self._known_pages()
        return known is None or known <= orders

    async def _round(self, due: list[Watch]) -> None:
        self.stats["rounds"] += 1
        numbers = {w.key: w.order_number for w in due if w.key is not None and w.order_number is not None}
        whole = any(w.key is None for w in due)
        found: dict[str, dict[str, Any]] = {}
        listed = False
        try:
            if whole or self._listing_pays(len(numbers)):
                listed = await self._read_listing(found, complete=whole, orders=len(numbers))
        except Exception as exc:  # noqa: BLE001 - handed to every trigger that waited on this round
            log.warning("Order Status listing of %s failed: %s", self.country, exc)
            for watch in due:
                watch.deliver(Answer(error=exc))
            return
        missing = [number for key, number in numbers.items() if key not in found]
        self.stats["lookup_calls"] += len(missing)
        looked = await asyncio.gather(*(self._lookup(number) for number in missing), return_exceptions=True)
        answers: dict[str, Answer] = {}
        for number, result in zip(missing, looked, strict=True):
            if isinstance(result, BaseException):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                answers[order_key(number)] = Answer(error=result)
            else:
                answers[order_key(number)] = Answer(order=result)
        due_set = set(due)
        for watch in list(self.watches):
            if watch.key is None:
                if listed:
                    watch.deliver(Answer(orders=found))
            elif watch.key in found:  # due or not: a fresher status than the one it holds
                watch.deliver(Answer(order=dict(found[watch.key])))
            elif watch in due_set and watch.key in answers:
                watch.deliver(answers[watch.key])
        log.debug(
            "Polled %d order(s) of %s for %d watch(es): %s", len(numbers), self.country, len(due), dict(self.stats)
        )

    async def _read_listing(self, found: dict[str, dict[str, Any]], *, complete: bool, orders: int) -> bool:
        """Page 1 of the country's listing, and every other page when they are worth it (``True`` then).

        With a fresh page count and the listing sure to pay, every page is asked at once (a round trip
        less than page 1 first: 13 pages at 10 in flight take two latencies, not three)."""
        hook = self.hook
        known = self._known_pages()
        if known is not None and (complete or known <= orders):
            pages = await hook.get_pages(
                self.path, records_field=self.records_field, page_size=self.page_size, pages_hint=known
            )
            self.stats["listing_calls"] += max(known, len(pages))
            self._pages = (pages[0].total_pages, time.monotonic())
            records = [record for page in pages for record in page.records or []]
            listed = True
        else:
            first = await hook.get_first_page(self.path, records_field=self.records_field, page_size=self.page_size)
            self.stats["listing_calls"] += 1
            self._pages = (first.total_pages, time.monotonic())
            records = list(first.records or [])
            listed = complete or first.total_pages <= max(1, orders)
            if listed and first.total_pages > 1:
                self.stats["listing_calls"] += first.total_pages - 1
                records = await hook.get_records(
                    self.path, records_field=self.records_field, page_size=self.page_size, first=first
                )
        for record in records:
            if isinstance(record, Mapping):
                found.setdefault(order_key(record.get("orderNumber")), dict(record))
        return listed

    def _known_pages(self) -> int | None:
        if self._pages is None or time.monotonic() - self._pages[1] > PAGE_COUNT_TTL:
            return None
        return self._pages[0]

    async def _lookup(self, order_number: str) -> dict[str, Any] | None:
        """The order whose number equals ``order_number`` (the API filter matches a prefix), or ``None``."""
        hook, params = self.hook, {"order-number": order_number}
        first = await hook.get_first_page(self.path, records_field=self.records_field, params=params)
        records: list[Any] = list(first.records or [])
        if first.total_pages > 1:
            records = await hook.get_records(self.path, records_field=self.records_field, params=params, first=first)
        wanted = order_key(order_number)
        for record in records:
            if isinstance(record, Mapping) and order_key(record.get("orderNumber")) == wanted:
                return dict(record)
        return None


class _Board:
    """The pollers and hooks of one event loop."""

    def __init__(self) -> None:
        self.pollers: dict[tuple[str, str], CountryPoller] = {}
        self.hooks: dict[str, SchneiderAsyncHook] = {}
        self.closing: set[asyncio.Task[None]] = set()

    def poller(self, conn_id: str, country: str) -> CountryPoller:
        key = (conn_id, country.strip().upper())
        found = self.pollers.get(key)
        if found is None:
            hook = self.hooks.get(conn_id)
            if hook is None:
                hook = self.hooks[conn_id] = SchneiderAsyncHook(conn_id)
            found = self.pollers[key] = CountryPoller(hook, key[1])
        return found

    def leave(self, conn_id: str, watch: Watch) -> None:
        poller = watch.poller
        if not poller.remove(watch):
            return
        self.pollers.pop((conn_id, poller.country), None)
        if any(key[0] == conn_id for key in self.pollers):
            return
        hook = self.hooks.pop(conn_id, None)
        if hook is not None:  # closed in the background: a cancelled trigger must not wait for it
            task = asyncio.get_running_loop().create_task(hook.aclose())
            self.closing.add(task)
            task.add_done_callback(self.closing.discard)


_BOARDS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Board] = weakref.WeakKeyDictionary()


def board() -> _Board:
    """The running event loop's board."""
    loop = asyncio.get_running_loop()
    found = _BOARDS.get(loop)
    if found is None:
        found = _BOARDS[loop] = _Board()
    return found


@contextlib.asynccontextmanager
async def watching(conn_id: str, country: str, order_number: str | None) -> AsyncIterator[Watch]:
    """A watch on ``order_number`` of ``country`` (every order when ``None``) for the duration of the block."""
    here = board()
    watch = here.poller(conn_id, country).add(order_number)
    try:
        yield watch
    finally:
        here.leave(conn_id, watch)
