"""The DAGs under test: which records each data interval must hold, and where the operator writes them."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from schneider_e2e.options import COUNTRY, BackfillSpec, Options


def expected_records(
    opts: Options, spec: BackfillSpec, interval: tuple[dt.date, dt.date], emulator_config: dict[str, Any]
) -> list[Any]:
    """What the emulator serves for one data interval, computed independently with ``emulator.data``.

    Catalog delta: the changes dated inside ``[start, end)`` (the API serves ``date-of-reference`` onwards,
    up to ``today`` or only that day, by ``delta_semantics``; the DAG bounds it by the interval end).
    Order Status: every order of the country, a snapshot.
    """
    from airflow_provider_schneider.emulator import data

    seed, products = int(emulator_config["seed"]), int(emulator_config["products"])
    start, end = interval
    if spec.pull_task == "pull_catalog_delta":
        if start > opts.today:
            return []
        served = data.delta(seed, start, start if opts.delta_semantics == "on" else opts.today, "all", products)
        return [change for change in served if str(change["changeDate"]) < end.isoformat()]
    orders = int(emulator_config["orders_per_country"])
    return [data.order(seed, COUNTRY, i) for i in range(orders)]


def record_key(spec: BackfillSpec, record: dict[str, Any]) -> str:
    if spec.pull_task == "pull_catalog_delta":
        return f"{record.get('commercialReference')}|{record.get('changeDate')}|{record.get('changeType')}"
    return str(record.get("orderNumber"))


def run_interval(run: Mapping[str, Any]) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.fromisoformat(run["data_interval_start"]), dt.datetime.fromisoformat(run["data_interval_end"])


#: The value each example DAG takes from a param (its default: the backfills pass no conf), which the default
#: output name carries as a ``name=value`` segment after the interval (pulls/naming.py).
TEMPLATED_SEGMENT = {"pull_catalog_delta": "change-type=all", "pull_orders": f"country={COUNTRY}"}


def interval_stem(run: Mapping[str, Any], spec: BackfillSpec) -> str:
    """The operator's default output name for a run's data interval, relative to the task's folder.

    Without a compression suffix: the example DAGs may write ``.jsonl`` or ``.jsonl.gz``.
    """
    start, end = run_interval(run)
    return f"{start:%Y%m%dT%H%M%S}__{end:%Y%m%dT%H%M%S}/{TEMPLATED_SEGMENT[spec.pull_task]}.jsonl"


def read_records(path: Path) -> list[Any]:
    import gzip

    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
