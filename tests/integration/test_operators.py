"""Operators called directly (``execute`` with a task context) against the emulator over loopback.

Real HTTP, real token flow, real files; the expected records are computed with the emulator's pure data
functions, so every count and every record is checked exactly. DAG-level runs are in
``test_operators_dags.py``.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import structlog.testing

from airflow_provider_schneider.emulator import data
from airflow_provider_schneider.exceptions import (
    SchneiderApiError,
    SchneiderBusinessError,
    SchneiderConfigError,
    SchneiderResponseError,
)
from airflow_provider_schneider.operators import (
    SchneiderNetPriceOperator,
    SchneiderProductAvailabilityOperator,
    SchneiderProductCatalogOperator,
    SchneiderStockLevelOperator,
)
from airflow_provider_schneider.operators.api import SchneiderApiOperator
from airflow_provider_schneider.operators.orders import SchneiderOrderStatusOperator
from airflow_provider_schneider.pulls.plan import PullStats
from airflow_provider_schneider.pulls.report import ProgressLog
from airflow_provider_schneider.resources import RESOURCES, get_resource, path_segment
from airflow_provider_schneider.sinks import read_jsonl
from tests.support.operators import context, local, partials, sha256

SEED = 42
TODAY = dt.date(2026, 11, 20)
ORDER_PATH = "/v1/supply-chain/partner-order-status/orders/{}"
STOCK_PREFIX = "/productstocklevelchecker/1.1/products/"


def expected_orders(country: str, count: int) -> list[dict]:
    return [data.order(SEED, country, i) for i in range(count)]


def orders_op(tmp_path: Path, name: str = "orders.jsonl", **kwargs) -> SchneiderOrderStatusOperator:
    kwargs.setdefault("country", "FR")
    return SchneiderOrderStatusOperator(task_id="orders", output_path=f"file://{tmp_path}/{name}", **kwargs)


# -- import cost: DAG files import operators on every parse loop ----------------------------------------


def test_operator_modules_import_no_http_stack_and_no_hook():
    """Importing the operators (what a DAG file does) loads neither the hook nor requests/urllib3, and adds
    no tenacity/cryptography import of ours: Airflow itself already imports those two, so the check is the
    set of modules our import adds on top of ``import airflow.sdk``."""
    code = """
