"""Running a plan apart from Airflow: ``run_plan`` against a fake :class:`PullSource`, and ``write_pull`` into a
real :class:`RecordWriter` on a temporary folder (a fake resume object records what it was told)."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_schneider.client.pagination import HeldPages, Page
from airflow_provider_schneider.outputs.writer import OutputSpec, RecordWriter
from airflow_provider_schneider.pulls.plan import Call, PullPlan, PullStats
from airflow_provider_schneider.pulls.runner import run_plan, write_pull
from tests.support.fakes import FakeClock, LineLog
from tests.support.operators import partials

WAIT = 5.0
ORDERS = "/v1/supply-chain/partner-order-status/orders/{country}"
PRODUCTS = "/v1/products/{reference}"


class FakeSource:
    """A :class:`PullSource`: the pages of a paginated plan (``per_page`` of ``records``), and one answer per
    call of the others (``answers[item]``, or ``{"item": item}``); what was asked is kept."""

    def __init__(self, records: int = 0, per_page: int = 10, *, max_concurrency: int = 1, answers=None):
        self.orders = [{"orderNumber": f"FR{i:08d}"} for i in range(records)]
        self.per_page, self.max_concurrency = per_page, max_concurrency
        self.answers: dict[Any, Any] = answers or {}
        self.pages_asked: list[tuple[PullPlan, HeldPages | None]] = []
        self.fetched: list[Call] = []
        self.lock = threading.Lock()

    def pages(self, plan: PullPlan, held: HeldPages | None) -> Iterator[Page]:
        self.pages_asked.append((plan, held))
        total = max(1, math.ceil(len(self.orders) / self.per_page))
        for number in range(1, total + 1):
            chunk = self.orders[(number - 1) * self.per_page : number * self.per_page]
            yield Page(number, total, len(self.orders), {"orderList": chunk}, chunk)

    def fetch(self, call: Call) -> Any:
        with self.lock:
            self.fetched.append(call)
        answer = self.answers.get(call.item, {"item": call.item})
        return answer() if callable(answer) else answer


def paginated_plan() -> PullPlan:
    return PullPlan("order_status", ORDERS, {"country": "FR"}, "orderList", paginate=True, page_size=10)


def fan_out_plan(items: list[str]) -> PullPlan:
    calls = tuple(Call("GET", PRODUCTS.format(reference=i), {}, item=i) for i in items)
    return PullPlan("product", PRODUCTS, {}, calls=calls)


def product_records(call: Call, body: Any, stats: PullStats) -> list[Any]:
    return [body]


def stats_at(clock: FakeClock | None = None) -> PullStats:
    clock = clock or FakeClock(1_000.0)
    return PullStats(clock=clock.monotonic)


# -- run_plan: a paginated plan ---------------------------------------------------------------------------------


def test_a_paginated_plan_yields_every_record_in_page_order_and_counts_the_pages():
    source, stats, log = FakeSource(records=95, per_page=10), stats_at(), LineLog()
    plan = paginated_plan()

    got = list(run_plan(plan, stats, source, product_records, log=log))

    assert got == source.orders
    assert (stats.pages, stats.records, stats.total) == (10, 95, 10)
    assert source.pages_asked == [(plan, None)]  # no resume: nothing held
    assert source.fetched == []  # pages come from ``pages``, never from ``fetch``


def test_a_paginated_plan_logs_a_progress_line_per_ten_percent_and_none_at_the_end():
    clock = FakeClock(1_000.0)
    source, stats, log = FakeSource(records=200, per_page=10), stats_at(clock), LineLog()

    def records_paced() -> Iterator[Any]:
        for record in run_plan(paginated_plan(), stats, source, product_records, log=log):
            clock.now += 0.05  # 10 records a page: half a second a page
            yield record

    assert len(list(records_paced())) == 200
    lines = log.lines("info")
    assert [line.split(" pages")[0] for line in lines] == [f"Progress: {2 * k}/20" for k in range(1, 10)]
    assert lines[0] == "Progress: 2/20 pages (10 %), 20 records, 20 rec/s, ETA 9.0s"


def test_run_plan_is_lazy():
    source = FakeSource(records=5)
    stream = run_plan(paginated_plan(), stats_at(), source, product_records, log=LineLog())
    assert source.pages_asked == []  # nothing asked before the first record is wanted
    assert next(stream) == source.orders[0]
    assert len(source.pages_asked) == 1


def test_pages_without_a_records_list_count_as_empty():
    class NoRecords(FakeSource):
        def pages(self, plan, held):
            yield Page(1, 2, None, {"x": 1})
            yield Page(2, 2, None, {"x": 2})

    stats = stats_at()
    assert list(run_plan(paginated_plan(), stats, NoRecords(), product_records, log=LineLog())) == []
    assert (stats.pages, stats.records, stats.total) == (2, 0, 2)


# -- run_plan: a fan-out -------------------------------------------------------------------------------------------


def test_a_fan_out_yields_records_in_input_order_even_when_answers_arrive_out_of_order():
    items = ["A", "B", "C", "D", "E"]
    rest_done = threading.Event()
    finished: list[str] = []

    def slow_a() -> dict:
        assert rest_done.wait(WAIT), "no other call ran beside the first"
        finished.append("A")
        return {"item": "A"}

    def last_one() -> dict:
        finished.append("C")
        rest_done.set()
        return {"item": "C"}

    source = FakeSource(max_concurrency=4, answers={"A": slow_a, "C": last_one})
    stats, log = stats_at(), LineLog()

    got = list(run_plan(fan_out_plan(items), stats, source, product_records, log=log))

    assert [r["item"] for r in got] == items
    assert finished[-1] == "A"  # the first call really answered after a later one
    assert (stats.pages, stats.records, stats.total) == (5, 5, 5)
    assert all("calls" in line for line in log.lines("info"))  # a fan-out counts calls, not pages


def test_records_of_sees_each_call_with_its_answer_and_may_return_several_or_none():
    seen: list[tuple[str, Any]] = []

    def records_of(call: Call, body: Any, stats: PullStats) -> list[Any]:
        seen.append((call.item, body))
        return [] if call.item == "B" else [f"{call.item}1", f"{call.item}2"]

    stats = stats_at()
    got = list(run_plan(fan_out_plan(["A", "B", "C"]), stats, FakeSource(max_concurrency=2), records_of, log=LineLog()))
    assert got == ["A1", "A2", "C1", "C2"]
    assert seen == [("A", {"item": "A"}), ("B", {"item": "B"}), ("C", {"item": "C"})]
    assert (stats.pages, stats.records, stats.total) == (3, 4, 3)


def test_a_fan_out_of_a_source_without_concurrency_still_runs_one_call_at_a_time():
    source = FakeSource(max_concurrency=0)
    got = list(run_plan(fan_out_plan(["A", "B"]), stats_at(), source, product_records, log=LineLog()))
    assert [r["item"] for r in got] == ["A", "B"]
    assert [c.item for c in source.fetched] == ["A", "B"]


def test_a_fan_out_of_no_calls_yields_nothing():
    stats = stats_at()
    assert list(run_plan(fan_out_plan([]), stats, FakeSource(max_concurrency=4), product_records, log=LineLog())) == []
    assert (stats.pages, stats.records) == (0, 0)


def test_records_of_raising_stops_the_pull_and_propagates():
    class Broken(Exception):
        pass

    def records_of(call: Call, body: Any, stats: PullStats) -> list[Any]:
        if call.item == "C":
            raise Broken("C has no records field")
        return [call.item]

    stats = stats_at()
    got: list[Any] = []
    with pytest.raises(Broken, match="C has no records field"):
        got.extend(
            run_plan(fan_out_plan(list("ABCDEFGH")), stats, FakeSource(max_concurrency=1), records_of, log=LineLog())
        )
    assert got == ["A", "B"]
    assert stats.pages == 2  # the failed answer is not counted


def test_a_failing_call_propagates_in_its_place():
    def fail() -> dict:
        raise ConnectionError("product B: connection reset")

    got: list[Any] = []
    source = FakeSource(max_concurrency=3, answers={"B": fail})
    with pytest.raises(ConnectionError, match="product B"):
        got.extend(run_plan(fan_out_plan(list("ABCD")), stats_at(), source, product_records, log=LineLog()))
    assert [r["item"] for r in got] == ["A"]


# -- write_pull ----------------------------------------------------------------------------------------------------


class FakeResume:
    """What ``write_pull`` asks of a :class:`ResumablePull`: ``close(keep=...)``, ``adopted``, ``pages_fetched``."""

    def __init__(self, adopted: tuple[Any, ...] = (), pages_fetched: int = 0):
        self.adopted, self.pages_fetched = adopted, pages_fetched
        self.closed: list[bool] = []

    def close(self, *, keep: bool) -> None:
        self.closed.append(keep)


def writer_at(tmp_path: Path, name: str = "orders.jsonl", **kwargs: Any) -> RecordWriter:
    return RecordWriter(OutputSpec(f"file://{tmp_path}/out/{name}", **kwargs))


def rows(n: int) -> list[dict]:
    return [{"orderNumber": f"FR{i:08d}", "lines": [i, i + 1]} for i in range(n)]


def leftovers(folder: Path) -> list[str]:
    """Everything in ``folder`` but the target: hidden temporaries, chunks, journals."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.exists() else []


