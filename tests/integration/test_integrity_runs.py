"""Between runs, with real Airflow: ``airflow dags test`` with a run's conf, as anyone allowed to trigger a DAG
would send it. A templated location that tries to leave its base, two requests that differ only in a
templated value, and a catalog delta on a schedule whose intervals have no length."""

from __future__ import annotations

import hashlib
import textwrap

import pytest

from airflow_provider_schneider.emulator import data
from airflow_provider_schneider.sinks import part_uris, read_jsonl
from tests.support.operators import local

SEED = 42

INTEGRITY_DAGS = """
import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_schneider.operators import (
    CHANGED_BEFORE_INTERVAL_END,
    DELTA_SINCE_INTERVAL_START,
    SchneiderOrderStatusOperator,
    SchneiderProductCatalogOperator,
)

START = pendulum.datetime(2026, 11, 1, tz="UTC")


@task
def report(manifest):
    print(f"SCHNEIDER_SUMMARY {{manifest}}")


@dag(schedule=None, start_date=START, params={{"region": Param("emea", type="string")}})
def schneider_confined():
    SchneiderOrderStatusOperator(
        task_id="pull",
        country="FR",
        output_path="file://{base}/base/{{{{ params.region }}}}",
        max_records_per_file=100,
    )


@dag(schedule="@daily", start_date=START, catchup=False, params={{"country": Param("FR", type="string")}})
def schneider_templated_names():
    report(SchneiderOrderStatusOperator(task_id="pull", country="{{{{ params.country }}}}", output_base="file://{base}/data").output)


@dag(schedule="@daily", start_date=START, catchup=False)
def schneider_empty_delta():
    SchneiderProductCatalogOperator(
        task_id="delta",
        supplier_id="SE-FR-0001",
        customer_id="0012345678",
        date_of_reference=DELTA_SINCE_INTERVAL_START,
        changed_before=CHANGED_BEFORE_INTERVAL_END,
        output_base="file://{base}/data",
    )


schneider_confined()
schneider_templated_names()
schneider_empty_delta()
"""


@pytest.fixture
def integrity(tmp_path, emulator, run_dag):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "schneider_integrity.py").write_text(textwrap.dedent(INTEGRITY_DAGS.format(base=tmp_path)))

    def run(dag_id: str, conf: dict | None = None, logical_date: str = "2026-11-05"):
        return run_dag(dag_id, logical_date, conf=conf, env={"AIRFLOW__CORE__DAGS_FOLDER": str(dags)})

    return run


def api_calls(emulator) -> int:
    return sum(emulator.stats()["api_calls_by_status"].values())


def test_a_conf_value_cannot_send_the_output_out_of_its_base(emulator, integrity, tmp_path):
    """``output_path="file://.../base/{{ params.region }}"`` with parts, triggered with ``region=../victim``:
    it used to replace the folder ``victim`` beside ``base`` with part files. Now the task fails before any
    call, naming the task and the field, and ``victim`` is untouched."""
    victim = tmp_path / "victim"
    (victim / "important").mkdir(parents=True)
    (victim / "keep.txt").write_text("mine")
    (victim / "important/data.csv").write_text("a,b\n1,2\n")
    emulator.configure(orders_per_country=250)

    for region in ("../victim", "%2e%2e/victim", "..%2fvictim"):
        result = integrity("schneider_confined", {"region": region})
        assert not result.succeeded
        assert "OutputLocationError" in result.output and "pull: output_path" in result.output, result.output[-3000:]

    left = sorted(str(p.relative_to(victim)) for p in victim.rglob("*"))
    assert left == ["important", "important/data.csv", "keep.txt"]
    assert (victim / "keep.txt").read_text() == "mine"
    assert api_calls(emulator) == 0  # refused before the first call
    assert not (tmp_path / "base").exists()

    result = integrity("schneider_confined", {"region": "emea"})  # the intended use still works
    assert result.succeeded, result.output[-3000:]
    assert len(list((tmp_path / "base/emea").glob("part-*.jsonl"))) == 3


def test_two_requests_differing_in_a_templated_value_never_share_a_default_target(emulator, integrity, tmp_path):
    """``country="{{ params.country }}"``, one logical date, run with FR then DE: two files, each manifest's
    sha256 describes the bytes at its uri (FR's used to be overwritten by DE's)."""
    emulator.configure(orders_per_country=120)
    summaries = {}
    for country in ("FR", "DE"):
        result = integrity("schneider_templated_names", {"country": country})
        assert result.succeeded, result.output[-3000:]
        [summaries[country]] = result.summaries

    folder = tmp_path / "data/schneider_templated_names/pull/20261105T000000__20261105T000000"
    assert {country: local(m["uri"]) for country, m in summaries.items()} == {
        "FR": folder / "country=FR.jsonl",
        "DE": folder / "country=DE.jsonl",
    }
    for country, manifest in summaries.items():
        [uri] = part_uris(manifest)
        assert hashlib.sha256(local(uri).read_bytes()).hexdigest() == manifest["sha256"]
        assert list(read_jsonl(uri)) == [data.order(SEED, country, i) for i in range(120)]
        assert manifest["snapshot_at"] <= manifest["fetched_at"]  # Order Status is a snapshot: when it was taken


def test_a_catalog_delta_with_an_empty_window_fails_before_any_call(emulator, integrity):
    """``schedule="@daily"`` gives zero-length data intervals in Airflow 3: the documented delta
    ``[interval start, interval end)`` is empty. It used to succeed with 0 records and an empty file."""
    result = integrity("schneider_empty_delta")

    assert not result.succeeded
    assert "delta: the catalog delta [2026-11-05, 2026-11-05) is empty" in result.output, result.output[-3000:]
    assert "zero length" in result.output and "CronDataIntervalTimetable" in result.output
    assert api_calls(emulator) == 0
