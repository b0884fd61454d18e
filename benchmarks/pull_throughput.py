"""Order Status pull: throughput vs a hand-written sequential loop, and peak memory vs collecting a list.

Starts its own emulator subprocess and prints markdown tables. Everything compared is measured in the same
run on the same machine (numbers from different machines are not comparable; the ratios are the point).

1. Throughput: N orders at 100 per page with L ms emulator latency per call. Baseline: the loop a data
   engineer writes by hand (``requests.Session``, page 1, 2, ... until ``totalNumberOfPages``). Provider:
   ``SchneiderOrderStatusOperator`` streaming to a JSON Lines file at ``max_concurrency`` 1, 4, 8.
2. Memory: peak RSS (``VmHWM``) of one child process per pull, provider streaming to the sink vs the same
   hook collecting a list first (both children import the same stack, so only list-vs-stream differs),
   each at a small and a large record count, 0 ms latency.

    .venv/bin/python benchmarks/pull_throughput.py            # 20,000 records @ 50 ms; RSS at 100k and 1M
    .venv/bin/python benchmarks/pull_throughput.py --quick    # 4,000 records @ 50 ms; RSS at 20k and 200k
"""

from __future__ import annotations

import argparse
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

COUNTRY = "FR"
PAGE_SIZE = 100
ORDERS_PATH = f"/v1/supply-chain/partner-order-status/orders/{COUNTRY}"
CLIENT = ("demo-client", "demo-secret")


