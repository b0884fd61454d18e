"""Operators declare Airflow Assets (one per resource + scope) whose events carry the pull's manifest (the
whole chain to an asset-scheduled DAG under a real scheduler: tests/system/test_asset_consumer.py)."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlsplit

import pytest

from airflow_provider_schneider import assets
from airflow_provider_schneider.emulator import data
from airflow_provider_schneider.operators import (
    SchneiderNetPriceOperator,
    SchneiderProductAvailabilityOperator,
    SchneiderProductCatalogOperator,
    SchneiderStockLevelOperator,
)
from airflow_provider_schneider.operators.api import SchneiderApiOperator
from airflow_provider_schneider.operators.orders import SchneiderOrderStatusOperator
from airflow_provider_schneider.sinks import read_jsonl
from tests.support.operators import context, local, sha256

SEED = 42
TODAY = dt.date(2026, 11, 20)
IDS = {"supplier_id": "SE-FR-0001", "customer_id": "0012345678"}
CATALOG_URI = "schneider://product_catalog/SE-FR-0001/0012345678"
PRODUCER, CONSUMER = "schneider_product_catalog_delta", "schneider_catalog_consumer"


def declared(*operators) -> list[list[tuple[str, str]]]:
    return [[(a.name, a.uri) for a in op.outlets] for op in operators]


# -- naming: one asset per resource + scope, known at parse time ----------------------------------------


def test_each_operator_declares_the_asset_of_its_resource_and_scope():
    from airflow.sdk import DAG

    with DAG("assets_naming", schedule=None):
        ops = [
            SchneiderOrderStatusOperator(task_id="orders", country="fr"),  # normalised like the request
            SchneiderOrderStatusOperator(task_id="legacy", country="DE", legacy=True),
            SchneiderProductCatalogOperator(task_id="catalog", **IDS),
            SchneiderProductCatalogOperator(task_id="v1", **IDS, customer_id_type="duns", api_version="v1"),
            SchneiderApiOperator(task_id="quote", resource="distributor_quote", path_params={"quote_number": "123456"}),
            SchneiderApiOperator(task_id="by_resource", resource="order_status", path_params={"country": "ES"}),
            SchneiderApiOperator(task_id="path", endpoint="/v2/x/orders/{country}", path_params={"country": "IT"}),
            SchneiderStockLevelOperator(task_id="stock", product_references=["LC1D09/BD"]),
            SchneiderProductAvailabilityOperator(task_id="avail", product_references=["A"], schneider_conn_id="se_qa"),
            SchneiderNetPriceOperator(task_id="price", product_references=["A"]),
        ]
    assert declared(*ops) == [
        [("schneider.order_status.FR", "schneider://order_status/FR")],
        [("schneider.order_status_legacy.DE", "schneider://order_status_legacy/DE")],
        [("schneider.product_catalog.SE-FR-0001/0012345678", CATALOG_URI)],
        [
            (
                "schneider.product_catalog_v1.SE-FR-0001/duns:0012345678",
                "schneider://product_catalog_v1/SE-FR-0001/duns:0012345678",
            )
        ],
        [("schneider.distributor_quote.123456", "schneider://distributor_quote/123456")],
        [("schneider.order_status.ES", "schneider://order_status/ES")],  # same asset as the named operator's
        [("schneider.api.v2/x/orders/IT", "schneider://api/v2/x/orders/IT")],
        [("schneider.stock_level.conn:schneider_default", "schneider://stock_level/conn:schneider_default")],
        [("schneider.product_availability.conn:se_qa", "schneider://product_availability/conn:se_qa")],
        [("schneider.net_price.conn:schneider_default", "schneider://net_price/conn:schneider_default")],
    ]
    assert all(a.group == "schneider" for op in ops for a in op.outlets)
    # the helpers a consumer DAG schedules on name the very same assets
    assert ops[0].outlets == [assets.order_status_asset("FR")]
    assert ops[2].outlets == [assets.product_catalog_asset(**IDS)]
    assert ops[7].outlets == [assets.connection_asset("stock_level")]


def test_templated_or_mapped_scopes_fall_back_to_the_connection():
    """Only values known when the file is parsed can scope an asset: the scheduler links producers and
    consumers at parse time, before any template is rendered or any upstream task has run."""
    from airflow.sdk import DAG, task

    with DAG("assets_fallback", schedule=None) as dag:

        @task
        def countries() -> list[str]:
            return ["FR", "DE"]

        ops = [
            SchneiderOrderStatusOperator(task_id="templated", country="{{ params.country }}"),
            SchneiderProductCatalogOperator(task_id="tpl_ids", supplier_id="{{ params.s }}", customer_id="C"),
            SchneiderApiOperator(task_id="tpl_path", endpoint="/v1/{{ params.p }}", schneider_conn_id="other"),
        ]
        SchneiderOrderStatusOperator.partial(task_id="mapped").expand(country=countries())
        SchneiderProductCatalogOperator.partial(task_id="mapped_static", **IDS).expand(change_type=["new", "delete"])
        SchneiderStockLevelOperator.partial(task_id="mapped_explicit", outlets=[]).expand(
            product_references=[["A"], ["B"]]
        )
    assert declared(*ops) == [
        [("schneider.order_status.conn:schneider_default", "schneider://order_status/conn:schneider_default")],
        [("schneider.product_catalog.conn:schneider_default", "schneider://product_catalog/conn:schneider_default")],
        [("schneider.api.conn:other", "schneider://api/conn:other")],
    ]
    # mapped operators: the outlet is part of the parse-time (partial) arguments, so the scheduler sees it
    assert dag.get_task("mapped").partial_kwargs["outlets"] == [assets.connection_asset("order_status")]
    assert dag.get_task("mapped_static").partial_kwargs["outlets"] == [assets.product_catalog_asset(**IDS)]
    assert dag.get_task("mapped_explicit").partial_kwargs["outlets"] == []


def test_explicit_outlets_replace_the_default_and_an_empty_list_disables_it():
    from airflow.sdk import DAG, Asset

    mine = Asset(name="warehouse.orders", uri="s3://warehouse/orders")
    with DAG("assets_explicit", schedule=None, default_args={"outlets": [mine]}):
        from_default_args = SchneiderOrderStatusOperator(task_id="a", country="FR")
    with DAG("assets_explicit2", schedule=None):
        replaced = SchneiderOrderStatusOperator(task_id="b", country="FR", outlets=[mine])
        disabled = SchneiderOrderStatusOperator(task_id="c", country="FR", outlets=[])
    assert from_default_args.outlets == [mine] and replaced.outlets == [mine]
    assert disabled.outlets == []


@pytest.mark.parametrize(
    ("supplier", "customer"),
    [("SE-FR-0001", "0012345678"), ("a/b", "c"), ("a", "b/c"), ("conn:x", "y"), ("x.y", "z"), ("é ü", "1")],
)
def test_uris_are_one_to_one_with_names_and_stable_under_airflow_and_our_normaliser(supplier, customer):
    from airflow.sdk import Asset

    asset = assets.product_catalog_asset(supplier, customer)
    parts = urlsplit(asset.uri)
    assert parts.scheme == "schneider" and parts.netloc == "product_catalog"
    assert len(parts.path.strip("/").split("/")) == 2  # a "/" in an id never adds a path segment
    assert ":" not in parts.path  # only the conn:/duns: prefixes carry a raw ':' (here: none)
    assert asset.name == "schneider.product_catalog." + parts.path.strip("/")
    assert Asset(uri=asset.uri).uri == asset.uri  # Airflow's own sanitiser leaves it as is ...
    assert assets.sanitize_uri(parts) == parts  # ... and so does the normaliser we register for the scheme
    assert asset != assets.product_catalog_asset(supplier + "x", customer)


def test_normaliser_rejects_what_is_not_a_schneider_asset():
    assert assets.sanitize_uri(urlsplit("schneider://Order_Status/FR")).netloc == "order_status"
    for bad in ("schneider:///FR", "schneider://order_status", "schneider://u:p@order_status/FR"):
        with pytest.raises(ValueError, match="schneider://"):
            assets.sanitize_uri(urlsplit(bad))


# -- the event's extra is the manifest (small, no secrets) -----------------------------------------------


def test_outlet_event_extra_is_the_small_manifest_and_never_the_query(emulator, schneider_conn, tmp_path):
    from airflow.sdk.execution_time.context import OutletEventAccessors

    emulator.configure(today=TODAY.isoformat())
    schneider_conn(api_key="demo-api-key")  # a key in the query string must not travel into the extra
    op = SchneiderProductCatalogOperator(
        task_id="delta",
        **IDS,
        date_of_reference="2026-11-04",
        changed_before="2026-11-05",
        output_path=f"file://{tmp_path}/delta.jsonl",
    )
    events = OutletEventAccessors()
    manifest = op.execute(context(outlet_events=events))
    [asset] = op.outlets
    extra = events[asset].extra
    assert extra == {
        "uri": manifest["uri"],
        "records": len(data.catalog_changes(SEED, dt.date(2026, 11, 4), 500)),
        "bytes": local(manifest["uri"]).stat().st_size,
        "sha256": sha256(local(manifest["uri"])),
        "format": "jsonl",
        "fetched_at": manifest["fetched_at"],
        "data_interval_start": "2026-11-04T00:00:00+00:00",
        "data_interval_end": "2026-11-05T00:00:00+00:00",
        "endpoint": "/v2/reference-data/product/product-catalog/products",
        "since": "2026-11-04",
        "until": "2026-11-05",
        "change_type": "all",
        "schema": {"mode": "declared", **manifest["schema"]},
    }
    assert manifest["schema"]["version"] == "product_catalog/v1" and len(manifest["schema"]["fingerprint"]) == 16
    assert list(read_jsonl(extra["uri"])) == data.catalog_changes(SEED, dt.date(2026, 11, 4), 500)
    text = json.dumps(extra)
    assert "demo-api-key" not in text and "apikey" not in text and "supplierid" not in text
    assert len(text) < 1024

    small = SchneiderOrderStatusOperator(task_id="few", country="FR", return_records=True)
    emulator.configure(orders_per_country=7)
    events = OutletEventAccessors()
    records = small.execute(context(outlet_events=events))
    extra = events[assets.order_status_asset("FR")].extra
    assert len(records) == 7 and extra["records"] == 7 and extra["format"] == "xcom" and "uri" not in extra

    silent = SchneiderOrderStatusOperator(task_id="silent", country="FR", return_records=True, outlets=[])
    events = OutletEventAccessors()
    silent.execute(context(outlet_events=events))
    assert len(events) == 0
