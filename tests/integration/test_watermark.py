"""Incremental Product Catalog delta: the watermark advances with each success, a manual run pulls exactly
what changed since the last success, a failed run does not move it, and without any watermark the data
interval is used.

Real DAG runs (``airflow dags test`` / ``airflow tasks test``) of a small incremental DAG written per test
(its own supplier id, so its own asset and watermark); records are compared with the emulator's pure data
functions. On Airflow 3.3+ the watermark lives in the asset state store, on older versions in the asset
events: the assertions name whichever this Airflow has.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pendulum
import pytest

from airflow_provider_schneider.emulator import data
from airflow_provider_schneider.operators import SchneiderProductCatalogOperator
from airflow_provider_schneider.pulls import watermark
from airflow_provider_schneider.sinks import read_jsonl
from tests.support.assets import asset_events, db_path_from_env, rows
from tests.support.dagrun import DagRunResult
from tests.support.metadata import metadata_connection
from tests.support.operators import context, local, sha256

SEED = 42
TODAY = dt.date(2026, 11, 20)
CUSTOMER = "0012345678"
CATALOG_PATH = "/v2/reference-data/product/product-catalog/products"

try:
    from airflow.sdk.execution_time.context import AssetStateStoreAccessors  # noqa: F401

    STORE = watermark.SOURCE_STATE_STORE  # Airflow 3.3+
except ImportError:
    STORE = watermark.SOURCE_ASSET_EVENT

DAG_FILE = """
import pendulum
from airflow.sdk import dag, task

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow < 3.2
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_schneider.operators import SchneiderProductCatalogOperator


@dag(
    dag_id="{dag_id}",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2026, 10, 1, tz="UTC"),
    catchup=False,
    default_args={{"retries": 0}},
)
def incremental():
    pull = SchneiderProductCatalogOperator(
        task_id="pull", supplier_id="{supplier}", customer_id="{customer}", incremental=True
    )

    @task
    def report(manifest: dict) -> None:
        print(f"SCHNEIDER_SUMMARY {{manifest}}")

    report(pull.output)


incremental()
"""


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def changes(since: str, until_exclusive: str) -> list[dict]:
    """What ``[since, until)`` holds, by the emulator's own data functions (``delta`` is inclusive)."""
    return data.delta(SEED, day(since), day(until_exclusive) - dt.timedelta(days=1), "all", 500)


class IncrementalDag:
    """One incremental DAG (own supplier id: own asset, own watermark) in its own DAG folder."""

    def __init__(self, tmp_path: Path, run_dag, name: str):
        self.dag_id = f"schneider_wm_{name}"
        self.supplier = f"WM-{name.upper()}"
        self.uri = f"schneider://product_catalog/{self.supplier}/{CUSTOMER}"
        self.key = f"delta_watermark/{self.supplier}/{CUSTOMER}/all"
        folder = tmp_path / "dags"
        folder.mkdir()
        (folder / f"{self.dag_id}.py").write_text(
            textwrap.dedent(DAG_FILE.format(dag_id=self.dag_id, supplier=self.supplier, customer=CUSTOMER))
        )
        self.env = {"AIRFLOW__CORE__DAGS_FOLDER": str(folder)}
        self._run_dag = run_dag
        self.db = db_path_from_env()

    def run(self, logical_date: str) -> DagRunResult:
        return self._run_dag(self.dag_id, logical_date, env=self.env)

    def pull(self, logical_date: str) -> dict:
        result = self.run(logical_date)
        assert result.succeeded, result.output[-3000:]
        [manifest] = result.summaries
        return manifest

    def rerun_task(self, run_id: str) -> DagRunResult:
        """``airflow tasks test DAG pull RUN_ID``: the task again inside an existing run (as after a clear)."""
        cmd = [sys.executable, "-m", "airflow", "tasks", "test", self.dag_id, "pull", run_id]
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **self.env}, timeout=300)
        return DagRunResult(self.dag_id, done.returncode, done.stdout + done.stderr)

    def events(self) -> list[dict]:
        return [e for e in asset_events(self.db, self.uri) if e["source_dag_id"] == self.dag_id]

    def stored(self) -> dict[str, str]:
        """The asset state store entries of this scope (Airflow 3.3+; empty elsewhere)."""
        if STORE != watermark.SOURCE_STATE_STORE:
            return {}
        found = rows(
            self.db,
            "SELECT s.key, s.value FROM asset_state_store s JOIN asset a ON a.id = s.asset_id WHERE a.uri = ?",
            self.uri,
        )
        return {r["key"]: r["value"].strip('"') for r in found}


def window(manifest: dict) -> tuple:
    return (
        manifest["since"],
        manifest["until"],
        manifest["basis"],
        manifest["previous_watermark"],
        manifest["watermark_source"],
        manifest["watermark"],
    )


