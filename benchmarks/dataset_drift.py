"""30 daily Order Status pulls from an API that drifts by day, read back as one dataset: what each engine makes
of the folder when every file holds the declared schema, and when each pull infers its own (the baseline).

Starts its own emulator (``drift="daily"``: ten kinds of drift, one per day, see
``airflow_provider_schneider/emulator/drift.py``), runs the pulls in-process (one per data interval, the
emulator's "today" moved to that day first), then reads the task's folder with ``pyarrow.dataset``, DuckDB's
``read_parquet`` and ``pandas.read_parquet``, none with a union option. A read is right when it returns every
row, every column any file has, and the values the API sent (``numberOfLines`` summed against the emulator's
own records: rounding shows as a difference).

    .venv/bin/python benchmarks/dataset_drift.py              # 30 days of 2,000 orders
    .venv/bin/python benchmarks/dataset_drift.py --orders 200
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from pull_throughput import prepare_environment  # noqa: E402

from airflow_provider_schneider.emulator import data  # noqa: E402
from airflow_provider_schneider.emulator.client import EmulatorProcess  # noqa: E402
from airflow_provider_schneider.emulator.drift import drifted_order  # noqa: E402
from airflow_provider_schneider.emulator.order_data import UNDECLARED_ORDER_FIELDS  # noqa: E402

ORDERS_PATH = "/v1/supply-chain/partner-order-status/orders/FR"
FIRST_DAY = dt.date(2026, 11, 1)
DAYS = [FIRST_DAY + dt.timedelta(days=i) for i in range(30)]
HINTS = {**UNDECLARED_ORDER_FIELDS, "delivery": "struct<mode: string, days: bigint>"}


def pull(root: Path, day: dt.date, layout: str, declared: bool) -> dict[str, Any]:
    import pendulum

    from airflow_provider_schneider.operators import SchneiderApiOperator, SchneiderOrderStatusOperator

    common = {
        "task_id": "orders",
        "output_path": f"file://{root}/",
        "output_format": "parquet",
        "output_layout": layout,
    }
    op: Any
    if declared:
        op = SchneiderOrderStatusOperator(country="FR", schema_hints=HINTS, **common)
    else:  # columns inferred from each pull's records: how every pull was written before declared schemas
        op = SchneiderApiOperator(endpoint=ORDERS_PATH, records_field="orderList", paginate=True, **common)
    start = pendulum.datetime(day.year, day.month, day.day, tz="UTC")
    context = {
        "ti": SimpleNamespace(map_index=-1),
        "data_interval_start": start,
        "data_interval_end": start.add(days=1),
    }
    return op.execute(context)


def expected_lines(days: list[dt.date], orders: int) -> float:
    """The sum of ``numberOfLines`` the API sent on ``days`` (numeric text counted as its number)."""
    total = 0.0
    for day in days:
        for index in range(orders):
            value = drifted_order(data.order(42, "FR", index), day, index)["numberOfLines"]
            total += float(value)
    return total


def read_with(engine: str, root: Path, layout: str) -> dict[str, Any]:
    """Rows, columns and the sum of ``numberOfLines`` (typed column, else what ``_extra`` kept), or the error."""
    import duckdb
    import pandas as pd
    import pyarrow.dataset as ds

    hive = layout == "hive"
    started = time.perf_counter()
    try:
        if engine == "pyarrow.dataset":
            table = ds.dataset(root, format="parquet", partitioning="hive" if hive else None).to_table()
            frame = table.to_pandas()
        elif engine == "DuckDB read_parquet":
            relation = f"read_parquet('{root}/**/*.parquet', hive_partitioning={str(hive).lower()})"
            frame = duckdb.connect().execute(f"SELECT * FROM {relation}").df()
        else:
            frame = pd.read_parquet(root)
    except Exception as exc:  # noqa: BLE001 - the engine's verdict is the measurement
        import re

        said = re.sub(r'"/[^"]*"', "<file>", str(exc).splitlines()[0]).replace("Invalid Input Error: ", "")
        return {"error": f"{type(exc).__name__}: {said[:110]}"}
    seconds = time.perf_counter() - started
    lines = pd.to_numeric(frame["numberOfLines"], errors="coerce") if "numberOfLines" in frame else None
    total = float(lines.fillna(0).sum()) if lines is not None else 0.0
    if "_extra" in frame:
        import json

        for text, value in zip(frame["_extra"], lines if lines is not None else [None] * len(frame), strict=True):
            if isinstance(text, str) and (value is None or pd.isna(value)):
                total += float(json.loads(text).get("numberOfLines") or 0)
    columns = {c for c in frame.columns if c not in ("dt",)}
    return {"rows": len(frame), "columns": columns, "lines": total, "seconds": seconds}


def table(emulator: EmulatorProcess, work: Path, days: list[dt.date], orders: int) -> list[str]:
    """Pull ``days`` in each layout, declared and inferred, and read each folder with each engine."""
    import pyarrow.parquet as pq

    want_lines = expected_lines(days, orders)
    lines = [
        f"### {len(days)} drifting days ({days[0]} to {days[-1]}) of {orders:,} orders, read as one dataset",
        "",
        f"| layout | schema | files | file schemas | {len(days)} pulls (s) | engine | read "
        f"| rows of {len(days) * orders:,} | columns dropped | numberOfLines sum vs sent |",
        "|---|---|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for layout in ("default", "hive"):
        for declared in (True, False):
            kind = "declared" if declared else "inferred"
            root = work / f"{len(days)}-{layout}-{kind}"
            started = time.perf_counter()
            for day in days:
                emulator.client.configure(today=day.isoformat())
                pull(root, day, layout, declared)
            written = time.perf_counter() - started
            files = sorted(root.rglob("*.parquet"))
            schemas = {pq.read_schema(f).remove_metadata() for f in files}
            union = set().union(*(set(schema.names) for schema in schemas))
            for engine in ("pyarrow.dataset", "DuckDB read_parquet", "pandas.read_parquet"):
                read = read_with(engine, root, layout)
                head = f"| {layout} | {kind} | {len(files)} | {len(schemas)} | {written:.1f} | {engine} "
                if "error" in read:
                    lines.append(head + f"| fails: `{read['error']}` | - | - | - |")
                    continue
                diff = read["lines"] - want_lines
                lines.append(
                    head + f"| {read['seconds']:.2f} s | {read['rows']:,} | {len(union - read['columns'])} of "
                    f"{len(union)} | {'equal' if abs(diff) < 1e-6 else f'{diff:+,.1f}'} |"
                )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=2_000, help="orders per day (default 2,000)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="schneider-drift-") as tmp, EmulatorProcess() as emulator:
        work = Path(tmp)
        prepare_environment(work, emulator.url)
        emulator.client.configure(orders_per_country=args.orders, drift="daily")
        print(f"emulator {emulator.url}, {os.cpu_count()} CPU(s)\n", flush=True)
        print("\n".join(table(emulator, work, DAYS, args.orders)) + "\n", flush=True)
        # The first three days (a field null everywhere, decimals, a new field): no file lacks a column of the
        # first, so an engine that reads the first file's columns does not fail; it gets the data wrong.
        print("\n".join(table(emulator, work, DAYS[:3], args.orders)), flush=True)


if __name__ == "__main__":
    main()
