"""Output formats and resume on retry: wall time, peak memory and bytes per format; pages a resumed retry
fetches again versus a restarted one.

Starts its own emulator subprocess and prints markdown tables; everything compared is measured in the same
run on the same machine.

1. Formats: ``SchneiderOrderStatusOperator`` pulls N orders (100 per page, 0 ms latency) into jsonl,
   jsonl.gz, csv, csv.gz, parquet (snappy) and parquet (zstd) with every field declared, and jsonl, csv and
   parquet with the columns inferred from the records instead (the baseline), one child process per pull:
   wall time, peak RSS (``VmHWM``) at a small and a large N (flat means streaming), bytes on disk.
2. Staging cost: the same jsonl pull with ``resumable=True`` (pages also staged as chunks for a retry) and
   without, in-process; the task state store is a dict here (the real one is one API-server call per chunk).
3. Resume vs restart: ``airflow dags test`` of a DAG whose pull has ``retries=1`` and fails its first try at
   page k of N (a 500 on that page): pages the emulator served per try, with ``resumable`` on and off.

    .venv/bin/python benchmarks/output_formats.py            # 100k and 1M records; resume at page 1,900 of 2,000
    .venv/bin/python benchmarks/output_formats.py --quick    # 20k and 200k; resume at page 190 of 200
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from pull_throughput import peak_rss_kib, prepare_environment, task_context  # noqa: E402

from airflow_provider_schneider.emulator.client import EmulatorProcess  # noqa: E402
from airflow_provider_schneider.emulator.order_data import UNDECLARED_ORDER_FIELDS  # noqa: E402

ORDERS_PATH = "/v1/supply-chain/partner-order-status/orders/FR"
#: Every field of the emulator's orders declared (Order Status declares three; a DAG adds the rest): the
#: declared rows write the same typed columns as the inferred ones, so the two compare like for like.
ORDER_HINTS = UNDECLARED_ORDER_FIELDS
FORMATS = {
    "jsonl": {"output_format": "jsonl"},
    "jsonl.gz": {"output_format": "jsonl", "compression": "gzip"},
    "csv": {"output_format": "csv"},
    "csv.gz": {"output_format": "csv", "compression": "gzip"},
    "parquet (snappy)": {"output_format": "parquet"},
    "parquet (zstd)": {"output_format": "parquet", "compression": "zstd"},
}
#: The same pulls with the columns inferred from each pull's records (an ``endpoint`` without hints: how
#: every pull was written before declared schemas): the baseline of the declared rows above.
INFERRED = {
    f"{label}, inferred": kwargs for label, kwargs in FORMATS.items() if "gz" not in label and "zstd" not in label
}
VARIANTS = {**FORMATS, **INFERRED}


class DictStore:
    """The task state store's interface over a dict (benchmark only: measures our staging, not Airflow)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.writes += 1
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


def child(label: str, out: Path, resumable: bool) -> None:
    """A fresh interpreter: one pull, then its own wall time, peak RSS and the bytes written, as JSON."""
    import logging

    logging.disable(logging.WARNING)
    from airflow_provider_schneider.operators import SchneiderApiOperator
    from airflow_provider_schneider.operators.orders import SchneiderOrderStatusOperator

    baseline = peak_rss_kib()
    store = DictStore()
    common = {"task_id": "bench", "output_path": f"file://{out}/", "max_concurrency": 4, "resumable": resumable}
    op: Any
    if label in INFERRED:
        op = SchneiderApiOperator(
            endpoint=ORDERS_PATH, records_field="orderList", paginate=True, page_size=100, **common, **VARIANTS[label]
        )
    else:
        op = SchneiderOrderStatusOperator(country="FR", schema_hints=ORDER_HINTS, **common, **VARIANTS[label])
    context = {**task_context(), "task_state_store": store} if resumable else task_context()
    start = time.perf_counter()
    manifest = op.execute(context)
    seconds = time.perf_counter() - start
    facts = {"records": manifest["records"], "bytes": manifest["bytes"], "seconds": seconds}
    print(json.dumps({**facts, "peak_kib": peak_rss_kib(), "import_kib": baseline, "checkpoints": store.writes}))