def test_watermark_advances_and_a_manual_run_pulls_exactly_what_changed_since(emulator, run_dag, tmp_path):
    emulator.configure(today=TODAY.isoformat())
    wm = IncrementalDag(tmp_path, run_dag, "advance")

    # Run 1: no watermark yet -> the data interval [Nov 4, Nov 5).
    first = wm.pull("2026-11-05")
    assert window(first) == ("2026-11-04", "2026-11-05", "fallback", None, "none", "2026-11-05")
    assert list(read_jsonl(first["uri"])) == changes("2026-11-04", "2026-11-05")
    assert wm.stored() == ({wm.key: "2026-11-05"} if STORE == watermark.SOURCE_STATE_STORE else {})

    # Run 2, a week later with nothing in between (a manual run): exactly what changed since run 1.
    second = wm.pull("2026-11-12")
    assert window(second) == ("2026-11-05", "2026-11-12", "watermark", "2026-11-05", STORE, "2026-11-12")
    pulled = list(read_jsonl(second["uri"]))
    assert pulled == changes("2026-11-05", "2026-11-12") and len(pulled) > 20
    assert local(second["uri"]).name == "20261105T000000__20261112T000000.jsonl"  # named after its range
    # Together: every change of [Nov 4, Nov 12) once, no gap and no overlap at the boundary.
    assert list(read_jsonl(first["uri"])) + pulled == changes("2026-11-04", "2026-11-12")
    assert emulator.stats()["api_calls_by_path"] == {CATALOG_PATH: 2}

    events = wm.events()
    assert [(e["extra"]["since"], e["extra"]["until"], e["extra"]["watermark"]) for e in events] == [
        ("2026-11-04", "2026-11-05", "2026-11-05"),
        ("2026-11-05", "2026-11-12", "2026-11-12"),
    ]
    assert {e["extra"]["watermark_key"] for e in events} == {wm.key}
    assert events[-1]["extra"]["sha256"] == second["sha256"] == sha256(local(second["uri"]))

    # The task of run 2 cleared and run again: the same range, the same file, the same bytes.
    again = wm.rerun_task(events[-1]["source_run_id"])
    assert again.returncode == 0 and "new_state=success" in again.output, again.output[-3000:]
    assert "Incremental delta [2026-11-05, 2026-11-12) (since from the rerun)" in again.output
    assert sha256(local(second["uri"])) == second["sha256"]
    rerun_event = wm.events()[-1]["extra"]
    assert (rerun_event["since"], rerun_event["until"], rerun_event["sha256"]) == (
        "2026-11-05",
        "2026-11-12",
        second["sha256"],
    )

    # A backfill of an older interval pulls that interval; the watermark does not go back.
    old = wm.pull("2026-11-08")
    assert window(old) == ("2026-11-07", "2026-11-08", "fallback", "2026-11-12", STORE, "2026-11-12")
    assert list(read_jsonl(old["uri"])) == changes("2026-11-07", "2026-11-08")
    assert wm.stored() == ({wm.key: "2026-11-12"} if STORE == watermark.SOURCE_STATE_STORE else {})
    assert wm.events()[-1]["extra"]["watermark"] == "2026-11-12"


def test_a_failed_run_keeps_the_watermark_and_the_next_run_resumes_from_it(emulator, run_dag, schneider_conn, tmp_path):
    emulator.configure(today=TODAY.isoformat())
    schneider_conn(retry_max_attempts=1)  # fail at once
    wm = IncrementalDag(tmp_path, run_dag, "resume")
    assert wm.pull("2026-11-05")["watermark"] == "2026-11-05"

    emulator.add_fault(target=CATALOG_PATH, kind="status", status=500, times=-1)
    failed = wm.run("2026-11-10")
    assert not failed.succeeded and "HTTP 500" in failed.output
    assert "Incremental delta [2026-11-05, 2026-11-10)" in failed.output  # it did try that range ...
    assert [e["extra"]["watermark"] for e in wm.events()] == ["2026-11-05"]  # ... and left no event
    assert wm.stored() == ({wm.key: "2026-11-05"} if STORE == watermark.SOURCE_STATE_STORE else {})
    assert not list((local(wm.events()[0]["extra"]["uri"])).parent.glob("20261105T000000__*"))  # no file

    emulator.clear_faults()
    if STORE == watermark.SOURCE_STATE_STORE:
        # As on Airflow < 3.3 (no state store), or just after an upgrade: the asset events must carry it.
        with metadata_connection(wm.db) as conn:
            conn.execute(
                "DELETE FROM asset_state_store WHERE asset_id = (SELECT id FROM asset WHERE uri = ?)", (wm.uri,)
            )
    resumed = wm.pull("2026-11-10")
    assert window(resumed) == ("2026-11-05", "2026-11-10", "watermark", "2026-11-05", "asset_event", "2026-11-10")
    assert list(read_jsonl(resumed["uri"])) == changes("2026-11-05", "2026-11-10")
    assert wm.stored() == ({wm.key: "2026-11-10"} if STORE == watermark.SOURCE_STATE_STORE else {})


# -- without asset accessors (an Airflow without them, or a direct call): the data interval ---------------


