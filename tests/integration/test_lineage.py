"""OpenLineage facets: the API endpoint as input (namespace = API base URL), the written file as output.

Facets are asserted after real pulls against the emulator, then end to end: a real DAG run with
Airflow's OpenLineage listener and its ``file`` transport, whose emitted events are read back. A last test
proves the provider does not need the OpenLineage packages at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from airflow_provider_schneider.emulator import data
from airflow_provider_schneider.lineage import api_namespace, output_dataset_name
from airflow_provider_schneider.operators import (
    SchneiderNetPriceOperator,
    SchneiderProductCatalogOperator,
    SchneiderStockLevelOperator,
)
from airflow_provider_schneider.operators.orders import SchneiderOrderStatusOperator
from tests.support.operators import context, local

SEED = 42
REPO = Path(__file__).resolve().parents[2]  # the checkout
ORDERS_PATH = "/v1/supply-chain/partner-order-status/orders/{}"


def names(datasets) -> list[tuple[str, str]]:
    return [(d.namespace, d.name) for d in datasets]


def test_order_status_facets_name_the_endpoint_read_and_the_file_written(emulator, schneider_conn, tmp_path):
    from airflow.providers.common.compat.openlineage.facet import Dataset, OutputStatisticsOutputDatasetFacet
    from airflow.providers.openlineage.extractors import OperatorLineage

    emulator.configure(orders_per_country=230)
    op = SchneiderOrderStatusOperator(task_id="orders", country="de", output_path=f"file://{tmp_path}/o.jsonl")
    before = op.get_openlineage_facets_on_complete(None)
    assert isinstance(before, OperatorLineage) and before.inputs == [] and before.outputs == []

    manifest = op.execute(context())
    lineage = op.get_openlineage_facets_on_complete(None)
    assert isinstance(lineage, OperatorLineage)
    assert names(lineage.inputs) == [(emulator.url, ORDERS_PATH.format("DE"))]
    assert names(lineage.outputs) == [("file", str(tmp_path / "o.jsonl"))]
    assert all(isinstance(d, Dataset) for d in lineage.inputs + lineage.outputs)
    statistics = lineage.outputs[0].outputFacets["outputStatistics"]
    assert isinstance(statistics, OutputStatisticsOutputDatasetFacet)
    assert (
        (statistics.rowCount, statistics.size)
        == (230, manifest["bytes"])
        == (230, local(manifest["uri"]).stat().st_size)
    )
    assert lineage.run_facets == {} and lineage.job_facets == {}


def test_the_schema_facet_lists_the_declared_columns_and_this_pulls_changes(emulator, schneider_conn, tmp_path):
    """A drifting day (a new nested sub-field, a value that fits no type) in Parquet, then JSON Lines."""
    emulator.configure(orders_per_country=40, drift="daily", today="2026-11-08")  # unfit_value: "n/a" amounts
    op = SchneiderOrderStatusOperator(
        task_id="orders",
        country="FR",
        output_path=f"file://{tmp_path}/o.parquet",
        output_format="parquet",
        schema_hints={"totalAmount": "double", "delivery": "struct<mode: string>"},
    )
    manifest = op.execute(context())
    [output] = op.get_openlineage_facets_on_complete(None).outputs
    fields = {f.name: f for f in output.facets["schema"].fields}
    assert (
        list(fields)
        == [*manifest["columns"]]
        == [
            "orderNumber",
            "orderStatus",
            "purchaserId",
            "totalAmount",
            "delivery",
            "_extra",
        ]
    )
    assert fields["delivery"].type == "struct<mode: string>"
    version = manifest["schema"]["version"]
    assert fields["orderNumber"].description == f"schema {version}"
    assert fields["totalAmount"].description == (
        f"schema {version}; type_mismatch: declared double, sent string in 10 records, kept_in_extra"
    )
    assert "delivery.days new_field: sent bigint in 40 records, kept_in_extra" in fields["delivery"].description
    undeclared = {f.name: f.type for f in fields["_extra"].fields}
    assert undeclared == {
        "country": "string",
        "currency": "string",
        "customerPurchaseOrder": "string",
        "numberOfLines": "bigint",
        "orderDate": "string",
    }

    jsonl = SchneiderOrderStatusOperator(task_id="orders", country="FR", output_path=f"file://{tmp_path}/o.jsonl")
    jsonl.execute(context())
    [output] = jsonl.get_openlineage_facets_on_complete(None).outputs
    described = [(f.name, f.type, f.description) for f in output.facets["schema"].fields]
    assert described[:4] == [
        ("orderNumber", "string", "schema order_status/v1"),
        ("orderStatus", "string", "schema order_status/v1"),
        ("purchaserId", "string", "schema order_status/v1"),
        ("_extra", "json", "schema order_status/v1"),
    ]
    # An undeclared field sent with two JSON types: each is listed, with the records that had it.
    assert ("totalAmount", "double", "new_field: sent double in 30 records, kept_as_key") in described
    assert ("totalAmount", "string", "new_field: sent string in 10 records, kept_as_key") in described
    assert ("orderDate", "string", "new_field: sent string in 40 records, kept_as_key") in described


def test_fan_out_and_catalog_facets(emulator, schneider_conn, tmp_path):
    emulator.configure(today="2026-11-20")
    refs = [data.product_reference(i) for i in (1, 2, 7)]  # "/" and "\\" inside: one dataset, not one per product
    stock = SchneiderStockLevelOperator(task_id="s", product_references=refs, output_path=f"file://{tmp_path}/s/")
    stock.execute(context())
    lineage = stock.get_openlineage_facets_on_complete(None)
    assert names(lineage.inputs) == [(emulator.url, "/productstocklevelchecker/1.1/products/{product_reference}")]
    assert names(lineage.outputs) == [("file", f"{tmp_path}/s/20261104T000000__20261105T000000.jsonl")]

    bulk = SchneiderStockLevelOperator(
        task_id="b", product_references=refs, bulk=True, output_path=f"file://{tmp_path}/b"
    )
    bulk.execute(context())
    assert names(bulk.get_openlineage_facets_on_complete(None).inputs) == [
        (emulator.url, "/productstocklevelchecker/1.1/products/stock-levels")
    ]

    price = SchneiderNetPriceOperator(task_id="p", product_references=refs, output_path=f"file://{tmp_path}/p")
    price.execute(context())
    assert names(price.get_openlineage_facets_on_complete(None).inputs) == [
        (emulator.url, "/v1/customer-journey/distributor/product-netprice/product-reference")
    ]

    catalog = SchneiderProductCatalogOperator(
        task_id="c",
        supplier_id="S",
        customer_id="C",
        date_of_reference="2026-11-04",
        compression="gzip",
        output_path=f"file://{tmp_path}/c.jsonl",
    )
    manifest = catalog.execute(context())
    lineage = catalog.get_openlineage_facets_on_complete(None)
    assert names(lineage.inputs) == [(emulator.url, "/v2/reference-data/product/product-catalog/products")]
    assert names(lineage.outputs) == [("file", f"{tmp_path}/c.jsonl.gz")]
    assert lineage.outputs[0].outputFacets["outputStatistics"].rowCount == manifest["records"]


def test_small_result_mode_has_an_input_and_no_output(emulator, schneider_conn):
    emulator.configure(orders_per_country=5)
    op = SchneiderOrderStatusOperator(task_id="few", country="FR", return_records=True)
    assert len(op.execute(context())) == 5
    lineage = op.get_openlineage_facets_on_complete(None)
    assert names(lineage.inputs) == [(emulator.url, ORDERS_PATH.format("FR"))] and lineage.outputs == []


def test_object_store_outputs_follow_openlineage_naming(emulator, schneider_conn):
    """A real pull into fsspec's in-memory store (any non-local scheme): namespace scheme://bucket, name key."""
    op = SchneiderOrderStatusOperator(task_id="mem", country="FR", output_path="memory://lineage-bucket/a/o.jsonl")
    op.execute(context())
    assert names(op.get_openlineage_facets_on_complete(None).outputs) == [("memory://lineage-bucket", "a/o.jsonl")]
    assert output_dataset_name("s3://bucket/raw/x.jsonl.gz") == ("s3://bucket", "raw/x.jsonl.gz")
    assert output_dataset_name("gs://b/k") == ("gs://b", "k")
    assert output_dataset_name("file:///data/x.jsonl") == ("file", "/data/x.jsonl")
    assert api_namespace("https://api.se.com/") == "https://api.se.com"
    assert api_namespace("https://api.qa.se.com:8443/base/") == "https://api.qa.se.com:8443/base"
    assert api_namespace("http://[::1]:8080") == "http://[::1]:8080"


