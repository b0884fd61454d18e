"""Page-number pagination and the ordered fan-out beneath it, on a fake API: ``iter_pages`` is given a function
``page number -> JSON body`` shaped like Order Status's answers, and nothing else. No HTTP, no sleeps: the
concurrency tests order their threads with events (each wait has a timeout, so a broken pager fails, never
hangs)."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_schneider.client.concurrency import ordered_map
from airflow_provider_schneider.client.pagination import Page, PageCounters, iter_pages, last_page

#: How long a test waits for another thread before it counts as a failure (never reached when all is well).
WAIT = 5.0


class PageError(Exception):
    def __init__(self, message: str, page: int):
        super().__init__(f"{message} (page {page})")
        self.page = page


class FakeOrders:
    """Order Status as a function: ``records`` orders, ``per_page`` a page. Like the real API, a page beyond
    the last answers the last page again (the trap a loop waiting for an empty page falls into).

    ``echo_base``: the ``pageNumber`` page 1 echoes (0 for gateways counting from 0); ``as_strings``: the
    counters arrive as numeric strings; ``edit(number, body)`` changes one answer (a lying gateway)."""

    def __init__(
        self,
        records: int = 25,
        per_page: int = 10,
        *,
        echo_base: int | None = 1,
        as_strings: bool = False,
        with_record_count: bool = True,
        edit: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
    ):
        self.orders = [{"orderNumber": f"FR{i:08d}"} for i in range(records)]
        self.per_page, self.echo_base, self.as_strings = per_page, echo_base, as_strings
        self.with_record_count, self.edit = with_record_count, edit
        self.calls: list[int] = []

    @property
    def pages(self) -> int:
        return math.ceil(len(self.orders) / self.per_page)

    def body(self, number: int) -> dict[str, Any]:
        shown = max(1, min(number, self.pages))  # the trap: past the end, the last page again
        start = (shown - 1) * self.per_page
        counters: dict[str, Any] = {"totalNumberOfPages": self.pages}
        if self.with_record_count:
            counters["totalNumberOfRecords"] = len(self.orders)
        if self.echo_base is not None:
            counters["pageNumber"] = shown - 1 + self.echo_base
        if self.as_strings:
            counters = {key: str(value) for key, value in counters.items()}
        return {"orderList": self.orders[start : start + self.per_page], "pagination": counters}

    def __call__(self, number: int) -> dict[str, Any]:
        self.calls.append(number)
        body = self.body(number)
        return self.edit(number, body) if self.edit else body


def counters(records_field: str | None = "orderList") -> PageCounters:
    return PageCounters(PageError, records_field)


def pull(api: Callable[[int], Any], **kwargs: Any) -> list[Page]:
    return list(iter_pages(api, counters=counters(), **kwargs))


def records(pages: list[Page]) -> list[Any]:
    return [record for page in pages for record in page.records or []]


# -- every page once, in order, never past the last -------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_every_page_once_in_order_and_never_past_the_last(concurrency):
    api = FakeOrders(records=95, per_page=10)
    pages = pull(api, max_concurrency=concurrency)
    assert [p.number for p in pages] == list(range(1, 11))
    assert records(pages) == api.orders
    assert sorted(api.calls) == list(range(1, 11))  # each page asked once, page 11 never


def test_the_last_page_trap_never_loops_and_never_duplicates():
    api = FakeOrders(records=25, per_page=10)
    assert api.body(4)["orderList"] == api.body(3)["orderList"] != []  # the fake keeps the API's trap
    pages = pull(api)
    numbers = [r["orderNumber"] for r in records(pages)]
    assert numbers == [f"FR{i:08d}" for i in range(25)] and len(set(numbers)) == 25
    assert api.calls == [1, 2, 3]


def test_a_page_count_beyond_the_data_meets_the_trap_and_is_refused():
    """No record count to cross-check: page 4 of 3 answers page 3 again, and its echo gives it away."""

    def lie(number: int, body: dict) -> dict:
        body["pagination"]["totalNumberOfPages"] = 5
        return body

    api = FakeOrders(records=25, per_page=10, with_record_count=False, edit=lie)
    got: list[Page] = []
    with pytest.raises(PageError, match="asked for page 4 but the API returned page 3") as caught:
        got.extend(iter_pages(api, counters=counters()))
    assert caught.value.page == 4
    assert [p.number for p in got] == [1, 2, 3]  # nothing of the repeated page was yielded


def test_counters_may_arrive_as_numeric_strings():
    api = FakeOrders(records=25, per_page=10, as_strings=True)
    pages = pull(api)
    assert [(p.number, p.total_pages, p.total_records) for p in pages] == [(1, 3, 25), (2, 3, 25), (3, 3, 25)]
    assert records(pages) == api.orders


@pytest.mark.parametrize(
    ("pages", "records_count", "error"),
    [
        ("three", 25, "totalNumberOfPages is 'three', not a count"),
        (True, 25, "totalNumberOfPages is True, not a count"),
        ("2.5", 25, "totalNumberOfPages is '2.5', not a count"),
        (-1, 25, "totalNumberOfPages is -1, not a count"),
        (None, 25, "totalNumberOfPages is None, not a count"),
        (3, -4, "totalNumberOfRecords is -4, not a count"),
    ],
)
def test_counters_that_are_not_counts_are_refused(pages, records_count, error):
    def edit(number: int, body: dict) -> dict:
        body["pagination"].update(totalNumberOfPages=pages, totalNumberOfRecords=records_count)
        return body

    with pytest.raises(PageError, match=error):
        pull(FakeOrders(edit=edit))


def test_a_float_count_that_is_whole_is_a_count():
    def edit(number: int, body: dict) -> dict:
        body["pagination"].update(totalNumberOfPages=3.0, totalNumberOfRecords="25.0")
        return body

    assert records(pull(FakeOrders(edit=edit))) == FakeOrders().orders


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([1, 2], "expected a JSON object, got list"),
        ({"orderList": []}, "response has no 'pagination' block"),
        ({"orderList": [], "pagination": "3 pages"}, "response has no 'pagination' block"),
        ({"pagination": {"totalNumberOfPages": 1, "totalNumberOfRecords": 2}}, "field 'orderList' is missing"),
        ({"orderList": {}, "pagination": {"totalNumberOfPages": 1}}, "field 'orderList' is missing or not a list"),
    ],
)
def test_an_answer_that_is_no_page_is_refused(body, error):
    with pytest.raises(PageError, match=error):
        pull(lambda number: body)


# -- page numbers echoed from 0 --------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_gateway_counting_pages_from_zero_is_followed(concurrency):
    api = FakeOrders(records=45, per_page=10, echo_base=0)
    assert api.body(1)["pagination"]["pageNumber"] == 0
    pages = pull(api, max_concurrency=concurrency)
    assert [p.number for p in pages] == [1, 2, 3, 4, 5]
    assert records(pages) == api.orders


def test_a_zero_based_echo_that_skips_is_still_caught():
    def skip(number: int, body: dict) -> dict:
        if number == 3:
            body["pagination"]["pageNumber"] = 3  # page 4, 0-based
        return body

    with pytest.raises(PageError, match="asked for page 3 but the API returned page 4"):
        pull(FakeOrders(records=45, per_page=10, echo_base=0, edit=skip))


def test_pages_without_an_echo_are_taken_as_asked():
    api = FakeOrders(records=25, per_page=10, echo_base=None)
    assert records(pull(api)) == api.orders


# -- the counters of page 1, checked against each other ---------------------------------------------------------


def test_inconsistent_totals_are_refused_after_page_one():
    def lie(number: int, body: dict) -> dict:
        body["pagination"]["totalNumberOfPages"] = 4  # 25 records at 10 a page need 3
        return body

    api = FakeOrders(records=25, per_page=10, edit=lie)
    with pytest.raises(
        PageError,
        match=r"inconsistent pagination: 25 records at 10 per page need 3 page\(s\), but totalNumberOfPages is 4",
    ):
        pull(api)
    assert api.calls == [1]


def test_a_gateway_that_clamps_the_page_size_is_measured_by_page_one():
    api = FakeOrders(records=23, per_page=5)  # asked for more, the gateway sends 5 a page
    assert records(pull(api)) == api.orders
    assert api.calls == [1, 2, 3, 4, 5]


def test_a_page_count_beyond_max_pages_is_refused_before_any_other_call():
    api = FakeOrders(records=95, per_page=10)
    with pytest.raises(PageError, match=r"announces 10 pages, more than the connection's max_pages=9"):
        pull(api, max_pages=9)
    assert api.calls == [1]
    assert [p.number for p in pull(FakeOrders(records=95, per_page=10), max_pages=10)][-1] == 10


def test_no_records_is_one_call_whatever_the_page_count(caplog):
    def edit(number: int, body: dict) -> dict:
        body["pagination"].update(totalNumberOfPages=7, totalNumberOfRecords=0)
        body.pop("orderList")  # a missing list is fine when the API says there is nothing
        return body

    api = FakeOrders(records=0, edit=edit)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_schneider.client.pagination"):
        pages = pull(api, max_pages=3)  # 7 > max_pages, but 0 records: nothing to refuse
    assert [(p.number, p.records) for p in pages] == [(1, [])]
    assert api.calls == [1]
    assert "Page 1 announces 7 pages but 0 records" in caplog.text


def test_an_empty_first_page_that_announces_records_is_refused():
    def edit(number: int, body: dict) -> dict:
        body["orderList"] = []
        return body

    with pytest.raises(PageError, match="page 1 is empty but pagination announces 25 records on 3 pages"):
        pull(FakeOrders(records=25, per_page=10, edit=edit))


def test_last_page_trusts_a_lone_page_count_without_records():
    page = Page(1, 6, None, {}, ["x"])
    assert last_page(page, 100, PageError) == 6
    assert last_page(Page(1, 1, 9, {}, ["x"] * 9), 100, PageError) == 1
    assert last_page(Page(1, 0, None, {}, []), 100, PageError) == 0


# -- the data moving during the pull ----------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_page_count_that_changes_mid_pull_is_refused(concurrency):
    def grow(number: int, body: dict) -> dict:
        if number == 3:
            body["pagination"]["totalNumberOfPages"] = 6
        return body

    got: list[Page] = []
    with pytest.raises(PageError, match=r"totalNumberOfPages changed from 5 to 6 during the pull \(page 3\)"):
        got.extend(iter_pages(FakeOrders(records=45, edit=grow), counters=counters(), max_concurrency=concurrency))
    assert [p.number for p in got] == [1, 2]  # never a page of the changed data


def test_a_record_count_that_changes_mid_pull_is_a_warning_not_a_failure(caplog):
    def shift(number: int, body: dict) -> dict:
        if number == 2:
            body["pagination"]["totalNumberOfRecords"] = 24  # still 3 pages: nothing lost past the end
        return body

    with caplog.at_level(logging.WARNING, logger="airflow_provider_schneider.client.pagination"):
        pages = pull(FakeOrders(records=25, edit=shift))
    assert len(records(pages)) == 25
    assert "totalNumberOfRecords changed from 25 to 24 during the pull (page 2)" in caplog.text


def test_an_empty_page_before_the_end_without_a_record_count_ends_the_pull(caplog):
    def hollow(number: int, body: dict) -> dict:
        if number == 3:
            body["orderList"] = []
        return body

    api = FakeOrders(records=45, per_page=10, with_record_count=False, edit=hollow)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_schneider.client.pagination"):
        pages = pull(api)
    assert [p.number for p in pages] == [1, 2, 3]
    assert api.calls == [1, 2, 3]  # one page at a time: nothing asked after the empty one
    assert "Page 3 of 5 is empty: stopping" in caplog.text


def test_an_empty_page_with_a_record_count_does_not_end_the_pull():
    def hollow(number: int, body: dict) -> dict:
        if number == 3:
            body["orderList"] = []
        return body

    pages = pull(FakeOrders(records=45, per_page=10, edit=hollow))
    assert [p.number for p in pages] == [1, 2, 3, 4, 5]  # the count says more follows: it is fetched


# -- a resume holds leading pages ----------------------------------------------------------------------------------


def test_held_pages_are_skipped_and_page_one_is_still_read():
    api = FakeOrders(records=55, per_page=10)
    seen: list[Page] = []

    def held(first: Page, fetch: Callable[[int], Page]) -> int:
        seen.append(first)
        seen.append(fetch(3))  # a resume re-reads its boundary page
        return 3

    pages = pull(api, held=held)
    assert [p.number for p in pages] == [4, 5, 6]
    assert records(pages) == api.orders[30:]
    assert api.calls == [1, 3, 4, 5, 6]  # page 1 for the totals, the boundary, then the rest
    first, boundary = seen
    assert (first.number, first.total_pages, first.total_records) == (1, 6, 55)
    assert boundary.number == 3 and boundary.records == api.orders[20:30]  # a checked page, records read


def test_the_fetch_given_to_held_checks_pages_like_any_other():
    def moved(number: int, body: dict) -> dict:
        if number == 2:
            body["pagination"]["totalNumberOfPages"] = 9
        return body

    def held(first: Page, fetch: Callable[[int], Page]) -> int:
        fetch(2)
        return 2

    with pytest.raises(PageError, match="totalNumberOfPages changed from 6 to 9"):
        pull(FakeOrders(records=55, per_page=10, edit=moved), held=held)


def test_held_pages_are_capped_at_the_last_page():
    api = FakeOrders(records=25, per_page=10)
    assert pull(api, held=lambda first, fetch: 99) == []
    assert api.calls == [1]


def test_held_none_yields_page_one_too():
    api = FakeOrders(records=25, per_page=10)
    assert [p.number for p in pull(api, held=lambda first, fetch: 0)] == [1, 2, 3]
    assert api.calls == [1, 2, 3]


# -- concurrency: order kept whatever finishes first ----------------------------------------------------------------


def test_pages_keep_their_order_when_page_two_finishes_last():
    api = FakeOrders(records=45, per_page=10)
    others_done = {n: threading.Event() for n in (3, 4, 5)}
    finished: list[int] = []

    def fetch(number: int) -> dict:
        if number == 2:  # held back until every later page is in
            assert all(event.wait(WAIT) for event in others_done.values()), "pages 3-5 never ran beside page 2"
        body = api(number)
        finished.append(number)
        if number in others_done:
            others_done[number].set()
        return body

    pages = pull(fetch, max_concurrency=4)
    assert finished[0] == 1 and finished[-1] == 2  # page 2 really came back last ...
    assert [p.number for p in pages] == [1, 2, 3, 4, 5]  # ... and was yielded in its place
    assert records(pages) == api.orders


def test_ordered_map_keeps_input_order_when_the_first_call_finishes_last():
    later = threading.Event()
    done: list[int] = []

    def call(item: int) -> int:
        if item == 0:
            assert later.wait(WAIT)
        done.append(item)
        if item == 2:
            later.set()
        return item * 10

    assert list(ordered_map(call, range(3), concurrency=3)) == [0, 10, 20]
    assert done[-1] == 0


def test_ordered_map_reads_its_input_a_bounded_window_ahead():
    drawn: list[int] = []

    def items():
        for i in range(1000):
            drawn.append(i)
            yield i

    results = ordered_map(lambda i: i, items(), concurrency=3)
    assert next(results) == 0
    assert len(drawn) <= 2 * 3 + 1  # at most the window of 6, plus the one that replaced the result taken
    assert [next(results) for _ in range(3)] == [1, 2, 3]
    assert len(drawn) <= 2 * 3 + 4
    results.close()
    assert len(drawn) < 1000


def test_ordered_map_sends_fewer_ahead_while_answers_wait_for_the_consumer():
    """Answers that are ready before the consumer asks (a fast gateway, a slow consumer): the window
    shrinks to one ahead, so no more threads fight over the CPU than the consumer can use."""
    drawn: list[int] = []

    def items():
        for i in range(1000):
            drawn.append(i)
            yield i

    done = threading.Condition()
    finished = 0

    def call(i: int) -> int:
        nonlocal finished
        with done:
            finished += 1
            done.notify_all()
        return i

    results = ordered_map(call, items(), concurrency=4)
    for expected in range(50):
        assert next(results) == expected
        with done:  # the consumer is the slow side: every answer sent is in before it asks again
            assert done.wait_for(lambda: finished >= len(drawn), timeout=WAIT)
    assert len(drawn) <= 50 + 2, f"{len(drawn) - 50} drawn ahead"
    results.close()


def test_ordered_map_runs_at_most_concurrency_calls_at_once():
    together = threading.Barrier(3, timeout=WAIT)  # the first three only finish once all three run
    lock = threading.Lock()
    active = peak = 0

    def call(item: int) -> int:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        if item < 3:
            together.wait()
        with lock:
            active -= 1
        return item

    assert list(ordered_map(call, range(30), concurrency=3)) == list(range(30))
    assert peak == 3


@pytest.mark.parametrize("concurrency", [1, 4])
def test_ordered_map_stops_at_the_first_failure_and_propagates_it(concurrency):
    failure = RuntimeError("call 5 failed")
    drawn: list[int] = []

    def items():
        for i in range(500):
            drawn.append(i)
            yield i

    def call(item: int) -> int:
        if item == 5:
            raise failure
        return item

    out: list[int] = []
    with pytest.raises(RuntimeError) as caught:
        out.extend(ordered_map(call, items(), concurrency=concurrency))
    assert caught.value is failure
    assert out == [0, 1, 2, 3, 4]  # everything before the failure, in order, nothing after it
    assert len(drawn) <= 5 + 1 + 2 * concurrency  # submissions stop: the input is not drained


def test_ordered_map_of_nothing_is_nothing():
    assert list(ordered_map(lambda i: i, [], concurrency=4)) == []