def test_write_pull_streams_every_record_and_returns_the_manifest(tmp_path):
    import hashlib

    records = rows(7)
    output = write_pull(lambda: (r for r in records), writer_at(tmp_path), None, lambda exc: True)
    target = tmp_path / "out/orders.jsonl"
    assert [json.loads(line) for line in target.read_text().splitlines()] == records
    assert output["records"] == 7 and output["uri"].endswith("/out/orders.jsonl")
    assert output["sha256"] == hashlib.sha256(target.read_bytes()).hexdigest()
    assert output["bytes"] == target.stat().st_size
    assert "resumed" not in output
    assert leftovers(tmp_path / "out") == [] and partials(tmp_path) == []


def test_write_pull_of_no_records_still_writes_an_empty_target(tmp_path):
    output = write_pull(lambda: (r for r in ()), writer_at(tmp_path), None, lambda exc: True)
    assert output["records"] == 0
    assert (tmp_path / "out/orders.jsonl").read_bytes() == b""


def test_a_successful_pull_removes_what_was_staged_and_says_what_it_resumed(tmp_path):
    from airflow_provider_schneider.outputs.staging import Chunk

    resume = FakeResume(adopted=(Chunk("a", 1, 4, 40, 1, "x"), Chunk("b", 5, 9, 50, 1, "y")), pages_fetched=3)
    output = write_pull(lambda: (r for r in rows(3)), writer_at(tmp_path), resume, lambda exc: True)
    assert resume.closed == [False]  # success: nothing kept for a retry
    assert output["resumed"] == {"pages_staged": 9, "pages_fetched": 3}

    fresh = FakeResume()
    assert "resumed" not in write_pull(
        lambda: (r for r in rows(3)), writer_at(tmp_path, "b.jsonl"), fresh, lambda e: True
    )
    assert fresh.closed == [False]