def test_openlineage_listener_emits_the_facets_in_a_real_dag_run(emulator, run_dag, tmp_path):
    """Airflow's own OpenLineage listener (file transport) calls the operator after the task succeeds."""
    emulator.configure(orders_per_country=321)
    events_file = tmp_path / "openlineage.jsonl"
    transport = json.dumps({"type": "file", "log_file_path": str(events_file), "append": True})
    result = run_dag(
        "schneider_order_status_daily",
        "2026-11-05",
        conf={"country": "ES"},
        env={"AIRFLOW__OPENLINEAGE__TRANSPORT": transport, "AIRFLOW__OPENLINEAGE__NAMESPACE": "schneider-tests"},
    )
    assert result.succeeded, result.output[-3000:]
    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    [complete] = [
        e
        for e in events
        if e["eventType"] == "COMPLETE" and e["job"]["name"] == "schneider_order_status_daily.pull_orders"
    ]
    assert complete["job"]["namespace"] == "schneider-tests"
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [(emulator.url, ORDERS_PATH.format("ES"))]
    [output] = complete["outputs"]
    uri = result.summaries[0]["uri"]
    assert (output["namespace"], output["name"]) == ("file", str(local(uri)))
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 321
    assert output["outputFacets"]["outputStatistics"]["size"] == local(uri).stat().st_size
    declared = [(f["name"], f["type"]) for f in output["facets"]["schema"]["fields"]][:4]
    assert declared == [
        ("orderNumber", "string"),
        ("orderStatus", "string"),
        ("purchaserId", "string"),
        ("_extra", "json"),
    ]
    text = events_file.read_text()
    assert "demo-secret" not in text and "demo-api-key" not in text  # no secret in any lineage event


