"""The coalesced order poller (:mod:`airflow_provider_schneider.triggers.polls`) against a fake of the
async hook's two paging calls: how many calls a round costs, and who gets which answer."""

from __future__ import annotations

import asyncio
import math
from typing import Any

from airflow_provider_schneider.client.pagination import Page
from airflow_provider_schneider.exceptions import SchneiderApiError
from airflow_provider_schneider.triggers.polls import CountryPoller, order_key


class FakeOrders:
    """``get_first_page`` / ``get_records`` over an in-memory country (the seam the poller uses)."""

    def __init__(self, count: int, per_page: int = 100):
        self.orders = [{"orderNumber": f"FR{i:08d}", "orderStatus": "Open"} for i in range(1, count + 1)]
        self.per_page = per_page
        self.calls: list[tuple[str, int]] = []  # ("listing" | order number, page)
        self.fail_listing: Exception | None = None
        self.fail_lookup: dict[str, Exception] = {}
        self.closed = False

    def _page(self, records: list[dict[str, Any]], number: int) -> Page:
        pages = max(1, math.ceil(len(records) / self.per_page))
        chunk = records[(number - 1) * self.per_page : number * self.per_page]
        return Page(number, pages, len(records), {"orderList": chunk}, [dict(r) for r in chunk])

    def _records(self, params: dict[str, Any] | None) -> tuple[str, list[dict[str, Any]]]:
        prefix = (params or {}).get("order-number")
        if prefix is None:
            if self.fail_listing is not None:
                raise self.fail_listing
            return "listing", self.orders
        if prefix in self.fail_lookup:
            raise self.fail_lookup[prefix]
        return prefix, [o for o in self.orders if o["orderNumber"].startswith(prefix)]

    async def get_first_page(self, path: str, *, records_field: str, params=None, page_size=None) -> Page:
        what, records = self._records(params)
        self.calls.append((what, 1))
        return self._page(records, 1)

    async def get_records(self, path: str, *, records_field: str, params=None, page_size=None, first=None):
        what, records = self._records(params)
        pages = max(1, math.ceil(len(records) / self.per_page))
        self.calls.extend((what, n) for n in range(2, pages + 1))
        return [dict(r) for r in records]

    async def aclose(self) -> None:
        self.closed = True


def run_round(fake: FakeOrders, numbers: list[str | None], *, pages_known: int | None = None):
    """One round for watches on ``numbers``; returns {number: answer} and the calls it made."""

    async def go():
        poller = CountryPoller(fake, "FR")  # type: ignore[arg-type]
        if pages_known is not None:
            import time

            poller._pages = (pages_known, time.monotonic())
        watches = [poller.add(n) for n in numbers]
        answers = await asyncio.wait_for(asyncio.gather(*(w.next() for w in watches)), 5)
        for w in watches:
            poller.remove(w)
        return dict(zip(numbers, answers, strict=True)), poller

    return asyncio.run(go())


def test_one_waiting_order_costs_one_lookup():
    fake = FakeOrders(1234)
    answers, _ = run_round(fake, ["FR00000007"])
    assert fake.calls == [("FR00000007", 1)]
    assert answers["FR00000007"].order["orderNumber"] == "FR00000007"


def test_many_waiting_orders_cost_the_listing_not_one_call_each():
    fake = FakeOrders(1234)  # 13 pages of 100
    numbers = [f"FR{i:08d}" for i in range(1, 1201, 12)]  # 100 orders spread over every page
    answers, poller = run_round(fake, numbers)
    assert len(fake.calls) == 13 and {what for what, _ in fake.calls} == {"listing"}
    assert all(answers[n].order["orderNumber"] == n for n in numbers)
    assert poller.stats == {"rounds": 1, "listing_calls": 13, "lookup_calls": 0}


