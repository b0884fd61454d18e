"""Fan-out pulls across tries and with bad items, under real Airflow (``airflow dags test`` runs the retry),
the real task state store (Airflow >= 3.3), real files and the emulator's item faults."""

from __future__ import annotations

import json
import textwrap

import pytest

from airflow_provider_schneider.emulator.catalog_data import product_reference
from airflow_provider_schneider.sinks import read_jsonl
from tests.support.dagrun import airflow_version

STOCK = "/productstocklevelchecker/1.1/products/"
#: 1,000 plain references (no '/' or '\\': the fault rules below match their paths as sent).
REFERENCES = [r for r in (product_reference(i) for i in range(1200)) if "/" not in r and "\\" not in r][:1000]

FANOUT_DAG = """
import datetime as dt
import json
import os

import pendulum
from airflow.sdk import dag

from airflow_provider_schneider.operators import SchneiderStockLevelOperator


@dag(schedule="@daily", start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), catchup=False)
def schneider_fanout():
    SchneiderStockLevelOperator(
        task_id="stock",
        product_references=json.loads(open("{refs}").read()),
        max_concurrency=4,
        retry_max_attempts=1,  # the injected 400 fails the try at once (a 400 is never retried anyway)
        retries=int(os.environ.get("SCHNEIDER_TEST_RETRIES", "1")),
        retry_delay=dt.timedelta(seconds=1),
        output_base="file://{base}",
        **json.loads(os.environ.get("SCHNEIDER_TEST_POLICY", "{{}}")),
    )


schneider_fanout()
"""


@pytest.fixture
def fanout_dag(tmp_path, emulator, run_dag):
    emulator.configure(products=1200)
    dags = tmp_path / "dags"
    dags.mkdir()
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps(REFERENCES))
    (dags / "schneider_fanout.py").write_text(textwrap.dedent(FANOUT_DAG.format(base=tmp_path / "out", refs=refs)))

    def run(date: str, **env: str):
        env = {"AIRFLOW__CORE__DAGS_FOLDER": str(dags), **env}
        return run_dag("schneider_fanout", date, env=env)

    def target(date: str):
        day = date.replace("-", "")
        return tmp_path / f"out/schneider_fanout/stock/{day}T000000__{day}T000000.jsonl"

    return run, target


def _lookups(emulator) -> list[tuple[float, str]]:
    return [(r["t"], r["path"][len(STOCK) :]) for r in emulator.request_log() if r["channel"] == "api"]


def test_a_retry_of_a_fan_out_fetches_only_the_items_still_missing(emulator, fanout_dag):
    run, target = fanout_dag
    assert run("2026-11-04").succeeded  # the uninterrupted pull, for comparison
    reference = target("2026-11-04").read_bytes()
    emulator.reset_counters()
    emulator.add_fault(target=STOCK + REFERENCES[799], kind="status", status=400, times=1)

    result = run("2026-11-05")

    assert result.succeeded, result.output[-4000:]
    asked = _lookups(emulator)
    failed_at = next(t for t, reference in asked if reference == REFERENCES[799])
    # The retry starts after retry_delay (1 s); what try 1 had in flight when item 800 failed is try 1's.
    retry = [reference for t, reference in asked if t > failed_at + 0.5]
    assert target("2026-11-05").read_bytes() == reference, "byte-identical to the uninterrupted pull"
    if airflow_version() < (3, 3):  # no task state store: a clear no-op, the retry asks every item again
        assert "Resume on retry needs Airflow >= 3.3" in result.output
        assert sorted(retry) == sorted(REFERENCES)
        return
    assert len(retry) <= 300, f"the retry made {len(retry)} lookups"
    assert retry.count(REFERENCES[799]) == 1 and REFERENCES[0] not in retry
    assert "are staged by an earlier try" in result.output
    print(f"lookups: {len(asked)} in all, {len(retry)} in the retry")  # the note quotes these


def test_collect_within_the_bound_succeeds_and_lists_the_failed_items(emulator, fanout_dag):
    run, target = fanout_dag
    for index in (10, 500):
        emulator.add_fault(target=STOCK + REFERENCES[index], kind="status", status=500, times=-1)
    policy = json.dumps({"on_item_error": "collect", "max_failed_items": 2})

    result = run("2026-11-06", SCHNEIDER_TEST_POLICY=policy, SCHNEIDER_TEST_RETRIES="0")

    assert result.succeeded, result.output[-4000:]
    out = target("2026-11-06")
    assert [r["productReference"] for r in read_jsonl(f"file://{out}")] == [
        r for i, r in enumerate(REFERENCES) if i not in (10, 500)
    ]
    sidecar = json.loads((out.parent / f"_{out.name}.failed.json").read_text())
    assert sidecar["count"] == 2
    assert [(f["item"], f["status"]) for f in sidecar["failed_items"]] == [
        (REFERENCES[10], 500),
        (REFERENCES[500], 500),
    ]
    assert f"Item {REFERENCES[10]} failed (500); collected" in result.output


def test_collect_past_the_bound_fails_and_commits_nothing(emulator, fanout_dag):
    run, target = fanout_dag
    for index in (10, 20, 30):
        emulator.add_fault(target=STOCK + REFERENCES[index], kind="status", status=400, times=-1)
    policy = json.dumps({"on_item_error": "collect", "max_failed_ratio": 0.002})  # 2 of 1,000

    result = run("2026-11-07", SCHNEIDER_TEST_POLICY=policy, SCHNEIDER_TEST_RETRIES="0")

    assert not result.succeeded
    assert "3 of 1000 items failed, more than the 2 allowed" in result.output
    out = target("2026-11-07")
    assert not out.exists() and not (out.parent / f"_{out.name}.failed.json").exists()
    assert not out.parent.exists() or not list(out.parent.iterdir()), "nothing committed, nothing staged"