def test_operators_work_without_the_openlineage_packages(emulator, schneider_conn, tmp_path):
    """With the OpenLineage client library and the provider's extractors unimportable, a pull still runs (only
    Airflow's provider discovery may read the OpenLineage provider's metadata); asking for facets needs them."""
    code = textwrap.dedent(
        f"""
        import json, sys
        from importlib.abc import MetaPathFinder

        class NoOpenLineage(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "openlineage" or name.startswith(("openlineage.", *BLOCKED)):
                    raise ImportError(f"{{name}} is not installed here")

        BLOCKED = ("airflow.providers.openlineage.extractors", "airflow.providers.openlineage.plugins")
        sys.meta_path.insert(0, NoOpenLineage())
        from airflow_provider_schneider.operators import SchneiderOrderStatusOperator
        from tests.support.operators import context

        op = SchneiderOrderStatusOperator(task_id="o", country="FR", output_path="file://{tmp_path}/o.jsonl")
        manifest = op.execute(context())
        try:
            op.get_openlineage_facets_on_complete(None)
            facets = "available"
        except ImportError:
            facets = "ImportError"
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "openlineage" or m.startswith(BLOCKED))
        print(json.dumps({{"records": manifest["records"], "facets": facets, "loaded": loaded}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    assert facts == {"records": 250, "facets": "ImportError", "loaded": []}