def prepare_environment(work: Path, url: str) -> None:
    """A private AIRFLOW_HOME and a ``schneider_default`` connection to the emulator (inherited by children)."""
    os.environ.update(
        {
            "AIRFLOW_HOME": str(work / "airflow_home"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "ERROR",
            "AIRFLOW_CONN_SCHNEIDER_DEFAULT": json.dumps(
                {
                    "conn_type": "schneider",
                    "host": url,
                    "login": CLIENT[0],
                    "password": CLIENT[1],
                    "extra": {"token_cache_dir": str(work / "token_cache"), "timeout": 120},
                }
            ),
        }
    )


# -- the two ways of pulling -----------------------------------------------------------------------------


def hand_written_loop(url: str, out: Path) -> int:
    """What one writes without the provider: a token, then page after page, appending to a file."""
    import requests

    session = requests.Session()
    token = session.post(f"{url}/token", data={"grant_type": "client_credentials"}, auth=CLIENT, timeout=30)
    session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
    count, page = 0, 1
    with out.open("w", encoding="utf-8") as fh:
        while True:
            reply = session.get(f"{url}{ORDERS_PATH}", params={"page": page, "page-size": PAGE_SIZE}, timeout=60)
            reply.raise_for_status()
            body = reply.json()
            for order in body["orderList"]:
                fh.write(json.dumps(order) + "\n")
                count += 1
            if page >= body["pagination"]["totalNumberOfPages"]:
                return count
            page += 1


def task_context() -> dict[str, Any]:
    import pendulum

    start = pendulum.datetime(2026, 11, 4, tz="UTC")
    return {"ti": SimpleNamespace(map_index=-1), "data_interval_start": start, "data_interval_end": start}


def provider_pull(out: Path, concurrency: int) -> dict[str, Any]:
    from airflow_provider_schneider.operators.orders import SchneiderOrderStatusOperator

    op = SchneiderOrderStatusOperator(
        task_id="bench", country=COUNTRY, output_path=f"file://{out}", max_concurrency=concurrency
    )
    return op.execute(task_context())


def warm_up() -> None:
    """Import the provider stack and cache a token before timing: inside a task both are already done."""
    import requests  # noqa: F401

    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    hook = SchneiderHook()
    hook.get_token()
    hook.close()


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


# -- memory: one child process per measurement -----------------------------------------------------------


def peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child(mode: str, out: Path) -> None:
    """Runs in a fresh interpreter: one pull, then prints its own peak RSS as JSON."""
    import logging

    logging.disable(logging.WARNING)
    import airflow_provider_schneider.hooks.schneider  # noqa: F401 - same imports in both modes
    from airflow_provider_schneider.operators.orders import SchneiderOrderStatusOperator

    baseline = peak_rss_kib()
    start = time.perf_counter()
    if mode == "stream":
        records = provider_pull(out, 4)["records"]
    else:  # the same hook and pages, but every record collected into a list before writing
        hook = SchneiderOrderStatusOperator(task_id="list", country=COUNTRY).get_hook()
        rows = list(hook.iter_records(ORDERS_PATH, records_field="orderList", page_size=PAGE_SIZE))
        with out.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
        records = len(rows)
        hook.close()
    facts = {"records": records, "peak_kib": peak_rss_kib(), "import_kib": baseline}
    print(json.dumps({**facts, "seconds": time.perf_counter() - start}))


def measure_child(mode: str, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", mode, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- main ------------------------------------------------------------------------------------------------


def throughput(emulator: EmulatorProcess, work: Path, records: int, latency_ms: float) -> list[str]:
    emulator.client.configure(orders_per_country=records, latency_ms=latency_ms)
    warm_up()
    rows = []
    seconds, count = timed(hand_written_loop, emulator.url, work / "baseline.jsonl")
    assert count == records, count
    base = seconds
    rows.append(("hand-written loop (requests.Session, sequential)", seconds, count, None))
    checksums = set()
    for concurrency in (1, 4, 8):
        emulator.client.reset_counters()
        seconds, manifest = timed(provider_pull, work / f"provider_{concurrency}.jsonl", concurrency)
        assert manifest["records"] == records, manifest
        checksums.add(manifest["sha256"])
        peak = emulator.client.stats()["peak_concurrency"]
        rows.append((f"provider, max_concurrency={concurrency} (peak in flight {peak})", seconds, records, None))
    assert len(checksums) == 1, "every concurrency must produce the same file"
    pages = -(-records // PAGE_SIZE)
    lines = [
        f"### Throughput: {records:,} orders, {PAGE_SIZE}/page ({pages} calls), {latency_ms:g} ms latency per call",
        "",
        "| pull | wall time (s) | records/s | speed-up vs hand-written |",
        "|---|---:|---:|---:|",
    ]
    for name, secs, count, _ in rows:
        lines.append(f"| {name} | {secs:.2f} | {count / secs:,.0f} | {base / secs:.2f}x |")
    lines.append("")
    lines.append("All provider runs wrote byte-identical files (same sha256) in page order.")
    return lines


def memory(emulator: EmulatorProcess, work: Path, sizes: tuple[int, int]) -> list[str]:
    emulator.client.configure(latency_ms=0)
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for size in sizes:
        emulator.client.configure(orders_per_country=size)
        for mode in ("stream", "list"):
            facts = measure_child(mode, work / f"{mode}_{size}.jsonl")
            assert facts["records"] == size, facts
            results[(mode, size)] = facts
            (work / f"{mode}_{size}.jsonl").unlink()
    small, large = sizes
    lines = [
        f"### Peak RSS: {small:,} vs {large:,} orders, {PAGE_SIZE}/page ({large // PAGE_SIZE:,} calls), 0 ms latency",
        "",
        "| pull (one child process each) | peak RSS at "
        f"{small:,} (MiB) | peak RSS at {large:,} (MiB) | growth (MiB) | pull time at {large:,} (s) |",
        "|---|---:|---:|---:|---:|",
    ]
    names = {"stream": "provider, streaming to the JSON Lines sink", "list": "same hook, records collected in a list"}
    for mode in ("stream", "list"):
        a, b = results[(mode, small)], results[(mode, large)]
        lines.append(
            f"| {names[mode]} | {a['peak_kib'] / 1024:.0f} | {b['peak_kib'] / 1024:.0f} | "
            f"{(b['peak_kib'] - a['peak_kib']) / 1024:+.0f} | {b['seconds']:.1f} |"
        )
    lines.append("")
    imports = results[("stream", small)]["import_kib"] / 1024
    lines.append(
        f"RSS after imports (Airflow + provider), before pulling: {imports:.0f} MiB. Latency is 0 ms here so the"
        " big pulls finish in reasonable time; memory does not depend on latency."
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller pulls (about a minute)")
    parser.add_argument("--records", type=int, help="orders for the throughput part (default 20,000)")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--child", choices=("stream", "list"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.out))
        return

    records = args.records or (4_000 if args.quick else 20_000)
    sizes = (20_000, 200_000) if args.quick else (100_000, 1_000_000)
    with tempfile.TemporaryDirectory(prefix="schneider-bench-") as tmp, EmulatorProcess() as emulator:
        work = Path(tmp)
        prepare_environment(work, emulator.url)
        print(f"emulator {emulator.url}, {os.cpu_count()} CPU(s) shared by emulator and client\n", flush=True)
        print("\n".join(throughput(emulator, work, records, args.latency_ms)), flush=True)
        print()
        print("\n".join(memory(emulator, work, sizes)), flush=True)


if __name__ == "__main__":
    main()
