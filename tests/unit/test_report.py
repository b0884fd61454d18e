"""What a pull says: its first and last lines, progress lines at 10 % steps or every 30 s (a fake clock drives
the stats), durations short enough for a log line, and the warning about repaired data."""

from __future__ import annotations

import pytest

from airflow_provider_schneider.pulls.plan import Call, PullPlan, PullStats
from airflow_provider_schneider.pulls.report import (
    PROGRESS_INTERVAL,
    ProgressLog,
    duration,
    end_line,
    log_repairs,
    start_line,
)
from tests.support.fakes import FakeClock, LineLog

ORDERS = "/v1/supply-chain/partner-order-status/orders/FR"


def run(pages: int, total: int | None, seconds_a_page: float, records_a_page: int = 10, **kwargs):
    """The progress lines of ``pages`` pages, ``seconds_a_page`` apart."""
    clock, log = FakeClock(5_000.0), LineLog()
    stats, progress = PullStats(clock=clock.monotonic), ProgressLog(log, **kwargs)
    for _ in range(pages):
        clock.now += seconds_a_page
        stats.add_page(records_a_page, total)
        progress.update(stats)
    return log.lines("info"), stats


# -- duration -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.0, "0.0s"),
        (-2.0, "0.0s"),  # a clock that stepped back never shows a negative time
        (0.44, "0.4s"),
        (9.94, "9.9s"),
        (9.95, "10s"),
        (59.4, "59s"),
        (59.6, "1m00s"),
        (245.0, "4m05s"),
        (3599.4, "59m59s"),
        (3599.6, "1h00m"),
        (7380.0, "2h03m"),
        (90061.0, "25h01m"),
    ],
)
def test_durations_are_short(seconds, shown):
    assert duration(seconds) == shown


# -- ProgressLog ----------------------------------------------------------------------------------------------------


def test_a_line_at_each_ten_percent_step_and_none_once_every_page_is_in():
    lines, stats = run(20, 20, 0.5)
    assert [line.split(" pages")[0] for line in lines] == [f"Progress: {2 * k}/20" for k in range(1, 10)]
    assert lines[0] == "Progress: 2/20 pages (10 %), 20 records, 20 rec/s, ETA 9.0s"
    assert lines[-1] == "Progress: 18/20 pages (90 %), 180 records, 20 rec/s, ETA 1.0s"
    assert stats.pages == 20  # the last page is in: the end line follows, not a progress line


def test_a_page_count_that_is_not_a_multiple_of_ten_gets_one_line_per_step():
    lines, _ = run(7, 7, 1.0)
    assert [line.split(" pages")[0] for line in lines] == [f"Progress: {k}/7" for k in range(1, 7)]
    assert [line.split("(")[1].split(")")[0] for line in lines] == ["14 %", "28 %", "42 %", "57 %", "71 %", "85 %"]


def test_several_steps_at_once_make_one_line():
    clock, log = FakeClock(0.0), LineLog()
    stats, progress = PullStats(clock=clock.monotonic), ProgressLog(log)
    clock.now += 1.0
    stats.add_page(700, 10, pages=7)  # a resume reads 7 staged pages back at once
    progress.update(stats)
    clock.now += 1.0
    stats.add_page(100, 10)
    progress.update(stats)
    assert log.lines() == [
        "Progress: 7/10 pages (70 %), 700 records, 700 rec/s, ETA 0.4s",
        "Progress: 8/10 pages (80 %), 800 records, 400 rec/s, ETA 0.5s",
    ]


def test_without_a_total_a_line_every_interval():
    lines, _ = run(10, None, 10.0, records_a_page=100)
    assert lines == [
        "Progress: 3 pages, 300 records, 10 rec/s",
        "Progress: 6 pages, 600 records, 10 rec/s",
        "Progress: 9 pages, 900 records, 10 rec/s",
    ]