def test_few_orders_against_a_long_listing_are_looked_up_after_page_one():
    fake = FakeOrders(1234)
    answers, _ = run_round(fake, ["FR00000005", "FR00000900", "FR00001100"])
    # page 1 (it tells the listing has 13 pages, and answers FR00000005), then two lookups
    assert sorted(fake.calls) == [("FR00000900", 1), ("FR00001100", 1), ("listing", 1)]
    assert {n: a.order["orderNumber"] for n, a in answers.items()} == {n: n for n in answers}


def test_a_known_long_listing_is_not_read_again_for_few_orders():
    fake = FakeOrders(1234)
    run_round(fake, ["FR00000005", "FR00000900"], pages_known=13)
    assert sorted(fake.calls) == [("FR00000005", 1), ("FR00000900", 1)]


def test_an_order_missing_from_the_listing_is_looked_up_so_not_found_comes_from_the_api():
    fake = FakeOrders(150)  # 2 pages
    answers, _ = run_round(fake, ["FR00000001", "FR00000002", "FR99999999"])
    assert answers["FR99999999"].order is None and answers["FR99999999"].error is None
    assert ("FR99999999", 1) in fake.calls


def test_identical_waits_share_one_call():
    fake = FakeOrders(1234)
    answers, _ = run_round(fake, ["FR00000042"] * 10)
    assert fake.calls == [("FR00000042", 1)]
    assert {a.order["orderNumber"] for a in answers.values()} == {"FR00000042"}


def test_the_lookup_matches_the_whole_number_not_the_prefix():
    fake = FakeOrders(250)
    answers, _ = run_round(fake, ["fr0000002 "])  # the API filter is a prefix: FR00000020..29 match too
    assert answers["fr0000002 "].order is None


def test_a_failed_listing_reaches_every_waiting_trigger_and_a_failed_lookup_only_its_own():
    fake = FakeOrders(150)
    fake.fail_listing = SchneiderApiError("listing down", conn_id="c", method="GET", path="/x")
    answers, _ = run_round(fake, ["FR00000001", "FR00000002"])
    assert all(isinstance(a.error, SchneiderApiError) for a in answers.values())

    fake = FakeOrders(1234)
    fake.fail_lookup["FR00000900"] = SchneiderApiError("lookup down", conn_id="c", method="GET", path="/x")
    answers, _ = run_round(fake, ["FR00000800", "FR00000900"], pages_known=13)
    assert answers["FR00000800"].order is not None and answers["FR00000900"].error is not None


def test_a_whole_country_watch_gets_every_order_and_answers_order_watches_too():
    fake = FakeOrders(250)
    answers, _ = run_round(fake, [None, "FR00000100"])
    assert len(answers[None].orders) == 250 and order_key("FR00000100") in answers[None].orders
    assert answers["FR00000100"].order["orderNumber"] == "FR00000100"
    assert {what for what, _ in fake.calls} == {"listing"}


def test_the_poller_stops_with_its_last_watch():
    async def go():
        fake = FakeOrders(10)
        poller = CountryPoller(fake, "FR")  # type: ignore[arg-type]
        watch = poller.add("FR00000001")
        await watch.next()
        task = poller._task
        assert task is not None and not task.done()
        assert poller.remove(watch) is True
        await asyncio.sleep(0)
        assert task.cancelled() or task.done()

    asyncio.run(go())


def test_a_listing_answers_a_watch_that_was_not_due():
    """A watch sleeping until its next poll still gets its order when a listing for others brings it."""

    async def go():
        fake = FakeOrders(150)
        poller = CountryPoller(fake, "FR")  # type: ignore[arg-type]
        sleeper = poller.add("FR00000003")
        await sleeper.next()
        sleeper.poll_in(3600)
        others = [poller.add(f"FR{i:08d}") for i in (10, 20, 140)]
        await asyncio.gather(*(w.next() for w in others))
        got = await asyncio.wait_for(sleeper.next(), 1)
        for w in [sleeper, *others]:
            poller.remove(w)
        return got

    assert asyncio.run(go()).order["orderNumber"] == "FR00000003"
