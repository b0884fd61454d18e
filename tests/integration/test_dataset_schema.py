"""Outputs that form one dataset across runs: 30 daily pulls from an emulator whose records drift by day
(:mod:`airflow_provider_schneider.emulator.drift`), read back as one table by pyarrow, DuckDB and pandas in
both layouts; the contracts, the manifest's ``schema_changes`` and reruns of one hive partition."""

from __future__ import annotations

import datetime as dt
import json
import textwrap
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from airflow_provider_schneider.emulator.drift import kind_of_day
from airflow_provider_schneider.exceptions import SchneiderConfigError, SchneiderSchemaError
from airflow_provider_schneider.operators import SchneiderApiOperator, SchneiderOrderStatusOperator
from airflow_provider_schneider.sinks import read_csv, read_jsonl
from tests.support.operators import ORDER_HINTS, context, local, partials, sha256

ORDERS = 120
FIRST_DAY = dt.date(2026, 11, 1)
DAYS = [FIRST_DAY + dt.timedelta(days=i) for i in range(30)]
#: Every order field the emulator sends on a plain day, declared (``delivery`` is a nested struct).
HINTS = {**ORDER_HINTS, "delivery": "struct<mode: string, days: bigint>"}
DECLARED = {
    "orderNumber": pa.string(),
    "orderStatus": pa.string(),
    "purchaserId": pa.string(),
    "orderDate": pa.string(),
    "customerPurchaseOrder": pa.string(),
    "totalAmount": pa.float64(),
    "currency": pa.string(),
    "country": pa.string(),
    "numberOfLines": pa.int64(),
    "delivery": pa.struct([pa.field("mode", pa.string()), pa.field("days", pa.int64())]),
    "_extra": pa.string(),
}
#: What each drift kind shows in the manifest: (field, change, seen, action) and the records it touched.
EXPECTED_CHANGES = {
    "none": [],
    "all_null": [],
    "whole_amounts": [],  # an integer in a double column fits
    "decimal_quantities": [("numberOfLines", "type_mismatch", "double", "kept_in_extra", ORDERS)],
    "new_field": [("deliveryBlock", "new_field", "string", "kept_in_extra", ORDERS)],
    "missing_field": [("currency", "missing", "absent", "null", ORDERS)],
    "id_as_number": [("purchaserId", "converted", "bigint", "converted", ORDERS)],
    "numbers_as_text": [
        ("numberOfLines", "converted", "string", "converted", ORDERS),
        ("totalAmount", "converted", "string", "converted", ORDERS),
    ],
    "unfit_value": [("totalAmount", "type_mismatch", "string", "kept_in_extra", ORDERS // 4)],
    "nested_new_field": [("delivery.carrier", "new_field", "string", "kept_in_extra", ORDERS)],
}


def pull_day(day: dt.date, emulator, base: Path, **kwargs) -> dict:
    from airflow.sdk import DAG

    emulator.configure(today=day.isoformat())
    kwargs.setdefault("schema_hints", HINTS)
    kwargs.setdefault("output_format", "parquet")
    with DAG("orders_daily", schedule=None):
        op = SchneiderOrderStatusOperator(task_id="orders", country="FR", output_base=f"file://{base}", **kwargs)
    return op.execute(context(day.isoformat(), (day + dt.timedelta(days=1)).isoformat()))


def changes_of(manifest: dict) -> list[tuple]:
    return [(c["field"], c["change"], c["seen"], c["action"], c["records"]) for c in manifest["schema_changes"]]


@pytest.mark.parametrize("layout", ["default", "hive"])
def test_thirty_drifting_days_read_as_one_dataset(emulator, schneider_conn, tmp_path, layout):
    emulator.configure(orders_per_country=ORDERS, drift="daily")
    manifests = [pull_day(day, emulator, tmp_path, output_layout=layout) for day in DAYS]
    root = tmp_path / "orders_daily" / "orders"

    for day, manifest in zip(DAYS, manifests, strict=True):
        assert changes_of(manifest) == EXPECTED_CHANGES[kind_of_day(day)], day
        assert manifest["schema"]["version"].startswith("order_status/v1+") and manifest["records"] == ORDERS
        if layout == "hive":
            assert manifest["uri"] == f"file://{root}/dt={day}"
            assert [p["uri"] for p in manifest["parts"]] == [f"file://{root}/dt={day}/part-00000.parquet"]
    assert len({m["schema"]["fingerprint"] for m in manifests}) == 1

    files = sorted(root.rglob("*.parquet"))
    assert len(files) == 30 and len({pq.read_schema(f).remove_metadata() for f in files}) == 1  # one file schema

    # pyarrow, no union options: every row, the declared types (plus the partition column in hive).
    dataset = ds.dataset(root, format="parquet", partitioning="hive" if layout == "hive" else None)
    table = dataset.to_table()
    assert table.num_rows == 30 * ORDERS
    assert {f.name: f.type for f in table.schema if f.name != "dt"} == DECLARED
    if layout == "hive":
        assert len(set(table.column("dt").to_pylist())) == 30  # one partition per day

    # DuckDB, no union_by_name: the same rows and types; nothing lost (a value that did not fit is in _extra).
    glob = f"{root}/**/*.parquet"
    hive = "true" if layout == "hive" else "false"
    sql = duckdb.connect()
    relation = f"read_parquet('{glob}', hive_partitioning={hive})"
    assert sql.execute(f"SELECT count(*), count(DISTINCT orderNumber) FROM {relation}").fetchone() == (
        30 * ORDERS,
        ORDERS,
    )
    types = {row[0]: row[1] for row in sql.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()}
    assert types["totalAmount"] == "DOUBLE" and types["numberOfLines"] == "BIGINT" and types["purchaserId"] == "VARCHAR"
    kinds = [kind_of_day(day) for day in DAYS]
    unfit_amounts = sql.execute(
        f"SELECT count(*) FROM {relation} "
        "WHERE totalAmount IS NULL AND json_extract_string(_extra, '$.totalAmount') = 'n/a'"
    ).fetchone()
    assert unfit_amounts == (kinds.count("unfit_value") * ORDERS // 4,)
    decimal_lines = sql.execute(
        f"SELECT count(*) FROM {relation} WHERE numberOfLines IS NULL AND "
        "CAST(json_extract(_extra, '$.numberOfLines') AS DOUBLE) % 1 = 0.5"
    ).fetchone()
    assert decimal_lines == (kinds.count("decimal_quantities") * ORDERS,)
    assert sql.execute(f"SELECT count(*) FROM {relation} WHERE purchaserId IS NULL").fetchone() == (0,)

    # pandas over the folder (pyarrow underneath): every row.
    frame = pd.read_parquet(root)
    assert len(frame) == 30 * ORDERS and frame["totalAmount"].dtype == "float64"
    assert partials(tmp_path) == []


def test_the_same_days_inferred_per_pull_do_not_form_one_dataset(emulator, schneider_conn, tmp_path):
    """The baseline the declared schema replaces (an endpoint without hints infers each pull's columns): the
    same drifting days break a dataset read, so the test above can fail."""
    from airflow.sdk import DAG

    emulator.configure(orders_per_country=ORDERS, drift="daily")
    for day in DAYS[:10]:
        emulator.configure(today=day.isoformat())
        with DAG("orders_daily", schedule=None):
            op = SchneiderApiOperator(
                task_id="orders",
                endpoint="/v1/supply-chain/partner-order-status/orders/FR",
                records_field="orderList",
                paginate=True,
                output_base=f"file://{tmp_path}",
                output_format="parquet",
            )
        assert op.execute(context(day.isoformat(), (day + dt.timedelta(days=1)).isoformat()))["schema"] == {
            "mode": "inferred"
        }
    files = sorted((tmp_path / "orders_daily" / "orders").rglob("*.parquet"))
    assert len({pq.read_schema(f).remove_metadata() for f in files}) > 1
    with pytest.raises(pa.ArrowInvalid):
        ds.dataset(tmp_path / "orders_daily" / "orders", format="parquet").to_table()


@pytest.mark.parametrize("layout", ["default", "hive"])
def test_freeze_fails_before_anything_is_committed(emulator, schneider_conn, tmp_path, layout):
    emulator.configure(orders_per_country=ORDERS, drift="daily")
    day = FIRST_DAY + dt.timedelta(days=9)
    assert kind_of_day(day) == "none"
    first = pull_day(day, emulator, tmp_path, output_layout=layout, schema_contract="freeze")
    assert first["schema_changes"] == [] and first["schema"]["contract"] == "freeze"
    committed = {p["uri"]: sha256(local(p["uri"])) for p in first["parts"]}

    # The same interval pulled again while the API sends a new field: the task fails, the output stays.
    emulator.configure(today=(FIRST_DAY + dt.timedelta(days=2)).isoformat())
    with pytest.raises(SchneiderSchemaError) as caught:
        pull_day(FIRST_DAY + dt.timedelta(days=2), emulator, tmp_path, output_layout=layout, schema_contract="freeze")
    message = str(caught.value)
    assert message.startswith("orders: schema_contract='freeze': field 'deliveryBlock' is not in the declared schema")
    assert "(the API sent string)" in message
    again_day = day  # and a type change on the interval already written
    emulator.configure(today=(FIRST_DAY + dt.timedelta(days=7)).isoformat())
    with pytest.raises(SchneiderSchemaError, match="field 'totalAmount' is declared double, the API sent string"):
        from airflow.sdk import DAG

        with DAG("orders_daily", schedule=None):
            op = SchneiderOrderStatusOperator(
                task_id="orders",
                country="FR",
                output_base=f"file://{tmp_path}",
                output_format="parquet",
                output_layout=layout,
                schema_contract="freeze",
                schema_hints=HINTS,
            )
        op.execute(context(again_day.isoformat(), (again_day + dt.timedelta(days=1)).isoformat()))
    assert {uri: sha256(local(uri)) for uri in committed} == committed
    outputs = sorted(p for p in (tmp_path / "orders_daily").rglob("*") if p.is_file() and not p.name.startswith("_"))
    assert [str(p) for p in outputs] == sorted(local(uri).as_posix() for uri in committed)
    assert partials(tmp_path) == []


def test_discard_value_nulls_and_counts(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=ORDERS, drift="daily")
    day = FIRST_DAY + dt.timedelta(days=7)  # unfit_value: "n/a" amounts in every 4th order
    manifest = pull_day(day, emulator, tmp_path, schema_contract="discard_value")
    assert manifest["values_discarded"] == ORDERS // 4
    assert changes_of(manifest) == [("totalAmount", "type_mismatch", "string", "discarded", ORDERS // 4)]
    table = pq.read_table(local(manifest["uri"]))
    assert table.column("totalAmount").null_count == ORDERS // 4 and table.column("_extra").null_count == ORDERS


def test_a_hive_rerun_replaces_exactly_its_partition(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=ORDERS)
    first, second = (pull_day(day, emulator, tmp_path, output_layout="hive") for day in DAYS[:2])
    kept = {p["uri"]: sha256(local(p["uri"])) for p in second["parts"]}
    emulator.configure(orders_per_country=50)
    rerun = pull_day(DAYS[0], emulator, tmp_path, output_layout="hive", max_records_per_file=20)
    assert rerun["uri"] == first["uri"] and [p["records"] for p in rerun["parts"]] == [20, 20, 10]
    assert {uri: sha256(local(uri)) for uri in kept} == kept  # the other day is untouched
    partition = local(first["uri"])
    assert sorted(p.name for p in partition.iterdir()) == [
        "_schneider_set.json",
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    table = ds.dataset(tmp_path / "orders_daily" / "orders", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 50 + ORDERS


def test_csv_and_json_lines_follow_the_same_contract(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=ORDERS, drift="daily")
    headers, records = set(), []
    for day in DAYS[:10]:
        manifest = pull_day(day, emulator, tmp_path / "csv", output_format="csv")
        with open(local(manifest["uri"]), newline="") as handle:
            headers.add(handle.readline().strip())
        jsonl = pull_day(day, emulator, tmp_path / "jsonl", output_format="jsonl")
        records += list(read_jsonl(jsonl["uri"]))
        assert list(read_csv(manifest["uri"]))[0]["orderNumber"] == "FR00000001"
    assert headers == {",".join(DECLARED)}  # one header across every day, _extra last
    assert all(isinstance(r["purchaserId"], str) for r in records)  # the id sent as a number, as text
    assert {type(r["totalAmount"]) for r in records} == {float, type(None)}
    assert {type(r["numberOfLines"]) for r in records} == {int, type(None)}
    unfit = [r for r in records if r["totalAmount"] is None]
    assert len(unfit) == ORDERS // 4 and all(r["_extra"] == {"totalAmount": "n/a"} for r in unfit)
    assert sum("deliveryBlock" in r for r in records) == ORDERS  # an undeclared field stays a key of the record


def test_bad_contract_layout_and_hints_fail_when_the_dag_is_parsed():
    for kwargs, said in (
        ({"schema_contract": "strict"}, "orders: schema_contract must be one of evolve, freeze, discard_value"),
        ({"output_layout": "delta"}, "orders: output_layout must be one of default, hive, got 'delta'"),
        ({"schema_hints": {"totalAmount": "money"}}, "orders: schema_hints: field 'totalAmount': cannot read the type"),
    ):
        with pytest.raises(SchneiderConfigError, match=said.replace("(", r"\(")):
            SchneiderOrderStatusOperator(task_id="orders", country="FR", **kwargs)
    with pytest.raises(SchneiderConfigError, match="needs a declared schema"):
        SchneiderApiOperator(task_id="orders", endpoint="/v1/x", schema_contract="freeze")


MAPPED_DAG = """
import pendulum
from airflow.sdk import dag, task
try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:
    from airflow.timetables.interval import CronDataIntervalTimetable
from airflow_provider_schneider.operators import SchneiderOrderStatusOperator

@dag(dag_id="orders_dataset", schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
     start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), catchup=False)
def orders_dataset():
    pulls = SchneiderOrderStatusOperator.partial(
        task_id="orders", output_base="file://{base}", output_format="parquet", output_layout="hive",
        schema_hints={hints!r},
    ).expand(country=["FR", "DE"])

    @task
    def query(manifests):
        import duckdb
        rows = duckdb.connect().execute(
            "SELECT dt, country, count(*) FROM read_parquet('{base}/orders_dataset/orders/**/*.parquet', "
            "hive_partitioning=true) GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        print("SCHNEIDER_SUMMARY " + repr({{"rows": [[str(d), c, n] for d, c, n in rows],
              "schemas": sorted({{m["schema"]["version"] for m in manifests}})}}))

    query(pulls.output)

orders_dataset()
"""


def test_a_mapped_backfill_is_one_hive_dataset_in_real_airflow(emulator, run_dag, tmp_path):
    emulator.configure(orders_per_country=40, drift="daily")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "orders_dataset.py").write_text(textwrap.dedent(MAPPED_DAG.format(base=tmp_path / "out", hints=HINTS)))
    env = {"AIRFLOW__CORE__DAGS_FOLDER": str(dags)}
    for logical in ("2026-11-03", "2026-11-04"):  # intervals of Nov 2 and Nov 3
        emulator.configure(today=logical)
        result = run_dag("orders_dataset", logical, env=env)
        assert result.succeeded, result.output[-3000:]
    root = tmp_path / "out" / "orders_dataset" / "orders"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*.parquet")) == [
        f"dt=2026-11-0{d}/country={c}/part-00000.parquet" for d in (2, 3) for c in ("DE", "FR")
    ]
    summary = result.summaries[-1]
    assert summary["rows"] == [[f"2026-11-0{d}", c, 40] for d in (2, 3) for c in ("DE", "FR")]
    assert len(summary["schemas"]) == 1
    assert "demo-secret" not in result.output and json.dumps(summary).count("order_status/v1+") == 1
