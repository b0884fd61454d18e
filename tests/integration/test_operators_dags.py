"""The example DAGs (and one composed in a temporary DAG folder) run by real Airflow against the emulator.

Each run is ``airflow dags test`` (or ``airflow tasks test``) in a child process, ~10 s each, so the runs
are few and each checks a lot: exact records against the emulator's data functions, files per interval,
replacement on rerun, atomic failure, mapping, templating.
"""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from pathlib import Path

from airflow_provider_schneider.emulator import data
from airflow_provider_schneider.sinks import read_jsonl
from tests.support.operators import local, partials, sha256, task_test

SEED = 42
TODAY = dt.date(2026, 11, 20)


def data_root() -> Path:
    from airflow_provider_schneider.pulls.target import default_output_base

    return local(default_output_base())


def test_order_status_daily_snapshot_is_exact_and_a_rerun_replaces_it(emulator, run_dag):
    emulator.configure(orders_per_country=1234)
    first = run_dag("schneider_order_status_daily", "2026-11-05", conf={"country": "DE"})
    assert first.succeeded, first.output[-3000:]
    [summary] = first.summaries
    file = local(summary["uri"])
    # The DAG's real daily intervals name the file; the templated country is part of the name (a run with
    # another country writes another file).
    assert (
        file
        == data_root() / "schneider_order_status_daily/pull_orders/20261104T000000__20261105T000000/country=DE.jsonl"
    )
    records = list(read_jsonl(summary["uri"]))
    assert records == [data.order(SEED, "DE", i) for i in range(1234)]  # exact, ordered, no duplicates
    assert summary["orders"] == 1234 and summary["pages"] == 13 and summary["sha256"] == sha256(file)
    assert emulator.stats()["api_calls_by_path"] == {"/v1/supply-chain/partner-order-status/orders/DE": 13}
    assert sum(summary["by_status"].values()) == 1234
    # The task log says how far the pull is: a line per 10 % of the 13 pages, then the end line.
    progress = re.findall(
        r"Progress: (\d+)/13 pages \((\d+) %\), ([\d,]+) records, [\d,]+ rec/s, ETA \S+", first.output
    )
    assert [(int(n), int(pct), int(r.replace(",", ""))) for n, pct, r in progress] == [
        (n, 100 * n // 13, 100 * n) for n in (2, 3, 4, 6, 7, 8, 10, 11, 12)
    ]
    assert re.search(r"Wrote 1,234 records from 13 pages in [\d.]+s \([\d,]+ rec/s\)", first.output)

    inode = file.stat().st_ino
    again = run_dag("schneider_order_status_daily", "2026-11-05", conf={"country": "DE"})
    assert again.succeeded, again.output[-3000:]
    assert again.summaries[0]["sha256"] == summary["sha256"] == sha256(file)  # same bytes ...
    assert len(file.read_bytes().splitlines()) == 1234  # ... not appended ...
    assert file.stat().st_ino != inode  # ... a new file moved into place
    assert partials(file.parent) == []


def test_order_status_task_failing_mid_pull_keeps_the_interval_output(emulator, schneider_conn, airflow_db):
    """A 500 on page 3 beyond the (small) retry budget: the task fails, the interval's previous file stays
    byte for byte, and no temporary object is left."""
    emulator.configure(orders_per_country=1000)
    schneider_conn(retry_max_attempts=2, retry_backoff_initial=0.01, retry_backoff_max=0.02)
    target = data_root() / "schneider_order_status_daily/pull_orders/20261103T000000__20261104T000000/country=FR.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b'{"previous":"output"}\n')
    emulator.add_fault(target="api", kind="status", status=500, times=-1, match_query={"page": "3"})

    result = task_test("schneider_order_status_daily", "pull_orders", "2026-11-04")

    assert f"Pulling into file://{target}" in result.output  # the run aimed at this very file ...
    assert "HTTP 500" in result.output and "Wrote " not in result.output  # ... and failed
    assert "new_state=success" not in result.output
    assert target.read_bytes() == b'{"previous":"output"}\n'
    assert partials(target.parent) == []
    assert emulator.stats()["api_calls_by_status"].get("500", 0) >= 2  # the retry budget was used


def test_catalog_delta_backfill_writes_one_exact_file_per_interval(emulator, run_dag):
    emulator.configure(today=TODAY.isoformat())
    files = {}
    for logical_date, day in (("2026-11-05", dt.date(2026, 11, 4)), ("2026-11-06", dt.date(2026, 11, 5))):
        result = run_dag("schneider_product_catalog_delta", logical_date)
        assert result.succeeded, result.output[-3000:]
        [summary] = result.summaries
        assert summary["since"] == day.isoformat()
        expected = data.catalog_changes(SEED, day, 500)
        assert list(read_jsonl(summary["uri"])) == expected  # that day's changes only, in the API's order
        assert summary["products"] == len(expected)
        assert len(data.delta(SEED, day, TODAY, "all", 500)) > len(expected)  # the API sent more than the day
        files[day] = local(summary["uri"])
    first, second = files.values()
    # Named by the interval; the change type comes from a param (another change type, another file), the
    # dates from the interval alone (already in the name).
    folder = data_root() / "schneider_product_catalog_delta/pull_catalog_delta"
    assert first == folder / "20261104T000000__20261105T000000/change-type=all.jsonl.gz"
    assert second == folder / "20261105T000000__20261106T000000/change-type=all.jsonl.gz"
    assert first.exists()  # the second interval did not touch the first


def test_stock_availability_maps_over_upstream_products(emulator, run_dag):
    emulator.configure(today=TODAY.isoformat(), path_substitutions={"~2F": "/", "~5C": "\\"})
    result = run_dag(
        "schneider_stock_availability",
        "2026-11-05",
        conf={"products": 25, "chunk_size": 10, "path_rule": "tilde", "quantity": 5},
    )
    assert result.succeeded, result.output[-3000:]
    [summary] = result.summaries

    active = [i for i in range(500) if data.product_summary(SEED, i)["status"] == "active"][:25]
    refs = [data.product_reference(i) for i in active]
    assert summary["chunks"] == 3 and summary["products_checked"] == 25 and summary["not_found"] == 0
    # Mapped over chunks of references: each object is named by its chunk (a hash of the list), not its position.
    from airflow_provider_schneider.pulls.target import mapped_segments

    chunks = [refs[i : i + 10] for i in range(0, 25, 10)]
    assert [Path(uri).name for uri in summary["uris"]] == [
        f"{mapped_segments({'product_references': chunk})[0]}.jsonl" for chunk in chunks
    ]
    stock = [r for uri in summary["uris"] for r in read_jsonl(uri)]
    assert [r["productReference"] for r in stock] == refs
    assert [r["stockLevels"] for r in stock] == [data.stock_levels(SEED, i, TODAY) for i in active]
    assert summary["units_in_stock"] == sum(
        level["quantity"] for i in active for level in data.stock_levels(SEED, i, TODAY)
    )
    shortages = [r for i, r in zip(active, refs, strict=True) if data.availability(SEED, i, 5, TODAY)["shortage"]]
    assert summary["shortages"] == sorted(shortages)

    # References with "/" and "\\" went out substituted by the "tilde" rule, one segment each.
    assert {"GV2ME0026/BD", "LV40007\\X"} <= set(refs)
    segments = {r.replace("/", "~2F").replace("\\", "~5C") for r in refs}
    paths = emulator.stats()["api_calls_by_path"]
    assert {p for p in paths if p.startswith("/productstocklevelchecker/")} == {
        f"/productstocklevelchecker/1.1/products/{s}" for s in segments
    }
    assert {p for p in paths if p.startswith("/v2/sales-operation/")} == {
        f"/v2/sales-operation/product-availability/products/{s}" for s in segments
    }


COMPOSED_DAG = '''
"""Operators composed the way a data engineer would: mapped over an upstream list, templated paths."""
import pendulum
from airflow.sdk import dag, task

try:  # Airflow >= 3.2
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.1
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_schneider.operators import (
    SchneiderApiOperator,
    SchneiderOrderStatusOperator,
    SchneiderProductCatalogOperator,
)

BASE = "file://{base}"


@dag(schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
     start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), catchup=False, params={{"country": "IT"}})
def schneider_composed():
    @task
    def countries() -> list[str]:
        return ["FR", "DE", "ES"]

    per_country = SchneiderOrderStatusOperator.partial(task_id="orders", output_base=BASE).expand(
        country=countries()
    )
    generic = SchneiderApiOperator(
        task_id="generic",
        endpoint="/v1/supply-chain/partner-order-status/orders/{{country}}",
        path_params={{"country": "{{{{ params.country }}}}"}},
        query={{"order-number": "{{{{ params.country }}}}000000"}},
        records_field="orderList",
        paginate=True,
        output_path=BASE + "/{{{{ ds }}}}/{{{{ data_interval_start | ds_nodash }}}}/generic.jsonl",
    )
    delta = SchneiderProductCatalogOperator(
        task_id="delta",
        supplier_id="S",
        customer_id="C",
        date_of_reference="{{{{ data_interval_start }}}}",
        changed_before="{{{{ data_interval_end }}}}",
        return_records=True,
    )

    @task
    def collect(manifests: list[dict], generic: dict, delta: list[dict]) -> None:
        summary = {{
            "uris": [m["uri"] for m in manifests],
            "records": [m["records"] for m in manifests],
            "map_indexes": [m["map_index"] for m in manifests],
            "generic_uri": generic["uri"],
            "generic_records": generic["records"],
            "delta": delta,
        }}
        print(f"SCHNEIDER_SUMMARY {{summary}}")

    collect(per_country.output, generic.output, delta.output)


schneider_composed()
'''


def test_partial_expand_templated_paths_and_xcom_mode_in_a_composed_dag(emulator, run_dag, tmp_path):
    emulator.configure(orders_per_country=120, today=TODAY.isoformat())
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "schneider_composed.py").write_text(textwrap.dedent(COMPOSED_DAG.format(base=tmp_path / "out")))

    result = run_dag("schneider_composed", "2026-11-05", env={"AIRFLOW__CORE__DAGS_FOLDER": str(dags)})
    assert result.succeeded, result.output[-3000:]
    [summary] = result.summaries

    interval = "20261104T000000__20261105T000000"
    assert summary["map_indexes"] == [0, 1, 2] and summary["records"] == [120, 120, 120]
    # Each map instance's object is named by its mapped value, not by its position in the list.
    assert summary["uris"] == [
        f"file://{tmp_path}/out/schneider_composed/orders/{interval}/country={c}.jsonl" for c in ("FR", "DE", "ES")
    ]
    for uri, country in zip(summary["uris"], ("FR", "DE", "ES"), strict=True):
        assert list(read_jsonl(uri)) == [data.order(SEED, country, i) for i in range(120)]

    # {{ ds }} is the logical date, {{ data_interval_start }} the start of the interval it closes.
    assert summary["generic_uri"] == f"file://{tmp_path}/out/2026-11-05/20261104/generic.jsonl"
    # order numbers start at IT00000001, so the prefix IT000000 selects indexes 0..98
    assert list(read_jsonl(summary["generic_uri"])) == [data.order(SEED, "IT", i) for i in range(99)]

    assert summary["delta"] == data.catalog_changes(SEED, dt.date(2026, 11, 4), 500)  # via XCom, bounded