def test_without_accessors_the_interval_and_then_the_run_date_bound_the_pull(emulator, schneider_conn):
    emulator.configure(today=TODAY.isoformat())
    ids = {"supplier_id": "WM-DIRECT", "customer_id": CUSTOMER}

    op = SchneiderProductCatalogOperator(task_id="inc", **ids, incremental=True, return_records=True)
    assert op.execute(context("2026-11-04", "2026-11-05")) == changes("2026-11-04", "2026-11-05")
    window = op.last_pull.plan.window
    assert (window.basis, window.source, window.watermark) == ("fallback", "none", day("2026-11-05"))

    # A manual run without data interval (Airflow 3 trigger without logical date): the day before the run.
    manual = {"ti": SimpleNamespace(map_index=-1), "run_id": "manual__x"}
    manual["dag_run"] = SimpleNamespace(run_after=pendulum.parse("2026-11-12T09:30:00+00:00"))
    op = SchneiderProductCatalogOperator(task_id="inc", **ids, incremental=True, return_records=True)
    assert op.execute(manual) == changes("2026-11-11", "2026-11-12")

    # date_of_reference starts the very first pull, changed_before ends every pull.
    op = SchneiderProductCatalogOperator(
        task_id="inc",
        **ids,
        incremental=True,
        date_of_reference="2026-11-01",
        changed_before="2026-11-06",
        return_records=True,
        max_xcom_bytes=10**6,
    )
    assert op.execute(context("2026-11-05", "2026-11-06")) == changes("2026-11-01", "2026-11-06")
    assert op.query["date-of-reference"] == "2026-11-01"  # arguments left as they were for a next execute


def test_incremental_declares_the_scope_asset_as_inlet_and_outlet():
    from airflow.sdk import DAG, Asset

    from airflow_provider_schneider.assets import product_catalog_asset
    from airflow_provider_schneider.exceptions import SchneiderConfigError

    scope = product_catalog_asset("S", "C")
    other = Asset(name="warehouse.catalog", uri="s3://warehouse/catalog")
    with DAG("wm_decl", schedule=None):
        plain = SchneiderProductCatalogOperator(task_id="a", supplier_id="S", customer_id="C", incremental=True)
        extra = SchneiderProductCatalogOperator(
            task_id="b", supplier_id="S", customer_id="C", incremental=True, outlets=[other]
        )
        with pytest.raises(SchneiderConfigError, match="outlets=\\[\\]"):
            SchneiderProductCatalogOperator(task_id="c", supplier_id="S", customer_id="C", incremental=True, outlets=[])
        with pytest.raises(SchneiderConfigError, match="product_references"):
            SchneiderProductCatalogOperator(
                task_id="d", supplier_id="S", customer_id="C", incremental=True, product_references=["X"]
            )
        SchneiderProductCatalogOperator.partial(task_id="m", supplier_id="S", customer_id="C", incremental=True).expand(
            change_type=["new", "delete"]  # one watermark per change type, all on the scope asset
        )
    assert plain.outlets == [scope] and plain.inlets == [scope]
    assert extra.outlets == [other, scope] and extra.inlets == [scope]
    mapped = plain.dag.get_task("m")
    assert mapped.partial_kwargs["outlets"] == [scope] and mapped.partial_kwargs["inlets"] == [scope]


# -- the planning rules, on plain data (what the DAG runs above exercise through Airflow) -----------------


def event(extra: dict, run_id: str = "other", task_id: str = "pull") -> SimpleNamespace:
    return SimpleNamespace(
        extra=extra, source_dag_id="d", source_run_id=run_id, source_task_id=task_id, source_map_index=-1
    )


def test_plan_reads_only_its_own_key_and_reruns_its_own_range():
    asset, key = "asset", watermark.state_key(["S", "C"], "all")
    newest_last = [
        event({"watermark": "2026-11-03", "watermark_key": key, "since": "2026-11-01", "until": "2026-11-03"}, "r1"),
        event({"watermark": "2026-11-09", "watermark_key": watermark.state_key(["S", "C"], "new")}),  # other type
        event({"uri": "file:///x", "records": 3}),  # another producer of the same asset: no watermark
    ]
    ctx = {
        **context("2026-11-07", "2026-11-08"),
        "inlet_events": {asset: newest_last},
        "ti": SimpleNamespace(dag_id="d", task_id="pull", map_index=-1),
    }
    plan = watermark.plan(ctx, asset, key)
    assert (plan.since, plan.until, plan.basis, plan.source) == (
        day("2026-11-03"),
        day("2026-11-08"),
        "watermark",
        "asset_event",
    )
    assert plan.watermark == day("2026-11-08")

    rerun = watermark.plan({**ctx, "run_id": "r1"}, asset, key)  # the task of run r1, cleared
    assert (rerun.since, rerun.until, rerun.basis) == (day("2026-11-01"), day("2026-11-03"), "rerun")
    assert rerun.watermark == day("2026-11-03")

    behind = watermark.plan({**ctx, **context("2026-11-01", "2026-11-02")}, asset, key)  # a backfill
    assert (behind.since, behind.until, behind.basis, behind.watermark) == (
        day("2026-11-01"),
        day("2026-11-02"),
        "fallback",
        day("2026-11-03"),
    )
