"""Calls governed at deployment scale: per-call cost, pull time against its limit, a spike arrest, fan-out
resume, and resumable staging. Every table has its baseline measured in the same run.

1. Per call: ``hook.request`` vs a raw ``requests.Session`` with the same bearer token, against a canned
   keep-alive server answering at once (so the client's own cost is what differs), best of 5 interleaved.
2. Pull time vs its limit: Order Status 20,000 orders (200 calls) at 1/4/8 in flight, 0 and 50 ms latency;
   the limit is ``calls / concurrency x latency``.
3. Spike arrest: 400 stock lookups at 8 in flight against an emulator refusing more than 20 calls a second
   (Apigee's SpikeArrestViolation as a 500); baseline: the same pull with ``adaptive_concurrency`` off.
4. Fan-out resume: 1,000 stock lookups, item 800 fails try 1; the retry with staged answers vs without.
5. Resumable staging vs a plain pull at 0 ms (Order Status, 20,000 orders).

    .venv/bin/python benchmarks/call_governance.py           # about 3 minutes
    .venv/bin/python benchmarks/call_governance.py --quick   # about a minute
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from airflow_provider_schneider.emulator.client import EmulatorProcess  # noqa: E402

ORDERS = "/v1/supply-chain/partner-order-status/orders/FR"
STOCK = "/productstocklevelchecker/1.1/products/"
CLIENT = ("demo-client", "demo-secret")


def use_connection(work: Path, url: str, **extra: Any) -> None:
    from airflow_provider_schneider.process import STATE

    STATE.reset()
    extra = {"token_cache_dir": str(work / "token_cache"), "timeout": 120, **extra}
    os.environ["AIRFLOW_CONN_SCHNEIDER_DEFAULT"] = json.dumps(
        {"conn_type": "schneider", "host": url, "login": CLIENT[0], "password": CLIENT[1], "extra": extra}
    )


def table(title: str, header: list[str], rows: list[list[Any]], notes: str = "") -> str:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines + ([("\n" + notes)] if notes else [])) + "\n"


# -- 1. per call -------------------------------------------------------------------------------------------------


def canned_server(delay_ms: float) -> None:
    """A keep-alive asyncio server answering every call after ``delay_ms`` with prebuilt bytes (a gateway on
    hardware of its own: no interpreter lock shared by its answers): Order Status pages of 100 orders (20,000
    in all) by ``page``, the same small page for anything else, a token for ``/token``."""
    from urllib.parse import parse_qs, urlsplit

    from airflow_provider_schneider.emulator.order_data import order

    def page(number: int) -> bytes:
        orders = [order(42, "FR", i) for i in range((number - 1) * 100, number * 100)]
        pagination = {"totalNumberOfRecords": 20_000, "pageNumber": number, "totalNumberOfPages": 200}
        return json.dumps({"orderList": orders, "pagination": pagination}).encode()

    pages = {n: page(n) for n in range(1, 201)}
    token = json.dumps({"access_token": "canned-token-0123456789", "token_type": "Bearer", "expires_in": 3600}).encode()

    def answer(payload: bytes) -> bytes:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(payload)
        return head + payload

    class Canned(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport, self.buffer = transport, b""

        def data_received(self, data: bytes) -> None:
            self.buffer += data
            while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
                head = self.buffer[:end].decode("latin-1")
                fields = (line.partition(":") for line in head.split("\r\n")[1:])
                length = sum(int(v) for k, _, v in fields if k.strip().lower() == "content-length")
                if len(self.buffer) < end + 4 + length:
                    return
                self.buffer = self.buffer[end + 4 + length :]
                target = urlsplit(head.split(" ")[1])
                if target.path.startswith("/token"):
                    body = token
                else:
                    number = int(parse_qs(target.query).get("page", ["1"])[0])
                    body = pages[min(max(number, 1), 200)]
                reply = answer(body)
                if delay_ms > 0:
                    asyncio.get_running_loop().call_later(delay_ms / 1000, self.transport.write, reply)
                else:
                    self.transport.write(reply)

    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(Canned, "127.0.0.1", 0)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(serve())


def start_canned(delay_ms: float) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, __file__, "--canned-server", str(delay_ms)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    return server, f"http://127.0.0.1:{int(server.stdout.readline())}"


def per_call(work: Path, calls: int, rounds: int) -> str:
    import requests

    server, url = start_canned(0)
    try:
        use_connection(work, url)
        from airflow_provider_schneider.hooks.schneider import SchneiderHook

        hook = SchneiderHook()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {hook.get_token()}"

        def raw() -> None:
            for _ in range(calls):
                reply = session.get(url + ORDERS, params={"page": 1, "page-size": 5}, timeout=30)
                reply.raise_for_status()
                reply.json()

        def ours() -> None:
            for _ in range(calls):
                hook.request("GET", ORDERS, params={"page": 1, "page-size": 5})

        best = {"raw": float("inf"), "hook": float("inf")}
        for _ in range(rounds):
            for name, run in (("raw", raw), ("hook", ours)):
                started = time.perf_counter()
                run()
                best[name] = min(best[name], time.perf_counter() - started)
        hook.close()
    finally:
        server.kill()
    rows = [
        ["raw `requests.Session` (baseline)", f"{best['raw'] / calls * 1e6:.0f}", "1.00x"],
        ["`SchneiderHook.request`", f"{best['hook'] / calls * 1e6:.0f}", f"{best['hook'] / best['raw']:.2f}x"],
    ]
    return table(f"Per call: {calls:,} GETs, best of {rounds}", ["client", "µs per call", "vs raw"], rows)


# -- 2. pull time vs the limit -------------------------------------------------------------------------------------


def order_pull(work: Path, concurrency: int, **operator: Any) -> tuple[float, dict[str, Any]]:
    import pendulum

    from airflow_provider_schneider.operators.orders import SchneiderOrderStatusOperator

    extra_context = operator.pop("_context", {})
    op = SchneiderOrderStatusOperator(
        task_id="bench",
        country="FR",
        output_path=f"file://{work}/orders.jsonl",
        max_concurrency=concurrency,
        **operator,
    )
    start = pendulum.datetime(2026, 11, 4, tz="UTC")
    context = {
        "ti": SimpleNamespace(map_index=-1, try_number=1, max_tries=1, dag_id="b", run_id="r", task_id="t"),
        "data_interval_start": start,
        "data_interval_end": start,
        **extra_context,
    }
    started = time.perf_counter()
    manifest = op.execute(context)
    return time.perf_counter() - started, manifest


def pull_times(emulator: EmulatorProcess, work: Path, records: int) -> str:
    """Each latency against the emulator and against the canned gateway (20,000 orders: ``records`` is the
    emulator's size)."""
    rows = []
    for gateway in ("emulator", "canned"):
        for latency in (0, 50):
            server = None
            if gateway == "canned":
                server, url = start_canned(latency)
                count = 20_000
            else:
                url, count = emulator.url, records
                emulator.client.configure(orders_per_country=records, latency_ms=latency)
            use_connection(work, url)
            calls = -(-count // 100)
            try:
                order_pull(work, 4)  # warm: imports, token
                times = {c: min(order_pull(work, c)[0] for _ in range(2)) for c in (1, 4, 8)}
            finally:
                if server is not None:
                    server.kill()
            for concurrency, seconds in times.items():
                limit = calls / concurrency * latency / 1000
                share = f"{limit / seconds:.0%}" if latency else "n/a"
                shown = f"{limit:.2f}" if latency else "-"
                rows.append(
                    [
                        gateway,
                        f"{latency} ms",
                        concurrency,
                        f"{seconds:.2f}",
                        shown,
                        share,
                        f"{times[1] / seconds:.2f}x",
                    ]
                )
    notes = (
        "`limit` = calls / concurrency x latency (page 1 alone first: 1.30 s is the floor at 8 in flight, 96 %); "
        "`of limit` = limit / wall time. The emulator answers from one Python process (its answers queue for "
        "its interpreter lock); the canned gateway sends prebuilt pages from an asyncio loop after the latency."
    )
    header = ["gateway", "latency", "in flight", "wall (s)", "limit (s)", "of limit", "vs 1 in flight"]
    return table(f"Pull time: Order Status, {records:,} orders (100 a page), best of 2", header, rows, notes)


# -- 3. a spike arrest -------------------------------------------------------------------------------------------------


def plain_references(count: int) -> list[str]:
    from airflow_provider_schneider.emulator.catalog_data import product_reference

    refs = (product_reference(i) for i in range(count * 2))
    return [r for r in refs if "/" not in r and "\\" not in r][:count]


def lookups(references: list[str], concurrency: int) -> None:
    from airflow_provider_schneider.client.concurrency import ordered_map
    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    hook = SchneiderHook()
    hook.get_token()
    for _ in ordered_map(lambda r: hook.request("GET", STOCK + r), references, concurrency=concurrency):
        pass
    hook.close()


def spike_arrest(emulator: EmulatorProcess, work: Path, count: int, rate: float) -> str:
    references = plain_references(count)
    rows = []
    for name, adaptive in (("adaptive off (baseline: every throttle retried on its own)", False), ("adaptive", True)):
        use_connection(
            work,
            emulator.url,
            max_concurrency=8,
            adaptive_concurrency=adaptive,
            retry_max_attempts=30,
            retry_max_total_wait=600,
        )
        emulator.client.reset()
        emulator.client.configure(products=count * 2, latency_ms=50, rate_limit=rate)
        time.sleep(1.1)  # an empty window
        started = time.perf_counter()
        lookups(references, 8)
        span = time.perf_counter() - started
        stats = emulator.client.stats()
        refused = stats["spike_arrests"]
        ideal = count / rate
        rows.append(
            [
                name,
                stats["api_calls"],
                refused,
                f"{refused / stats['api_calls']:.1%}",
                f"{span:.1f}",
                f"{span / ideal:.2f}x",
            ]
        )
    emulator.client.configure(rate_limit=0)
    header = ["client", "calls", "refused", "refused share", "span (s)", "span vs ideal"]
    title = f"Spike arrest: {count} lookups at 8 in flight, {rate:g} calls/s allowed, 50 ms latency"
    title += f" (ideal {count / rate:.0f} s)"
    return table(title, header, rows)


# -- 4. fan-out resume ----------------------------------------------------------------------------------------------


def fan_out_tries(emulator: EmulatorProcess, work: Path, count: int, fail_at: int, resume: bool) -> tuple[int, int]:
    from airflow_provider_schneider.hooks.schneider import SchneiderHook
    from airflow_provider_schneider.outputs.staging import ChunkOwner
    from airflow_provider_schneider.outputs.storage import to_storage_path
    from airflow_provider_schneider.pulls.arguments import ItemErrorPolicy
    from airflow_provider_schneider.pulls.checkpoint import seal_key
    from airflow_provider_schneider.pulls.fanout import FanOutResume, run_calls
    from airflow_provider_schneider.pulls.plan import Call, PullPlan, PullStats, frozen

    references = plain_references(count)
    emulator.client.reset()
    emulator.client.configure(products=count * 2, latency_ms=0)
    emulator.client.add_fault(target=STOCK + references[fail_at - 1], kind="status", status=400, times=1)
    plan = PullPlan(
        "stock_level",
        STOCK,
        frozen(None),
        calls=tuple(Call("GET", STOCK + r, frozen(None), item=r) for r in references),
    )
    target = to_storage_path(f"file://{work}/stock-{resume}.jsonl")
    store = {}

    class Store:
        def get(self, key: str, default: Any = None) -> Any:
            return store.get(key, default)

        def set(self, key: str, value: Any) -> None:
            store[key] = json.loads(json.dumps(value))

        def delete(self, key: str) -> None:
            store.pop(key, None)

    log = SimpleNamespace(info=lambda *a: None, warning=lambda *a: None, debug=lambda *a: None, error=lambda *a: None)
    asked_per_try = []
    for _ in range(2):
        emulator.client.reset_counters()
        staging = (
            FanOutResume(Store(), target, ChunkOwner("bench", "abcdef012345", 1), seal_key("s"), log)
            if resume
            else None
        )
        hook = SchneiderHook()
        records = run_calls(
            plan,
            PullStats(),
            lambda call, hook=hook: hook.request("GET", call.path),
            lambda c, b, s: [b],
            concurrency=4,
            progress=SimpleNamespace(update=lambda s: None),
            log=log,
            policy=ItemErrorPolicy(),
            resume=staging,
        )
        failed = False
        try:
            for _ in records:
                pass
        except Exception:  # noqa: BLE001 - the failure of try 1 is the point
            failed = True
        if staging is not None:
            staging.close(keep=failed)
        hook.close()
        asked_per_try.append(emulator.client.stats()["api_calls"])
    return asked_per_try[0], asked_per_try[1]


def fan_out_resume(emulator: EmulatorProcess, work: Path, count: int, fail_at: int) -> str:
    use_connection(work, emulator.url, max_concurrency=4, retry_max_attempts=1)
    rows = []
    for name, resume in (("without staged answers (baseline: before this change)", False), ("resumed", True)):
        first, second = fan_out_tries(emulator, work, count, fail_at, resume)
        rows.append([name, first, second, first + second])
    header = ["retry", "lookups in try 1", "lookups in the retry", "lookups in all"]
    return table(f"Fan-out resume: {count:,} lookups, item {fail_at} fails try 1 (HTTP 400)", header, rows)


# -- 5. resumable staging -------------------------------------------------------------------------------------------


def staging_cost(emulator: EmulatorProcess, work: Path, records: int, rounds: int) -> str:
    use_connection(work, emulator.url)
    emulator.client.reset()
    emulator.client.configure(orders_per_country=records, latency_ms=0)

    class Store(dict):
        def set(self, key: str, value: Any) -> None:
            self[key] = value

        def delete(self, key: str) -> None:
            self.pop(key, None)

    order_pull(work, 4)
    best = {"plain": float("inf"), "resumable": float("inf")}
    for _ in range(rounds):
        best["plain"] = min(best["plain"], order_pull(work, 4, resumable=False)[0])
        seconds, manifest = order_pull(work, 4, resumable=True, retries=1, _context={"task_state_store": Store()})
        best["resumable"] = min(best["resumable"], seconds)
    rows = [
        ["plain (baseline)", f"{best['plain']:.2f}", "1.00x"],
        [
            "resumable (pages staged for a retry)",
            f"{best['resumable']:.2f}",
            f"{best['resumable'] / best['plain']:.2f}x",
        ],
    ]
    return table(
        f"Resumable staging: Order Status, {records:,} orders, 0 ms, 4 in flight, best of {rounds}",
        ["pull", "wall (s)", "vs plain"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--canned-server", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.canned_server is not None:
        canned_server(args.canned_server)
        return
    import logging

    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    logging.disable(logging.WARNING)
    quick = args.quick
    with tempfile.TemporaryDirectory(prefix="schneider-bench-") as tmp, EmulatorProcess() as emulator:
        work = Path(tmp)
        print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPU(s) shared by the servers and the client\n")
        print(per_call(work, 500 if quick else 1500, 3 if quick else 5), flush=True)
        print(pull_times(emulator, work, 4_000 if quick else 20_000), flush=True)
        print(spike_arrest(emulator, work, 100 if quick else 400, 20), flush=True)
        print(fan_out_resume(emulator, work, 1000, 800), flush=True)
        print(staging_cost(emulator, work, 4_000 if quick else 20_000, 2 if quick else 3), flush=True)


if __name__ == "__main__":
    main()