def measure_child(label: str, out: Path, resumable: bool = False) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--child", label, "--out", str(out)] + (["--resumable"] if resumable else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {label} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def formats_table(emulator: EmulatorProcess, work: Path, sizes: tuple[int, int], repeat: int = 3) -> list[str]:
    small, large = sizes
    results: dict[tuple[str, int], dict[str, Any]] = {}
    for size in sizes:
        emulator.client.configure(orders_per_country=size, latency_ms=0)
        for label in VARIANTS:
            facts = measure_child(label, work / f"{label}-{size}".replace(" ", ""))
            assert facts["records"] == size, facts
            results[(label, size)] = facts
    lines = [
        f"### Formats: {small:,} and {large:,} orders (100/page, 0 ms latency, max_concurrency 4), one child each",
        "",
        f"| format | wall s at {large:,} | records/s | peak RSS at {small:,} (MiB) | peak RSS at {large:,} (MiB) "
        f"| growth (MiB) | bytes at {large:,} (MB) | bytes vs jsonl |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base_bytes = results[("jsonl", large)]["bytes"]
    for label in VARIANTS:
        a, b = results[(label, small)], results[(label, large)]
        lines.append(
            f"| {label} | {b['seconds']:.1f} | {large / b['seconds']:,.0f} | {a['peak_kib'] / 1024:.0f} | "
            f"{b['peak_kib'] / 1024:.0f} | {(b['peak_kib'] - a['peak_kib']) / 1024:+.0f} | "
            f"{b['bytes'] / 1e6:.1f} | {b['bytes'] / base_bytes:.2f}x |"
        )
    imports = results[("jsonl", small)]["import_kib"] / 1024
    lines += [
        "",
        "Rows without a suffix write the declared schema (Order Status's three fields plus the other six as "
        "`schema_hints`, and `_extra`); `inferred` rows infer the columns from the pull's records (an endpoint "
        "without hints), spooling the records to local disk first for CSV and Parquet.",
        "",
        f"RSS after imports (Airflow, provider, pyarrow not yet), before pulling: {imports:.0f} MiB.",
        "",
        f"### Declared schema vs inferred columns at {large:,} orders (same run, best of {repeat}, alternated)",
        "",
        "| format | inferred wall s | declared wall s | declared / inferred | inferred peak RSS (MiB) "
        "| declared peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for inferred in INFERRED:
        declared = inferred.removesuffix(", inferred")
        runs = {label: [results[(label, large)]] for label in (inferred, declared)}
        for _ in range(repeat - 1):  # alternated, so a noisy minute hits both sides alike
            for label in (inferred, declared):
                runs[label].append(measure_child(label, work / f"{label}-{large}-again".replace(" ", "")))
        a, b = (min(runs[label], key=lambda facts: facts["seconds"]) for label in (inferred, declared))
        lines.append(
            f"| {declared} | {a['seconds']:.1f} | {b['seconds']:.1f} | {b['seconds'] / a['seconds']:.2f}x | "
            f"{a['peak_kib'] / 1024:.0f} | {b['peak_kib'] / 1024:.0f} |"
        )
    return lines


def staging_table(emulator: EmulatorProcess, work: Path, size: int) -> list[str]:
    emulator.client.configure(orders_per_country=size, latency_ms=0)
    rows = []
    for resumable in (False, True):
        facts = measure_child("jsonl", work / f"staging-{resumable}", resumable)
        rows.append((resumable, facts))
    base = rows[0][1]["seconds"]
    lines = [
        f"### Staging cost of resume: {size:,} orders to jsonl ({size // 100:,} pages), no failure",
        "",
        "| pull | wall s | vs not staged | peak RSS (MiB) | checkpoints written |",
        "|---|---:|---:|---:|---:|",
    ]
    for resumable, facts in rows:
        name = "resumable=True (pages staged as gzip chunks)" if resumable else "resumable=False"
        lines.append(
            f"| {name} | {facts['seconds']:.1f} | {facts['seconds'] / base:.2f}x | {facts['peak_kib'] / 1024:.0f} | "
            f"{facts['checkpoints']} |"
        )
    return lines


RESUME_DAG = """
import datetime as dt
import pendulum
from airflow.sdk import dag
from airflow_provider_schneider.operators import SchneiderOrderStatusOperator


@dag(schedule="@daily", start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), catchup=False)
def {dag_id}():
    SchneiderOrderStatusOperator(
        task_id="pull", country="FR", retries=1, retry_delay=dt.timedelta(seconds=1), retry_max_attempts=1,
        max_concurrency=4, resumable={resumable}, output_base="file://{base}",
    )


{dag_id}()
"""


def resume_table(emulator: EmulatorProcess, work: Path, pages: int, fail_at: int) -> list[str]:
    dags = work / "dags"
    dags.mkdir(exist_ok=True)
    for resumable in (True, False):
        dag_id = f"bench_resume_{'on' if resumable else 'off'}"
        text = RESUME_DAG.format(dag_id=dag_id, resumable=resumable, base=work / "resume-out")
        (dags / f"{dag_id}.py").write_text(textwrap.dedent(text))
    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO"}
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True)
    lines = [
        f"### Resume vs restart: {pages:,} pages of 100, the first try fails at page {fail_at:,} (one 500)",
        "",
        "| retry of the pull | pages served, try 1 | pages served, try 2 | pages served in all | wall s (both tries) |",
        "|---|---:|---:|---:|---:|",
    ]
    for resumable in (True, False):
        emulator.client.reset()
        emulator.client.configure(orders_per_country=pages * 100, latency_ms=0)
        emulator.client.add_fault(target="api", kind="status", status=500, times=1, match_query={"page": str(fail_at)})
        dag_id = f"bench_resume_{'on' if resumable else 'off'}"
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", "dags", "test", dag_id, "2026-11-05"], env=env, capture_output=True
        )
        seconds = time.perf_counter() - start
        if proc.returncode != 0 or b"state=success" not in proc.stdout + proc.stderr:
            raise SystemExit(f"dags test {dag_id} failed:\n{(proc.stdout + proc.stderr)[-3000:].decode()}")
        served = [r for r in emulator.client.request_log() if r["channel"] == "api" and r["path"] == ORDERS_PATH]
        # each try starts with a good page 1 (a 401 on a token the emulator forgot is replayed, so not one)
        retry = [i for i, r in enumerate(served) if r["page"] == "1" and r["outcome"] == "200"][1]
        first, second = retry, len(served) - retry
        name = "resumable (default with retries)" if resumable else "resumable=False (restart from page 1)"
        lines.append(f"| {name} | {first:,} | {second:,} | {first + second:,} | {seconds:.1f} |")
    lines += [
        "",
        "Try 1 also served the pages in flight (4 calls) when page k failed. Wall time includes Airflow's start-up"
        " (twice) and the 1 s retry delay.",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller pulls")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each declared/inferred pair (best kept)")
    parser.add_argument("--child", choices=tuple(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--resumable", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.out), args.resumable)
        return
    sizes = (20_000, 200_000) if args.quick else (100_000, 1_000_000)
    pages, fail_at = (200, 190) if args.quick else (2_000, 1_900)
    with tempfile.TemporaryDirectory(prefix="schneider-bench-") as tmp, EmulatorProcess() as emulator:
        work = Path(tmp)
        prepare_environment(work, emulator.url)
        print(f"emulator {emulator.url}, {os.cpu_count()} CPU(s) shared by emulator and client\n", flush=True)
        print("\n".join(formats_table(emulator, work, sizes, args.repeat)) + "\n", flush=True)
        print("\n".join(staging_table(emulator, work, sizes[1])) + "\n", flush=True)
        print("\n".join(resume_table(emulator, work, pages, fail_at)), flush=True)


if __name__ == "__main__":
    main()
