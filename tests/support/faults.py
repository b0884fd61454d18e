"""The fault matrix as data, shared by ``tests/test_fault_matrix.py`` and ``scripts/failure_table.py``.

Each :class:`Case` says which faults the emulator injects, what the provider is expected to do, and how
many requests that takes; the test runs it and README's failure table is rendered from the same
list, so the README table and the tested behaviour cannot drift apart.

Also the 16-process stampede worker: ``python -m tests.support.faults stampede N OUT_DIR``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

ORDERS_PATH = "/v1/supply-chain/partner-order-status/orders/FR"
CATALOG_PATH = "/v2/reference-data/product/product-catalog/products"
CATALOG_PARAMS = {"supplierid": "S1", "supplierid-type": "specific", "customerid": "C1", "customerid-type": "specific"}
ORDER_ENTRY_VALIDATE = "/v2/customer-order/system/myse-order-entry-fr/orders/validate"
ORDER_LINES = {"orderLines": [{"catalogNumber": "LC1D09/BD", "quantity": 3}]}

#: The pull every "hook" case makes: 45 FR orders, 10 per page -> 5 pages (page 1, then 2..5 at once).
#: Faults that fail a pull at once sit on the last page: pages 2..5 are queued in order, so by the time
#: page 5 is taken every other page has started, and the request count is exact (not a race).
ORDERS = 45
PAGE_SIZE = 10
PAGES = 5
STAMPEDE_PROCESSES = 16
EMULATOR_KNOBS = {"orders_per_country": ORDERS}

#: Connection extras of every case: small backoff so the matrix is fast, file token cache per test.
FAST_RETRIES = {
    "retry_max_attempts": 5,
    "retry_backoff_initial": 0.05,
    "retry_backoff_max": 0.2,
    "retry_max_total_wait": 10,
    "retry_after_cap": 5,
    "page_size": PAGE_SIZE,
    "max_concurrency": 4,
    "token_cache": "memory,file",
}


def on_page(number: int, **rule: Any) -> dict[str, Any]:
    """A fault rule on the Order Status path for one page only (keeps request counts exact)."""
    return {"target": "/v1/supply-chain", "match_query": {"page": str(number)}, **rule}


def http_date_in(seconds: float) -> str:
    return formatdate(time.time() + seconds, usegmt=True)


@dataclass(frozen=True)
class Case:
    """One row of the matrix. ``outcome`` is ``"complete"`` or the expected exception class name."""

    id: str
    fault: str
    behaviour: str
    rules: Callable[[], list[dict[str, Any]]]
    outcome: str = "complete"
    message: str = ""
    api_calls: int = PAGES
    token_requests: int = 1
    runner: str = "hook"  # hook | catalog | write | dag | stampede
    extras: Mapping[str, Any] = field(default_factory=dict)
    knobs: Mapping[str, Any] = field(default_factory=dict)
    retry_write: bool = False

    @property
    def completes(self) -> bool:
        return self.outcome == "complete"


MATRIX: tuple[Case, ...] = (
    Case(
        "429-retry-after-seconds",
        "429 with `Retry-After: 1` on page 3",
        "waits the 1 s the gateway asked for (emulator timestamps), retries page 3 with the current token",
        lambda: [on_page(3, kind="status", status=429, retry_after="1")],
        api_calls=PAGES + 1,
    ),
    Case(
        "429-retry-after-date",
        "429 with `Retry-After: <HTTP date 3 s ahead>` on page 2",
        "converts the date to a wait (>= 0.9 s between the two requests), then retries",
        lambda: [on_page(2, kind="status", status=429, retry_after=http_date_in(3))],
        api_calls=PAGES + 1,
    ),
    Case(
        "retry-after-over-cap",
        "429 with `Retry-After: 3600` on page 2, `retry_after_cap` 0.3",
        "waits the cap (0.3 s), not an hour, and says so in the retry log line",
        lambda: [on_page(2, kind="status", status=429, retry_after="3600")],
        api_calls=PAGES + 1,
        extras={"retry_after_cap": 0.3},
    ),
    Case(
        "503-x3",
        "503 three times on page 4",
        "exponential backoff with jitter, fourth attempt succeeds",
        lambda: [on_page(4, kind="status", status=503, times=3)],
        api_calls=PAGES + 3,
    ),
    Case(
        "500-once",
        "500 once on page 1",
        "retried once",
        lambda: [on_page(1, kind="status", status=500)],
        api_calls=PAGES + 1,
    ),
    Case(
        "502-504",
        "502 on page 2 and 504 on page 5",
        "both retried",
        lambda: [on_page(2, kind="status", status=502), on_page(5, kind="status", status=504)],
        api_calls=PAGES + 2,
    ),
    Case(
        "connection-reset",
        "TCP reset instead of an answer on page 2",
        "retried (connection error)",
        lambda: [on_page(2, kind="reset")],
        api_calls=PAGES + 1,
    ),
    Case(
        "read-timeout",
        "page 5 answers after 2 s, read timeout 1 s",
        "read timeout, retried",
        lambda: [on_page(5, kind="delay", delay_s=2.0)],
        api_calls=PAGES + 1,
        extras={"timeout": 1.0},
    ),
    Case(
        "truncated-body",
        "page 3 body cut in half (short of `Content-Length`)",
        "retried (truncated body)",
        lambda: [on_page(3, kind="truncate")],
        api_calls=PAGES + 1,
    ),
    Case(
        "500-persistent",
        "500 on every try of page 2",
        "gives up after `retry_max_attempts` (5) with the status and the attempts in the message",
        lambda: [on_page(2, kind="status", status=500, times=-1)],
        outcome="SchneiderApiError",
        message=r"page 2, HTTP 500.*gave up after 5 attempt\(s\)",
        api_calls=PAGES + 4,
    ),
    Case(
        "wait-budget",
        "503 with `Retry-After: 2` on every try of page 1, `retry_max_total_wait` 3",
        "fails as soon as the next wait would overrun the wait budget, instead of sleeping through it",
        lambda: [on_page(1, kind="status", status=503, retry_after="2", times=-1)],
        outcome="SchneiderApiError",
        message=r"page 1, HTTP 503.*gave up after 2 attempt\(s\).*wait budget exhausted",
        api_calls=2,
        extras={"retry_max_total_wait": 3},
    ),
    Case(
        "other-4xx",
        "400 `INVALID_FIELD` on page 5",
        "not retried; Schneider's `code` and `userMessage` in the error",
        lambda: [on_page(5, kind="status", status=400, code="INVALID_FIELD", message="page-size is too large")],
        outcome="SchneiderApiError",
        message=r"page 5, HTTP 400, code=INVALID_FIELD\): page-size is too large",
    ),
    Case(
        "html-200",
        "HTML error page with status 200 on page 5",
        "clear error naming path and page; nothing written",
        lambda: [on_page(5, kind="html")],
        outcome="SchneiderResponseError",
        message=r"HTML page with HTTP 200 \(GET /v1/supply-chain/partner-order-status/orders/FR, page 5\)",
    ),
    Case(
        "invalid-json",
        "broken JSON with status 200 on page 5",
        "clear error naming path and page; nothing written",
        lambda: [on_page(5, kind="invalid_json")],
        outcome="SchneiderResponseError",
        message=r"not valid JSON.*\(GET /v1/supply-chain/partner-order-status/orders/FR, page 5\)",
    ),
    Case(
        "missing-pagination",
        "paged GET on an endpoint that sends no `pagination` block",
        "clear error naming path and page 1, instead of guessing that one page is all",
        lambda: [],
        outcome="SchneiderResponseError",
        message=r"no 'pagination' block.*\(GET /v2/reference-data/product/product-catalog/products, page 1\)",
        api_calls=1,
        runner="catalog",
    ),
    Case(
        "page-count-changes",
        "`totalNumberOfPages` grows from 5 to 6 on page 5",
        "clear error (records could be lost or duplicated); nothing written",
        lambda: [on_page(5, kind="change_total_pages", delta=1)],
        outcome="SchneiderResponseError",
        message=r"totalNumberOfPages changed from 5 to 6.*page 5\)",
    ),
    Case(
        "401-mid-pull",
        "401 on page 3 (token rejected mid-pull)",
        "invalidates that token, requests one new token, replays page 3 once with it",
        lambda: [on_page(3, kind="status", status=401)],
        api_calls=PAGES + 1,
        token_requests=2,
    ),
    Case(
        "token-503-x2",
        "token endpoint 503 twice",
        "token request retried with backoff, pull completes",
        lambda: [{"target": "token", "kind": "status", "status": 503, "times": 2}],
        token_requests=3,
    ),
    Case(
        "token-timeout",
        "token endpoint answers after 2 s, read timeout 1 s",
        "token request retried, pull completes",
        lambda: [{"target": "token", "kind": "delay", "delay_s": 2.0}],
        token_requests=2,
        extras={"timeout": 1.0},
    ),
    Case(
        "token-down",
        "token endpoint 503 on every try",
        "retried up to the budget, then a clear `SchneiderTokenEndpointError`; no API call, no hang",
        lambda: [{"target": "token", "kind": "status", "status": 503, "times": -1}],
        outcome="SchneiderTokenEndpointError",
        message=r"token endpoint .* failed with HTTP 503.*gave up after 5 attempt\(s\)",
        api_calls=0,
        token_requests=5,
    ),
    Case(
        "write-503",
        "503 on an Order Entry `POST`",
        "never retried (a write is not replayed blindly)",
        lambda: [{"target": "/v2/customer-order", "kind": "status", "status": 503, "method": "POST"}],
        outcome="SchneiderApiError",
        message=r"POST /v2/customer-order/system/myse-order-entry-fr/orders/validate, HTTP 503",
        api_calls=1,
        runner="write",
    ),
    Case(
        "write-503-opt-in",
        "503 on an Order Entry `POST` with `retry=True`",
        "retried because the caller opted in",
        lambda: [{"target": "/v2/customer-order", "kind": "status", "status": 503, "method": "POST"}],
        api_calls=2,
        runner="write",
        retry_write=True,
    ),
    Case(
        "stampede-slow-token",
        f"{STAMPEDE_PROCESSES} processes start a pull at once; the token endpoint takes 1.5 s",
        "one token request in total (host lock + encrypted file cache); every process gets every record",
        lambda: [],
        api_calls=STAMPEDE_PROCESSES * PAGES,
        token_requests=1,
        runner="stampede",
        knobs={"token_latency_ms": 1500},
    ),
    Case(
        "dag-503-x3-and-429",
        "Airflow DAG run: 503 three times on page 2, 429 `Retry-After: 1` on page 4",
        "the task retries inside one try and succeeds; output complete",
        lambda: [
            on_page(2, kind="status", status=503, times=3),
            on_page(4, kind="status", status=429, retry_after="1"),
        ],
        api_calls=PAGES + 4,
        runner="dag",
    ),
    Case(
        "dag-403-mid-pull",
        "Airflow DAG run: 403 on page 5, after pages 1-4 went to the temporary file",
        "task fails at once (`SchneiderPermissionError`, no Airflow retry); no output, no partial file",
        lambda: [on_page(5, kind="status", status=403, times=-1)],
        outcome="SchneiderPermissionError",
        message=r"permission denied \(HTTP 403\).*page 5",
        runner="dag",
    ),
    Case(
        "dag-token-401",
        "Airflow DAG run: token endpoint 401 (wrong client secret)",
        "task fails at once (`SchneiderAuthError`), one token request, no retry (avoids locking the user)",
        lambda: [],
        outcome="SchneiderAuthError",
        message=r"rejected the client credentials \(HTTP 401",
        api_calls=0,
        token_requests=1,
        runner="dag",
        extras={"password": "not-the-client-secret"},
    ),
)

RUNNER_LABELS = {
    "hook": "hook pull",
    "catalog": "hook pull",
    "write": "hook POST",
    "dag": "DAG run",
    "stampede": f"{STAMPEDE_PROCESSES} processes",
}


def outcome_text(case: Case) -> str:
    if case.completes:
        if case.runner == "write":
            return "completes"
        total = ORDERS * (STAMPEDE_PROCESSES if case.runner == "stampede" else 1)
        return f"completes, exact {total} records"
    return f"fails: `{case.outcome}`"


def render_table(matrix: tuple[Case, ...] = MATRIX) -> str:
    """The README "Failure behaviour" section (between the markers), from the tested matrix."""
    lines = [
        "<!-- Generated by `python scripts/failure_table.py` from tests/support/faults.py (the fault",
        "matrix that tests/test_fault_matrix.py runs against the emulator). Do not edit by hand. -->",
        "",
        f"Each row is a test: a pull of {ORDERS} orders ({PAGES} pages of {PAGE_SIZE}, pages 2-{PAGES} "
        "fetched concurrently) with the fault injected by the emulator. *Requests* are counted by the emulator "
        "and asserted exactly; a failed pull always leaves no output and no partial file behind.",
        "",
        "| case | fault injected | what the provider does | outcome | API requests | token requests | run as |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in matrix:
        lines.append(
            f"| `{case.id}` | {case.fault} | {case.behaviour} | {outcome_text(case)} | {case.api_calls} "
            f"| {case.token_requests} | {RUNNER_LABELS[case.runner]} |"
        )
    lines += [
        "",
        "Retry settings are connection extras: `retry_max_attempts` (default 5), "
        "`retry_backoff_initial` (1 s) and `retry_backoff_max` (30 s) for the exponential backoff with jitter, "
        "`retry_max_total_wait` (120 s of waiting per call), `retry_after_cap` (120 s); operators override "
        "`retry_max_attempts`, `retry_max_total_wait` and `max_concurrency` per task. Retried: 429, 500, 502, "
        "503, 504, connection errors, timeouts, truncated bodies, for reads (and for writes only with "
        "`retry=True`). Never retried: other 4xx, token endpoint 400/401/403. The matrix runs with "
        "`retry_backoff_initial` 0.05 s and `retry_backoff_max` 0.2 s to stay fast.",
        "",
    ]
    return "\n".join(lines)


def expected_orders(seed: int = 42) -> list[dict[str, Any]]:
    """The exact records of the pull, straight from the emulator's data model (not through our client)."""
    from airflow_provider_schneider.emulator import data

    return [json.loads(json.dumps(data.order(seed, "FR", index))) for index in range(ORDERS)]


