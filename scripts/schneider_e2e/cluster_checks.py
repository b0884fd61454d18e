"""What the cluster run checks beyond one phase's numbers: the objects on S3 (exact records per interval and
change type, no temporary objects), who ran what (task runs and token requests per worker), the
downstream read-back, and S3 atomicity (a failed pull leaves no object at its target)."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from schneider_e2e.cluster_dag import CHANGE_TYPES, DAG_ID
from schneider_e2e.cluster_services import S3_BUCKET, S3_CONN_ID, s3_client
from schneider_e2e.dag_under_test import run_interval
from schneider_e2e.measure import PhaseResult

PULL_TASK = "pull_catalog_delta"
PREFIX = f"data/{DAG_ID}/{PULL_TASK}/"
TOKEN_LOG_LINE = "Requested a new Schneider token"
#: A lease loser that got the winner's token instead of asking the endpoint (tokens/manager.py).
LEASE_WAIT_LINE = "token renewal (cluster lease): no request from here"


def list_objects(s3_url: str) -> dict[str, bytes]:
    client = s3_client(s3_url)
    found: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=S3_BUCKET):
        for item in page.get("Contents", []):
            found[item["Key"]] = client.get_object(Bucket=S3_BUCKET, Key=item["Key"])["Body"].read()
    return found


def expected_records(emulator_config: Mapping[str, Any], today: dt.date, start: dt.date, end: dt.date, kind: str):
    from airflow_provider_schneider.emulator import data

    seed, products = int(emulator_config["seed"]), int(emulator_config["products"])
    if start > today:
        return []
    served = data.delta(seed, start, today, kind, products)
    return [change for change in served if str(change["changeDate"]) < end.isoformat()]


def check_s3_outputs(
    result: PhaseResult,
    s3_url: str,
    runs: list[Mapping[str, Any]],
    emulator_config: Mapping[str, Any],
    today: dt.date,
) -> None:
    """One object per interval and map index, holding exactly the emulator's records; nothing else."""
    objects = list_objects(s3_url)
    wanted: dict[str, tuple[dt.date, dt.date, str]] = {}
    for run in runs:
        start, end = run_interval(run)
        stem = f"{start:%Y%m%dT%H%M%S}__{end:%Y%m%dT%H%M%S}"
        for kind in CHANGE_TYPES:  # named by the mapped value: .expand(change_type=CHANGE_TYPES)
            wanted[f"{PREFIX}{stem}/change_type={kind}.jsonl.gz"] = (start.date(), end.date(), kind)
    temporary = sorted(key for key in objects if key.endswith(".partial") or "/." in key)
    extra = sorted(set(objects) - set(wanted) - set(temporary))
    missing = sorted(set(wanted) - set(objects))
    result.check(
        "one S3 object per interval and change type",
        bool(wanted) and not missing and not extra,
        f"{len(wanted) - len(missing)}/{len(wanted)} objects"
        + (f", missing {missing[:2]}" if missing else "")
        + (f", extra {extra[:2]}" if extra else ""),
    )
    result.check("no temporary objects left", not temporary, f"{len(temporary)} temporary {temporary[:2]}")
    mismatched, records, exact_intervals = [], 0, set()
    per_interval_ok: dict[dt.date, bool] = {}
    for key, (start, end, kind) in sorted(wanted.items()):
        if key not in objects:
            per_interval_ok[start] = False
            continue
        rows = [json.loads(line) for line in gzip.decompress(objects[key]).splitlines() if line.strip()]
        records += len(rows)
        ok = rows == expected_records(emulator_config, today, start, end, kind)
        per_interval_ok[start] = per_interval_ok.get(start, True) and ok
        if not ok:
            mismatched.append(key)
        result.files[key] = hashlib.sha256(objects[key]).hexdigest()
    exact_intervals = {day for day, ok in per_interval_ok.items() if ok}
    result.records = records
    result.check(
        "records exact per interval (4 change types each)",
        not mismatched and len(exact_intervals) == len(runs) > 0,
        f"{len(exact_intervals)}/{len(runs)} intervals exact, {records} records"
        + (f", mismatched {mismatched[:2]}" if mismatched else ""),
    )