def test_slow_pages_of_a_long_pull_get_a_line_every_interval_between_steps():
    lines, _ = run(4, 1000, PROGRESS_INTERVAL + 1)
    assert len(lines) == 4 and lines[0].startswith("Progress: 1/1,000 pages (0 %)")
    quick, _ = run(4, 1000, 1.0)
    assert quick == []  # no step crossed, no interval passed


def test_the_interval_can_be_shorter():
    lines, _ = run(6, None, 1.0, interval=2.0)
    assert [line.split(" pages")[0] for line in lines] == ["Progress: 2", "Progress: 4", "Progress: 6"]


def test_a_total_of_zero_counts_as_unknown():
    lines, _ = run(4, 0, 15.0)
    assert lines == ["Progress: 2 pages, 20 records, 1 rec/s", "Progress: 4 pages, 40 records, 1 rec/s"]


def test_calls_are_counted_as_calls():
    lines, _ = run(3, 10, 1.0)
    fan_out, _ = run(3, 10, 1.0, unit="calls")
    assert lines[0].startswith("Progress: 1/10 pages") and fan_out[0].startswith("Progress: 1/10 calls")


def test_stats_measure_time_on_their_own_clock():
    clock = FakeClock(100.0)
    stats = PullStats(clock=clock.monotonic)
    assert stats.started == 100.0 and stats.rate() == 0.0
    clock.now = 104.0
    stats.add_page(200, 3)
    assert (stats.elapsed, stats.rate(), stats.rate(100), stats.total) == (4.0, 50.0, 25.0, 3)
    clock.now = 110.0
    stats.add_page(0)
    assert stats.total == 3  # a page without a total keeps the known one
    stats.finish()
    assert stats.elapsed == 10.0


# -- first and last lines -------------------------------------------------------------------------------------------


def test_the_start_line_of_a_paginated_pull_says_the_page_size_and_hides_secrets():
    plan = PullPlan(
        "order_status", ORDERS, {"order-status": "open", "apikey": "Sup3rS3cret"}, paginate=True, page_size=50
    )
    line = start_line(plan)
    assert line == (
        f"Pulling order_status: GET {ORDERS}, query {{'order-status': 'open', 'apikey': '***'}}, 50 records per page"
    )


def test_the_start_line_of_a_fan_out_counts_its_calls():
    calls = tuple(Call("GET", f"/p/{i}", {}, item=i) for i in range(3))
    assert (
        start_line(PullPlan("product", "/p/{ref}", {}, calls=calls))
        == "Pulling product: 3 calls of GET /p/{ref}, query {}"
    )
    one = PullPlan(None, "/stock", {"site": "X"}, calls=calls[:1], method="POST")
    assert start_line(one) == "Pulling POST /stock, query {'site': 'X'}"  # one call, no resource: nothing to count


def test_the_end_line_counts_records_from_the_manifest():
    clock = FakeClock(0.0)
    stats = PullStats(clock=clock.monotonic)
    clock.now = 2.1
    stats.add_page(1300, 13, pages=13)
    plan = PullPlan("order_status", ORDERS, {}, paginate=True)
    line = end_line("Wrote", plan, stats, {"records": 1234}, ", 1 part")
    assert line == "Wrote 1,234 records from 13 pages in 2.1s (588 rec/s), 1 part"
    calls = PullPlan("product", "/p", {}, calls=(Call("GET", "/p", {}),))
    assert end_line("Returned", calls, stats, {"records": "7"}, "").startswith(
        "Returned 7 records from 13 calls in 2.1s"
    )


def test_repairs_are_one_warning_each_and_nothing_when_verbatim():
    log = LineLog()
    log_repairs(log, {"records": 3})
    assert log.records == []
    log_repairs(
        log,
        {
            "data_fixes": {"lone_surrogates": 2},
            "overflow_keys": 5,
            "overflow_column": "_extra",
        },
    )
    first, second = log.lines("warning")
    assert first.startswith("Repaired 2 lone surrogate(s) (now U+FFFD) and 0 NaN/Infinity value(s)")
    assert second.startswith("The records have more distinct top-level fields than the column cap: 5 rare field")
    assert "into the column '_extra'" in second