def pull_orders(hook: Any, uri: str) -> dict[str, Any]:
    """The pull every hook case makes, streamed to JSON Lines through the provider's atomic sink."""
    from airflow_provider_schneider.outputs.writer import OutputSpec, RecordWriter

    with RecordWriter(OutputSpec(uri)) as sink:
        for record in hook.iter_records(ORDERS_PATH, records_field="orderList"):
            sink.write(record)
    return sink.manifest


# -- stampede: N real processes forked from one that has already imported the provider -------------------


def _stampede_child(index: int, out_dir: str, barrier: Any, results: Any) -> None:
    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    barrier.wait()
    hook = SchneiderHook()
    started = time.time()
    try:
        manifest = pull_orders(hook, f"file://{out_dir}/proc_{index:02d}.jsonl")
        results.put({"index": index, "ok": True, "records": manifest["records"], "seconds": time.time() - started})
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put({"index": index, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
    finally:
        hook.close()


def stampede(processes: int, out_dir: str) -> list[dict[str, Any]]:
    """Fork ``processes`` workers that start their pull at the same instant (a barrier); return results."""
    import importlib
    import multiprocessing

    for module in ("airflow_provider_schneider.hooks.schneider", "airflow_provider_schneider.sinks"):
        importlib.import_module(module)  # once, before forking: children start without import cost

    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=_stampede_child, args=(i, out_dir, barrier, results)) for i in range(processes)]
    for worker in workers:
        worker.start()
    collected = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    return sorted(collected, key=lambda r: r["index"])


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "stampede":
        Path(sys.argv[3]).mkdir(parents=True, exist_ok=True)
        print(json.dumps(stampede(int(sys.argv[2]), sys.argv[3])))
    else:
        sys.exit("usage: python -m tests.support.faults stampede PROCESSES OUT_DIR")


README_START = "<!-- failure-table:start -->"
README_END = "<!-- failure-table:end -->"


def readme_failure_section(readme: str) -> str:
    """The generated part of README.md (between the markers), to compare with :func:`render_table`."""
    start, end = readme.index(README_START) + len(README_START), readme.index(README_END)
    return readme[start:end].strip("\n") + "\n"


def with_failure_section(readme: str, table: str) -> str:
    start, end = readme.index(README_START) + len(README_START), readme.index(README_END)
    return readme[:start] + "\n" + table.rstrip("\n") + "\n" + readme[end:]
