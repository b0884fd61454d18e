"""Helpers for the operator tests: a task context for direct ``execute`` calls, ``airflow tasks test``,
and small file facts (sha256, leftover temporary objects)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pendulum

from airflow_provider_schneider.emulator.order_data import UNDECLARED_ORDER_FIELDS
from tests.support.dagrun import DagRunResult

#: The emulator's order fields beyond the ones Order Status declares (a DAG declares them with schema_hints):
#: with these, a CSV or Parquet pull holds each order exactly, and ``_extra`` is null.
ORDER_HINTS = UNDECLARED_ORDER_FIELDS
#: The same for the emulator's catalog items (detail mode).
PRODUCT_HINTS = {
    "description": "string",
    "status": "string",
    "brand": "string",
    "range": "string",
    "longDescription": "string",
    "etimClass": "string",
    "countryOfOrigin": "string",
    "weight": "struct<value: double, unit: string>",
    "packagingQuantity": "bigint",
    "unitOfMeasure": "string",
}


def without_extra(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of a declared dataset whose ``_extra`` is null, without it (the records as the API sent them)."""
    assert all(row.get("_extra") in (None, "") for row in rows), [row["_extra"] for row in rows if row.get("_extra")][
        :3
    ]
    return [{k: v for k, v in row.items() if k != "_extra"} for row in rows]


def context(
    start: str = "2026-11-04", end: str | None = "2026-11-05", *, map_index: int = -1, **extra: Any
) -> dict[str, Any]:
    """The part of an Airflow task context the operators read (interval, map index, run id)."""
    begin = pendulum.parse(start)
    return {
        "ti": SimpleNamespace(map_index=map_index),
        "data_interval_start": begin,
        "data_interval_end": pendulum.parse(end) if end else begin,
        "run_id": f"test__{start}",
        **extra,
    }


def local(uri: str) -> Path:
    """``file:///x/y`` -> ``Path('/x/y')``."""
    return Path(urlsplit(uri).path) if uri.startswith("file://") else Path(uri)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def partials(folder: Path) -> list[Path]:
    """Temporary objects a sink left behind (there must be none after any pull, failed or not)."""
    return sorted(folder.rglob("*.partial")) if folder.exists() else []


def task_test(dag_id: str, task_id: str, logical_date: str, *, timeout: float = 300) -> DagRunResult:
    """``airflow tasks test DAG TASK DATE``: one real task run without the DAG run's retry loop, so a
    failing pull fails at once (``dags test`` would wait for the example DAG's retry delay)."""
    cmd = [sys.executable, "-m", "airflow", "tasks", "test", dag_id, task_id, logical_date]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=timeout)
    return DagRunResult(dag_id, proc.returncode, proc.stdout + proc.stderr)