_ATTEMPT = re.compile(r"attempt=(\d+)\.log$")


def per_worker(tis: list[Mapping[str, Any]], hosts: dict[str, Path], try_number: int) -> dict[str, dict[str, int]]:
    """Task runs (from the metadata DB's hostname), token requests and lease waits that ended with another
    host's token (from each worker's own task logs)."""
    runs = Counter(str(ti.get("hostname") or "?") for ti in tis)
    table: dict[str, dict[str, int]] = {}
    for name, home in hosts.items():
        requests = waits = 0
        for log in (home / "airflow_home" / "logs").rglob("attempt=*.log"):
            match = _ATTEMPT.search(log.name)
            if match and int(match.group(1)) == try_number:
                text = log.read_text(errors="replace")
                requests += text.count(TOKEN_LOG_LINE)
                waits += text.count(LEASE_WAIT_LINE)
        table[name] = {"task_runs": runs.get(name, 0), "token_requests": requests, "lease_waits": waits}
    return table


def read_back_hosts(tis: list[Mapping[str, Any]]) -> tuple[int, int]:
    """(intervals whose read_back ran on a worker other than at least one of its pulls, intervals)."""
    by_run: dict[str, dict[str, set[str]]] = {}
    for ti in tis:
        slot = by_run.setdefault(str(ti["run_id"]), {"pull": set(), "read": set()})
        slot["read" if ti["task_id"] == "read_back" else "pull"].add(str(ti.get("hostname")))
    other = sum(1 for slot in by_run.values() if slot["read"] and slot["pull"] - slot["read"])
    return other, len(by_run)


def prove_s3_atomicity(s3_url: str) -> tuple[bool, str]:
    """A pull that fails after writing leaves no object at a new target and the old bytes at an existing one."""
    storage = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": s3_url, "region_name": "us-east-1"},
    }
    os.environ[f"AIRFLOW_CONN_{S3_CONN_ID.upper()}"] = json.dumps(storage)
    from airflow_provider_schneider.outputs.writer import OutputSpec, RecordWriter

    client = s3_client(s3_url)
    base = f"s3://{S3_BUCKET}/atomicity"

    def keys() -> set[str]:
        listing = client.list_objects_v2(Bucket=S3_BUCKET, Prefix="atomicity/")
        return {item["Key"] for item in listing.get("Contents", [])}

    class PullFailed(RuntimeError):
        pass

    def failing_pull(uri: str) -> None:
        try:
            with RecordWriter(OutputSpec(uri, "jsonl", "gzip", storage_conn_id=S3_CONN_ID)) as sink:
                for i in range(20_000):  # > one upload block: bytes did reach the store before the failure
                    sink.write({"n": i, "pad": "x" * 64})
                raise PullFailed("the API failed mid-pull")
        except PullFailed:
            pass

    failing_pull(f"{base}/new.jsonl")
    after_new = keys()
    with RecordWriter(OutputSpec(f"{base}/old.jsonl", "jsonl", "gzip", storage_conn_id=S3_CONN_ID)) as sink:
        sink.write({"n": "old"})
    old = client.get_object(Bucket=S3_BUCKET, Key="atomicity/old.jsonl.gz")["Body"].read()
    failing_pull(f"{base}/old.jsonl")
    kept = client.get_object(Bucket=S3_BUCKET, Key="atomicity/old.jsonl.gz")["Body"].read()
    after_old = keys()
    ok = not after_new and kept == old and after_old == {"atomicity/old.jsonl.gz"}
    detail = (
        f"failed pull to a new target: {len(after_new)} objects under the prefix; failed rerun over an existing "
        f"object: {'old bytes kept' if kept == old else 'object changed'}, objects {sorted(after_old)}"
    )
    return ok, detail