@pytest.mark.parametrize("retry", [True, False])
def test_a_failure_mid_stream_leaves_no_target_no_temporaries_and_keeps_pages_only_for_a_retry(tmp_path, retry):
    failure = ConnectionError("page 7: connection reset")
    told: list[BaseException] = []

    def records():
        yield from rows(5)
        raise failure

    def retry_follows(exc: BaseException) -> bool:
        told.append(exc)
        return retry

    resume = FakeResume()
    with pytest.raises(ConnectionError) as caught:
        write_pull(records, writer_at(tmp_path), resume, retry_follows)
    assert caught.value is failure
    assert told == [failure]
    assert resume.closed == [retry]
    assert not (tmp_path / "out/orders.jsonl").exists()
    assert leftovers(tmp_path / "out") == [] and partials(tmp_path) == []


def test_a_failure_mid_stream_leaves_an_earlier_output_as_it_was(tmp_path):
    write_pull(lambda: (r for r in rows(2)), writer_at(tmp_path), None, lambda exc: True)
    before = (tmp_path / "out/orders.jsonl").read_bytes()

    def records():
        yield from rows(50)
        raise TimeoutError("execution_timeout")

    with pytest.raises(TimeoutError):
        write_pull(records, writer_at(tmp_path), FakeResume(), lambda exc: False)
    assert (tmp_path / "out/orders.jsonl").read_bytes() == before
    assert leftovers(tmp_path / "out") == []


def test_an_interrupt_is_handled_like_any_failure(tmp_path):
    def records():
        yield from rows(3)
        raise KeyboardInterrupt  # SIGINT / a BaseException: still no target, still the resume told

    resume = FakeResume()
    with pytest.raises(KeyboardInterrupt):
        write_pull(records, writer_at(tmp_path), resume, lambda exc: isinstance(exc, KeyboardInterrupt))
    assert resume.closed == [True]
    assert not (tmp_path / "out/orders.jsonl").exists() and leftovers(tmp_path / "out") == []


def test_a_writer_failure_closes_the_record_stream(tmp_path):
    class FailingWriter(RecordWriter):
        def write(self, record: Any) -> None:
            if self.records == 3:
                raise OSError("disk full")
            super().write(record)

    state = {"closed": False, "yielded": 0}
    made: list[Any] = []  # held here, so only write_pull can close it (not the garbage collector)

    def stream():
        try:
            for record in rows(100):
                state["yielded"] += 1
                yield record
        finally:
            state["closed"] = True  # the stream (and the calls behind it) is ended, not left hanging

    def records():
        made.append(stream())
        return made[-1]

    resume = FakeResume()
    writer = FailingWriter(OutputSpec(f"file://{tmp_path}/out/orders.jsonl"))
    with pytest.raises(OSError, match="disk full"):
        write_pull(records, writer, resume, lambda exc: True)
    assert state == {"closed": True, "yielded": 4}
    assert resume.closed == [True]
    assert not (tmp_path / "out/orders.jsonl").exists() and leftovers(tmp_path / "out") == []


def test_write_pull_of_run_plan_end_to_end(tmp_path):
    source, stats = FakeSource(records=42, per_page=10), stats_at()
    output = write_pull(
        lambda: run_plan(paginated_plan(), stats, source, product_records, log=LineLog()),
        writer_at(tmp_path, compression="gzip"),
        None,
        lambda exc: True,
    )
    import gzip

    target = tmp_path / "out/orders.jsonl.gz"
    assert [json.loads(line) for line in gzip.decompress(target.read_bytes()).splitlines()] == source.orders
    assert output["records"] == stats.records == 42 and stats.pages == 5