import json, sys
import airflow.sdk  # what every DAG file imports anyway
before = set(sys.modules)
import airflow_provider_schneider.operators.api
import airflow_provider_schneider.operators.orders
import airflow_provider_schneider.operators.products
from airflow_provider_schneider.operators import SchneiderOrderStatusOperator
added = sorted(set(sys.modules) - before)
print(json.dumps({"added": added, "all": sorted(sys.modules)}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    heavy = ("requests", "urllib3", "tenacity", "cryptography", "airflow_provider_schneider.hooks")
    assert not [m for m in facts["added"] if m.split(".")[0] in heavy or m.startswith(heavy)], facts["added"]
    for name in ("requests", "urllib3", "airflow_provider_schneider.hooks", "airflow_provider_schneider.client.http"):
        assert name not in facts["all"], name
    ours = {m for m in facts["added"] if m.startswith("airflow_provider_schneider")}
    assert ours <= {
        "airflow_provider_schneider",
        "airflow_provider_schneider.exceptions",
        "airflow_provider_schneider.config.settings",
        # stdlib: the connection field declarations settings validates with (Airflow >= 3.2 has already
        # imported it through the provider info when airflow.sdk loads; 3.1 has not)
        "airflow_provider_schneider.config.fields",
        "airflow_provider_schneider.resources",
        "airflow_provider_schneider.operators",
        "airflow_provider_schneider.operators.base",
        "airflow_provider_schneider.operators.api",
        "airflow_provider_schneider.operators.orders",
        "airflow_provider_schneider.operators.products",
        "airflow_provider_schneider.operators.catalog",
        "airflow_provider_schneider.operators.pool",  # stdlib + Airflow's conf: the deployment's pool
        "airflow_provider_schneider.config",
        "airflow_provider_schneider.pulls",
        "airflow_provider_schneider.pulls.plan",
        "airflow_provider_schneider.pulls.arguments",
        "airflow_provider_schneider.pulls.naming",  # stdlib: what names a default output
        "airflow_provider_schneider.pulls.report",  # stdlib: the pull's log lines
        "airflow_provider_schneider.pulls.target",  # stdlib: output arguments and where the output goes
        "airflow_provider_schneider.outputs",
        "airflow_provider_schneider.outputs.formats",  # stdlib: the formats and their compressions
        "airflow_provider_schneider.outputs.location",  # stdlib: where a rendered output may go
    }, ours


# -- resource catalog ----------------------------------------------------------------------------------


def test_catalog_covers_every_read_api_with_its_shape():
    for name in ("order_status", "product_catalog", "stock_level", "product_availability", "net_price"):
        assert name in RESOURCES
    assert "distributor_quote" in RESOURCES and "stock_levels_bulk" in RESOURCES
    assert get_resource("order_status").pagination == "page_number"
    assert get_resource("order_status").max_page_size == 100
    assert get_resource("order_status_legacy").max_page_size == 200
    assert get_resource("product_catalog").required_params == (
        "supplierid",
        "supplierid-type",
        "customerid",
        "customerid-type",
    )
    assert get_resource("stock_levels_bulk").method == "POST"
    with pytest.raises(SchneiderConfigError, match="known: "):
        get_resource("nope")


@pytest.mark.parametrize(
    ("value", "rule", "segment"),
    [
        ("LC1D09/BD", None, "LC1D09%2FBD"),
        ("LV40007\\X", None, "LV40007%5CX"),
        ("LC1D09/BD", "tilde", "LC1D09~2FBD"),
        ("LC1D09/BD", "underscore", "LC1D09_BD"),
        ("LC1D09/BD", {"/": "|"}, "LC1D09%7CBD"),
        ("A/B\\C", lambda v: v.lower(), "a%2Fb%5Cc"),  # a rule that keeps the slash: still encoded
        ("..", None, "%2E%2E"),
        ("a b?c#d", None, "a%20b%3Fc%23d"),
    ],
)
def test_path_segment_never_sends_a_raw_slash(value, rule, segment):
    assert path_segment(value, rule) == segment
    assert "/" not in segment and "\\" not in segment


def test_unknown_substitution_rule_and_empty_reference_fail_clearly():
    with pytest.raises(SchneiderConfigError, match="Unknown path substitution rule"):
        path_segment("A/B", "nope")
    with pytest.raises(SchneiderConfigError, match="empty"):
        path_segment("  ")


# -- Order Status: exact records, page order, last-page trap, manifest ----------------------------------


def test_order_status_pull_is_exact_ordered_and_stops_on_total_pages(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=1234)
    schneider_conn(max_concurrency=4)
    manifest = orders_op(tmp_path, country="de").execute(context())  # lower case accepted, sent upper case

    records = list(read_jsonl(manifest["uri"]))
    assert records == expected_orders("DE", 1234)  # exact content and order: no duplicate, no gap
    assert len({r["orderNumber"] for r in records}) == 1234
    stats = emulator.stats()
    assert stats["api_calls_by_path"] == {ORDER_PATH.format("DE"): 13}  # 13 pages, never a 14th (trap)
    assert stats["peak_concurrency"] <= 4
    file = local(manifest["uri"])
    assert manifest["records"] == 1234 and manifest["pages"] == 13
    assert manifest["bytes"] == file.stat().st_size and manifest["sha256"] == sha256(file)
    assert manifest["format"] == "jsonl" and manifest["resource"] == "order_status"
    assert manifest["endpoint"] == ORDER_PATH.format("DE")
    assert manifest["data_interval_start"] == "2026-11-04T00:00:00+00:00"
    assert set(manifest) >= {"uri", "records", "pages", "bytes", "sha256", "fetched_at"}
    json.dumps(manifest)  # XCom-serialisable


def test_pages_are_written_in_page_order_even_when_an_early_page_is_slow(emulator, schneider_conn, tmp_path):
    """Page 2 answers last (0.9 s delay) while pages 3..6 are already in: the file is still in page order.
    Every call takes 0.3 s, so the overlap does not depend on how fast a loaded machine starts the threads."""
    emulator.configure(orders_per_country=600, latency_ms=300)
    emulator.add_fault(target="api", kind="delay", delay_s=0.9, match_query={"page": "2"})
    schneider_conn(max_concurrency=4)
    manifest = orders_op(tmp_path).execute(context())
    assert list(read_jsonl(manifest["uri"])) == expected_orders("FR", 600)
    assert emulator.stats()["peak_concurrency"] > 1  # pages 2..6 really overlapped


def test_filters_are_validated_before_any_call_and_sent_as_documented(emulator, schneider_conn, tmp_path):
    with pytest.raises(SchneiderConfigError, match="at least 3"):
        orders_op(tmp_path, order_number="FR").execute(context())
    with pytest.raises(SchneiderConfigError, match="5 or 10 digits"):
        orders_op(tmp_path, purchaser_id="123").execute(context())
    with pytest.raises(SchneiderConfigError, match="alpha-2"):
        orders_op(tmp_path, country="FRA").execute(context())
    assert emulator.stats()["api_calls"] == 0

    records = orders_op(tmp_path, order_number="FR0000001", return_records=True).execute(context())
    assert [r["orderNumber"] for r in records] == [f"FR000000{i}" for i in range(10, 20)]


def test_zero_orders_write_an_empty_file(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=0)
    manifest = orders_op(tmp_path).execute(context())
    assert manifest["records"] == 0 and manifest["pages"] == 1
    assert local(manifest["uri"]).read_bytes() == b""


def test_legacy_variant_uses_its_own_path_and_200_per_page(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=450)
    schneider_conn(page_size=500)  # capped at the variant's documented maximum
    manifest = orders_op(tmp_path, legacy=True).execute(context())
    assert manifest["records"] == 450 and manifest["pages"] == 3
    assert emulator.stats()["api_calls_by_path"] == {"/v1/supply-chain/order-status/orders/FR": 3}


# -- atomic and idempotent output -----------------------------------------------------------------------


def test_failed_pull_leaves_no_file_and_keeps_the_previous_output(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=500)
    schneider_conn(retry_max_attempts=2, retry_backoff_initial=0.01, retry_backoff_max=0.02)
    # A fresh interval: the pull dies on page 3 -> no file at all, no temporary object left.
    emulator.add_fault(target="api", kind="status", status=500, times=-1, match_query={"page": "3"})
    with pytest.raises(SchneiderApiError, match="page 3.*HTTP 500"):
        orders_op(tmp_path, name="fresh.jsonl").execute(context())
    assert not (tmp_path / "fresh.jsonl").exists()
    assert partials(tmp_path) == []

    # An interval that already has output: it stays byte for byte.
    emulator.clear_faults()
    good = orders_op(tmp_path).execute(context())
    before = sha256(local(good["uri"]))
    emulator.add_fault(target="api", kind="status", status=500, times=-1, match_query={"page": "3"})
    with pytest.raises(SchneiderApiError):
        orders_op(tmp_path).execute(context())
    assert sha256(local(good["uri"])) == before
    assert list(read_jsonl(good["uri"])) == expected_orders("FR", 500)
    assert partials(tmp_path) == []


def test_rerun_of_an_interval_replaces_the_file(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=300)
    first = orders_op(tmp_path).execute(context())
    inode = local(first["uri"]).stat().st_ino
    second = orders_op(tmp_path).execute(context())
    file = local(second["uri"])
    assert second["uri"] == first["uri"] and second["sha256"] == first["sha256"] == sha256(file)
    assert len(file.read_bytes().splitlines()) == 300  # replaced, not appended
    assert file.stat().st_ino != inode  # a new file moved into place, not the old one rewritten


def test_gzip_output_is_readable_and_deterministic(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=250)
    first = orders_op(tmp_path, compression="gzip").execute(context())
    second = orders_op(tmp_path, compression="gzip").execute(context())
    file = local(first["uri"])
    assert first["uri"].endswith("orders.jsonl.gz") and first["format"] == "jsonl.gz"
    lines = gzip.decompress(file.read_bytes()).decode().splitlines()
    assert [json.loads(line) for line in lines] == expected_orders("FR", 250)
    assert list(read_jsonl(first["uri"])) == expected_orders("FR", 250)
    assert first["sha256"] == second["sha256"] == sha256(file)


def test_default_location_is_one_file_per_interval_and_map_index(emulator, schneider_conn, tmp_path):
    from airflow.sdk import DAG

    base = f"file://{tmp_path}/base"
    with DAG("d", schedule=None):
        op = SchneiderOrderStatusOperator(task_id="pull", country="FR", output_base=base)
    day1 = op.execute(context("2026-11-04", "2026-11-05"))
    day2 = op.execute(context("2026-11-05", "2026-11-06"))
    mapped = op.execute(context("2026-11-05", "2026-11-06", map_index=3))
    assert day1["uri"] == f"{base}/d/pull/20261104T000000__20261105T000000.jsonl"
    assert day2["uri"] == f"{base}/d/pull/20261105T000000__20261106T000000.jsonl"
    assert mapped["uri"] == f"{base}/d/pull/20261105T000000__20261106T000000/map_3.jsonl"
    assert mapped["map_index"] == 3
    folder = SchneiderOrderStatusOperator(task_id="p", country="FR", output_path=f"file://{tmp_path}/dir/")
    assert folder.execute(context())["uri"] == f"file://{tmp_path}/dir/20261104T000000__20261105T000000.jsonl"


# -- small-result mode ----------------------------------------------------------------------------------


def test_return_records_mode_and_its_size_guards(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=40)
    assert orders_op(tmp_path, return_records=True).execute(context()) == expected_orders("FR", 40)
    assert not (tmp_path / "orders.jsonl").exists()  # nothing written in this mode

    with pytest.raises(SchneiderConfigError, match="max_xcom_records=39"):
        orders_op(tmp_path, return_records=True, max_xcom_records=39).execute(context())
    with pytest.raises(SchneiderConfigError, match="max_xcom_bytes=2000"):
        orders_op(tmp_path, return_records=True, max_xcom_bytes=2000).execute(context())


# -- generic operator -----------------------------------------------------------------------------------


def test_generic_operator_calls_any_path_with_paging(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=150)
    op = SchneiderApiOperator(
        task_id="generic",
        endpoint="/v1/supply-chain/partner-order-status/orders/{country}",
        path_params={"country": "ES"},
        records_field="orderList",
        paginate=True,
        page_size=40,
        output_path=f"file://{tmp_path}/generic.jsonl",
    )
    manifest = op.execute(context())
    assert manifest["pages"] == 4 and list(read_jsonl(manifest["uri"])) == expected_orders("ES", 150)

    quote = SchneiderApiOperator(
        task_id="quote", resource="distributor_quote", path_params={"quote_number": "123456"}, return_records=True
    ).execute(context())
    assert quote == data.quote(SEED, "123456", 500)["quoteLines"]

    whole = SchneiderApiOperator(
        task_id="whole",
        resource="distributor_quote",
        path_params={"quote_number": "123456"},
        records_field=".",  # the whole answer as one record
        return_records=True,
    )
    assert whole.execute(context()) == [data.quote(SEED, "123456", 500)]


def test_generic_operator_checks_required_params_before_calling(emulator, schneider_conn):
    op = SchneiderApiOperator(task_id="cat", resource="product_catalog", query={"supplierid": "S"})
    with pytest.raises(SchneiderConfigError, match="customerid"):
        op.execute(context())
    with pytest.raises(SchneiderConfigError, match="resource' or an 'endpoint"):
        SchneiderApiOperator(task_id="x")
    with pytest.raises(SchneiderConfigError, match="records_field"):
        SchneiderApiOperator(task_id="x", endpoint="/a", paginate=True)
    assert emulator.stats()["api_calls"] == 0


# -- Product Catalog -------------------------------------------------------------------------------------

IDS = {"supplier_id": "SE-FR-0001", "customer_id": "0012345678"}


def test_catalog_delta_is_bounded_to_the_interval(emulator, schneider_conn):
    emulator.configure(today=TODAY.isoformat())
    op = SchneiderProductCatalogOperator(
        task_id="delta",
        **IDS,
        date_of_reference="2026-11-04T00:00:00+00:00",  # what "{{ data_interval_start }}" renders to
        changed_before="2026-11-06",
        return_records=True,
    )
    records = op.execute(context())
    day = [dt.date(2026, 11, 4), dt.date(2026, 11, 5)]
    assert records == data.delta(SEED, day[0], day[1], "all", 500)
    everything = data.delta(SEED, day[0], TODAY, "all", 500)
    # the API sent more; the interval kept its own
    assert op.last_pull.stats.filtered_out == len(everything) - len(records) > 0


def test_catalog_delta_change_type_and_full_scope(emulator, schneider_conn):
    emulator.configure(today=TODAY.isoformat(), products=120)
    since = dt.date(2026, 11, 1)
    new_only = SchneiderProductCatalogOperator(
        task_id="d", **IDS, date_of_reference=since.isoformat(), change_type="NEW", return_records=True
    ).execute(context())
    assert new_only == data.delta(SEED, since, TODAY, "new", 120)
    full = SchneiderProductCatalogOperator(task_id="f", **IDS, return_records=True, max_xcom_bytes=10**6)
    assert full.execute(context()) == [data.product_summary(SEED, i) for i in range(120)]
    with pytest.raises(SchneiderConfigError, match="change_type"):
        SchneiderProductCatalogOperator(task_id="x", **IDS, date_of_reference="2026-11-01", change_type="x").execute(
            context()
        )


def test_catalog_detail_mode_splits_long_reference_lists_and_keeps_order(emulator, schneider_conn, tmp_path):
    refs = [data.product_reference(i) for i in range(120)]
    op = SchneiderProductCatalogOperator(
        task_id="detail",
        **IDS,
        product_references=refs,
        references_per_call=50,
        output_path=f"file://{tmp_path}/detail.jsonl",
    )
    manifest = op.execute(context())
    assert list(read_jsonl(manifest["uri"])) == [data.product_detail(SEED, i) for i in range(120)]
    assert manifest["pages"] == 3 and manifest["product_references"] == 120
    assert emulator.stats()["api_calls"] == 3


# -- fan-out operators -----------------------------------------------------------------------------------


def test_stock_levels_fan_out_in_order_with_bounded_concurrency(emulator, schneider_conn, tmp_path):
    emulator.configure(today=TODAY.isoformat(), latency_ms=30)
    schneider_conn(max_concurrency=3)
    indexes = [1, 7, 13, 26, 2, 3, 4, 5, 6, 8]  # slashes (1, 26) and backslashes (7, 13) included
    refs = [data.product_reference(i) for i in indexes]
    op = SchneiderStockLevelOperator(
        task_id="stock",
        product_references=[refs[:5], refs[5:] + [refs[0]], "NOPE-1"],  # nested chunks, a repeat, an unknown
        ship_to="0100012345",
        output_path=f"file://{tmp_path}/stock.jsonl",
    )
    manifest = op.execute(context())
    records = list(read_jsonl(manifest["uri"]))
    assert [r["productReference"] for r in records] == refs
    assert [r["stockLevels"] for r in records] == [data.stock_levels(SEED, i, TODAY) for i in indexes]
    assert all(r["shipTo"] == "0100012345" for r in records)
    assert manifest["not_found"] == ["NOPE-1"] and manifest["calls"] == 11
    stats = emulator.stats()
    assert 1 < stats["peak_concurrency"] <= 3
    paths = [p[len(STOCK_PREFIX) :] for p in stats["api_calls_by_path"] if p.startswith(STOCK_PREFIX)]
    assert len(paths) == 11 and "LC1D09%2FBD" in paths and "LV40007%5CX" in paths
    assert not [p for p in paths if "/" in p or "\\" in p]


def test_path_substitution_rule_is_configurable(emulator, schneider_conn):
    emulator.configure(path_substitutions={"~2F": "/", "~5C": "\\"})
    refs = [data.product_reference(i) for i in (1, 7)]
    records = SchneiderStockLevelOperator(
        task_id="s", product_references=refs, path_substitutions="tilde", on_not_found="fail", return_records=True
    ).execute(context())
    assert [r["productReference"] for r in records] == refs
    assert set(emulator.stats()["api_calls_by_path"]) == {STOCK_PREFIX + "LC1D09~2FBD", STOCK_PREFIX + "LV40007~5CX"}

    with pytest.raises(SchneiderApiError, match="HTTP 404"):  # on_not_found="fail"
        SchneiderStockLevelOperator(
            task_id="s", product_references=["NOPE"], on_not_found="fail", return_records=True
        ).execute(context())


def test_stock_bulk_variant_posts_chunks(emulator, schneider_conn):
    emulator.configure(today=TODAY.isoformat())
    refs = [data.product_reference(i) for i in range(5)] + ["NOPE"]
    op = SchneiderStockLevelOperator(task_id="b", product_references=refs, bulk=True, bulk_size=2, return_records=True)
    records = op.execute(context())
    assert [r["productReference"] for r in records] == refs[:5]
    assert [r["stockLevels"] for r in records] == [data.stock_levels(SEED, i, TODAY) for i in range(5)]
    assert op.last_pull.stats.not_found == ["NOPE"] and op.last_pull.manifest["calls"] == 3


def test_bad_response_data_is_a_response_error_that_airflow_may_retry(emulator, schneider_conn):
    """Data the API sent that cannot be used is a response error, never a configuration error: Airflow does
    not retry an AirflowFailException, and a retry may well get a good answer."""
    from airflow_provider_schneider.exceptions import AirflowFailException

    emulator.configure(today=TODAY.isoformat())
    bulk = SchneiderStockLevelOperator(
        task_id="b", product_references=[data.product_reference(0), "NOPE"], bulk=True, on_not_found="fail"
    )
    not_a_list = SchneiderApiOperator(
        task_id="obj", endpoint=ORDER_PATH.format("FR"), records_field="pagination", return_records=True
    )
    bad_date = SchneiderProductCatalogOperator(
        task_id="d",
        **IDS,
        date_of_reference="2026-11-04",
        changed_before="2026-11-05",
        change_date_field="commercialReference",  # not a date in any record
        return_records=True,
    )
    cases = [
        (bulk, "POST /productstocklevelchecker/1.1/products/stock-levels.*code=PRODUCT_NOT_FOUND.*NOPE"),
        (not_a_list, "field 'pagination' is not a list"),
        (bad_date, "'commercialReference' is '.*', not a date"),
    ]
    for op, message in cases:
        with pytest.raises(SchneiderResponseError, match=message) as info:
            op.execute(context())
        assert not isinstance(info.value, (SchneiderConfigError, AirflowFailException)), op.task_id
        assert info.value.conn_id == "schneider_default"


def test_availability_per_product_with_item_overrides(emulator, schneider_conn):
    emulator.configure(today=TODAY.isoformat())
    items = ["LC1D09/BD", {"reference": data.product_reference(2), "quantity": 3000}]
    records = SchneiderProductAvailabilityOperator(
        task_id="a", product_references=items, quantity=5, ship_to="0100012345", return_records=True
    ).execute(context())
    assert records[0] == {
        "productReference": "LC1D09/BD",
        "quantity": 5,
        "shipTo": "0100012345",
        **data.availability(SEED, 1, 5, TODAY),
    }
    assert (
        records[1]["quantity"] == 3000
        and records[1]["currLeadTime"] == data.availability(SEED, 2, 3000, TODAY)["currLeadTime"]
    )


@pytest.mark.parametrize("mode", ["keep", "skip", "fail"])
def test_net_price_business_errors_option(emulator, schneider_conn, tmp_path, mode):
    emulator.configure(today=TODAY.isoformat())
    indexes = list(range(40))
    failing = [data.product_reference(i) for i in indexes if data.has_net_price_error(SEED, i)]
    refs = [data.product_reference(i) for i in indexes] + ["UNKNOWN-REF"]
    assert failing  # the data set has some
    op = SchneiderNetPriceOperator(
        task_id="np", product_references=refs, on_business_error=mode, output_path=f"file://{tmp_path}/np.jsonl"
    )
    if mode == "fail":
        with pytest.raises(SchneiderBusinessError, match=f"{len(failing) + 1} product"):
            op.execute(context())
        assert not (tmp_path / "np.jsonl").exists() and partials(tmp_path) == []
        return
    manifest = op.execute(context())
    numbers = [r["catalogNumber"] for r in read_jsonl(manifest["uri"])]
    erroneous = [*failing, "UNKNOWN-REF"]
    assert manifest["business_error_count"] == len(erroneous)
    assert [e["reference"] for e in manifest["business_errors"]] == erroneous
    assert numbers == (refs if mode == "keep" else [r for r in refs if r not in erroneous])


# -- streaming: records leave as pages arrive ------------------------------------------------------------


def test_pull_streams_pages_instead_of_collecting_them(emulator, schneider_conn):
    """Stop reading after the first record: only page 1 plus the bounded look-ahead window was requested
    (not all 100 pages), so a pull never holds more than a few pages in memory."""
    emulator.configure(orders_per_country=1000)
    schneider_conn(max_concurrency=2, page_size=10)
    op = SchneiderOrderStatusOperator(task_id="lazy", country="FR")
    hook = op.get_hook()
    try:
        records = op.iter_records(hook, op.prepare(context(), hook), PullStats())
        first_eleven = [next(records) for _ in range(11)]  # page 1 (10 records) and the first of page 2
        records.close()
    finally:
        hook.close()
    assert first_eleven == [data.order(SEED, "FR", i) for i in range(11)]
    assert emulator.stats()["api_calls"] <= 1 + 2 * 2 + 1  # page 1 + window (2 x concurrency) + one refill


# -- what a pull says while it runs: progress lines, start and end lines, metrics -------------------------

PROGRESS = re.compile(r"^Progress: (\d+)/(\d+) (pages|calls) \((\d+) %\), ([\d,]+) records, [\d,]+ rec/s, ETA \S+$")


def task_log(entries: list[dict]) -> list[str]:
    """The operator's log lines, as Airflow's structlog renders them into the task log."""
    return [str(e["event"]) for e in entries]


def progress_of(lines: list[str]) -> list[tuple[int, int, str, int, int]]:
    found = [PROGRESS.match(line) for line in lines if line.startswith("Progress:")]
    assert all(found), lines
    return [
        (int(n), int(m), unit, int(pct), int(r.replace(",", ""))) for n, m, unit, pct, r in (f.groups() for f in found)
    ]


def test_progress_lines_of_a_real_pull(emulator, schneider_conn, tmp_path, monkeypatch):
    """20 pages: a line per 10 % step (none at 100 %: the end line follows) with N/M, percent and records
    so far; the start line names endpoint and query (secrets redacted); the end line elapsed time and rate;
    the records and pages go to the metrics."""
    from airflow_provider_schneider import metrics

    sent: list[tuple[str, int]] = []
    monkeypatch.setattr(metrics, "incr", lambda name, count=1: sent.append((name, count)))
    emulator.configure(orders_per_country=2000)
    schneider_conn(page_size=100, max_concurrency=4)
    op = orders_op(tmp_path, query={"access_token": "tok-secret-1234"})
    with structlog.testing.capture_logs() as entries:
        manifest = op.execute(context())
    lines = task_log(entries)
    assert manifest["records"] == 2000 and manifest["pages"] == 20
    assert progress_of(lines) == [(2 * k, 20, "pages", 10 * k, 200 * k) for k in range(1, 10)]
    assert (
        f"Pulling order_status: GET {ORDER_PATH.format('FR')}, query {{'access_token': '***'}}, 100 records per page"
        in lines
    )
    assert not [line for line in lines if "tok-secret-1234" in line]
    [end] = [line for line in lines if line.startswith("Wrote ")]
    assert re.match(
        r"Wrote 2,000 records from 20 pages in \d+\.\ds \([\d,]+ rec/s\), \d+ bytes, sha256 [0-9a-f]{12}, to ", end
    )
    assert ("pull.records", 2000) in sent and ("pull.pages", 20) in sent


def test_progress_of_a_fan_out_counts_calls(emulator, schneider_conn, tmp_path):
    emulator.configure(today=TODAY.isoformat())
    refs = [data.product_reference(i) for i in range(11)]
    op = SchneiderStockLevelOperator(task_id="stock", product_references=refs, return_records=True)
    with structlog.testing.capture_logs() as entries:
        assert len(op.execute(context())) == 11
    lines = task_log(entries)
    assert [(n, m, unit, pct) for n, m, unit, pct, _ in progress_of(lines)] == [
        (n, 11, "calls", 100 * n // 11) for n in range(2, 11)
    ]
    assert f"Pulling stock_level: 11 calls of GET {get_resource('stock_level').path}, query {{}}" in lines
    assert [
        line for line in lines if re.match(r"Pulled 11 records from 11 calls in .*; returning them through XCom$", line)
    ]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, fmt: str, *args: object) -> None:
        self.lines.append(fmt % args)


def test_progress_every_30s_when_pages_are_slow_or_the_total_unknown():
    clock, log = FakeClock(), Lines()
    stats, progress = PullStats(clock=clock), ProgressLog(log)
    for _ in range(7):  # unknown total: one line per 30 s, whatever the number of pages
        clock.now += 12
        stats.add_page(100)
        progress.update(stats)
    assert log.lines == ["Progress: 3 pages, 300 records, 8 rec/s", "Progress: 6 pages, 600 records, 8 rec/s"]

    clock, log = FakeClock(), Lines()
    stats, progress = PullStats(clock=clock), ProgressLog(log)
    for _ in range(3):  # 1,000 pages, 40 s each: no 10 % step for a long time, a line every 30 s still
        clock.now += 40
        stats.add_page(10, 1000)
        progress.update(stats)
    assert log.lines == [
        "Progress: 1/1,000 pages (0 %), 10 records, 0 rec/s, ETA 11h06m",
        "Progress: 2/1,000 pages (0 %), 20 records, 0 rec/s, ETA 11h05m",
        "Progress: 3/1,000 pages (0 %), 30 records, 0 rec/s, ETA 11h04m",
    ]

    clock, log = FakeClock(), Lines()
    stats, progress = PullStats(clock=clock), ProgressLog(log)
    for _ in range(1000):  # fast pages: one line per 10 % step, never more
        clock.now += 0.01
        stats.add_page(100, 1000)
        progress.update(stats)
    assert [line.split(" pages")[0] for line in log.lines] == [f"Progress: {100 * k}/1,000" for k in range(1, 10)]
    assert log.lines[4] == "Progress: 500/1,000 pages (50 %), 50,000 records, 10,000 rec/s, ETA 5.0s"
