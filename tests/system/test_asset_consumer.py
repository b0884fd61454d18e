"""An Asset-scheduled DAG really runs when a producer's task succeeds, on a private Airflow: ``airflow dags
test`` of the catalog delta DAG emits the asset event (recorded in the metadata DB with its ``extra``) and
queues the consumer; a real scheduler (LocalExecutor, API server) then creates the ``asset_triggered`` run of
``schneider_catalog_consumer``, which reads the file named by the event and checks its sha256."""

from __future__ import annotations

import datetime as dt
import json

from airflow_provider_schneider.emulator import data
from airflow_provider_schneider.sinks import read_jsonl
from tests.support.assets import PrivateAirflow, asset_events, rows, wait_for
from tests.support.dagrun import run_dag
from tests.support.operators import local, sha256

SEED = 42
TODAY = dt.date(2026, 11, 20)
CATALOG_URI = "schneider://product_catalog/SE-FR-0001/0012345678"
PRODUCER, CONSUMER = "schneider_product_catalog_delta", "schneider_catalog_consumer"


# -- the real thing: producer's event -> consumer's asset-triggered run ---------------------------------


def test_catalog_delta_event_triggers_the_asset_scheduled_consumer(emulator, schneider_conn, tmp_path):
    emulator.configure(today=TODAY.isoformat())
    airflow = PrivateAirflow(tmp_path / "airflow")
    airflow.must("db", "migrate")
    airflow.must("dags", "reserialize")  # what the dag processor does: assets and schedules into the DB
    airflow.must("dags", "unpause", CONSUMER)
    scheduled_on = rows(
        airflow.db,
        "SELECT r.dag_id, a.name, a.uri FROM dag_schedule_asset_reference r JOIN asset a ON a.id = r.asset_id "
        "WHERE r.dag_id = ?",
        CONSUMER,
    )
    assert [tuple(r) for r in scheduled_on] == [
        (CONSUMER, "schneider.product_catalog.SE-FR-0001/0012345678", CATALOG_URI)
    ]

    produced = run_dag(PRODUCER, "2026-11-05", env=airflow.env)
    assert produced.succeeded, produced.output[-3000:]
    [summary] = produced.summaries
    changes = data.catalog_changes(SEED, dt.date(2026, 11, 4), 500)
    assert list(read_jsonl(summary["uri"])) == changes

    # The success recorded one event of the asset, with the manifest as extra ...
    [event] = asset_events(airflow.db, CATALOG_URI)
    assert (event["source_dag_id"], event["source_task_id"]) == (PRODUCER, "pull_catalog_delta")
    extra = event["extra"]
    assert extra["uri"] == summary["uri"] and extra["records"] == len(changes) == summary["products"]
    assert extra["sha256"] == summary["sha256"] == sha256(local(summary["uri"]))
    assert (extra["since"], extra["until"], extra["format"]) == ("2026-11-04", "2026-11-05", "jsonl.gz")
    assert extra["data_interval_start"] == "2026-11-04T00:00:00+00:00"
    # ... and queued the consumer (the scheduler turns this queue into a DAG run).
    queued = rows(
        airflow.db,
        "SELECT q.target_dag_id FROM asset_dag_run_queue q JOIN asset a ON a.id = q.asset_id WHERE a.uri = ?",
        CATALOG_URI,
    )
    assert [r["target_dag_id"] for r in queued] == [CONSUMER]

    def consumer_done():
        return rows(
            airflow.db,
            "SELECT id, run_id, run_type, state FROM dag_run WHERE dag_id = ? AND state IN ('success', 'failed')",
            CONSUMER,
        )

    with airflow.running():
        [run] = wait_for(consumer_done, 240, "the consumer's DAG run", airflow.component_output)
    assert (run["run_type"], run["state"]) == ("asset_triggered", "success"), airflow.component_output()
    linked = rows(airflow.db, "SELECT event_id FROM dagrun_asset_event WHERE dag_run_id = ?", run["id"])
    assert [r["event_id"] for r in linked] == [event["id"]]

    [xcom] = rows(
        airflow.db,
        "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = 'return_value'",
        CONSUMER,
        run["run_id"],
        "apply_catalog_changes",
    )
    consumed = json.loads(xcom["value"])
    latest = {change["commercialReference"]: change for change in changes}
    assert consumed == {
        "events": 1,
        "files": [
            {
                "uri": summary["uri"],
                "records": len(changes),
                "since": "2026-11-04",
                "until": "2026-11-05",
                "source": f"{PRODUCER}/{event['source_run_id']}",
            }
        ],
        "products_changed": len(latest),
        "deleted": sorted(ref for ref, change in latest.items() if change["changeType"] == "delete"),
    }
    assert not rows(airflow.db, "SELECT * FROM asset_dag_run_queue")  # consumed
