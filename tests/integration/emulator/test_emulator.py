"""Tests of the Schneider API gateway emulator (in-thread server, plus one real subprocess)."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import http.client
import json
import math
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from airflow_provider_schneider.emulator import EmulatorConfig, EmulatorServer, data
from airflow_provider_schneider.emulator.client import EmulatorClient, EmulatorError, EmulatorProcess, Reply

#: The emulator alone, no Airflow involved: the lowest-version run skips it.
pytestmark = pytest.mark.latest_only

TODAY = dt.date(2025, 6, 30)
ORDERS = "/v1/supply-chain/partner-order-status/orders"
LEGACY_ORDERS = "/v1/supply-chain/order-status/orders"
CATALOG = "/v2/reference-data/product/product-catalog/products"
STOCK = "/productstocklevelchecker/1.1/products"
AVAILABILITY = "/v2/sales-operation/product-availability/products"
NET_PRICE = "/v1/customer-journey/distributor/product-netprice/product-reference"
QUOTE = "/v1/customer-journey/distributor/quote/quotelines"
ORDER_ENTRY = "/v2/customer-order/system/myse-order-entry-fr/orders"
IDS = {
    "supplierid": "SE01",
    "supplierid-type": "specific",
    "customerid": "123456789",
    "customerid-type": "duns",
}
ERROR_KEYS = {"code", "userMessage", "developerMessage", "moreInfo"}
CREDENTIALS = {"grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret"}


@pytest.fixture(scope="module")
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(port=0, today=TODAY)


@pytest.fixture
def token(emu: EmulatorClient) -> str:
    return emu.get_token()


def get(emu: EmulatorClient, path: str, token: str | None = None, **params: Any) -> Reply:
    return emu.request("GET", path, params=params or None, token=token)


def orders(emu: EmulatorClient, token: str, country: str = "FR", **params: Any) -> Reply:
    return emu.request("GET", f"{ORDERS}/{country}", params=params, token=token)


def assert_error(reply: Reply, status: int, code: str) -> None:
    assert reply.status == status, reply.text
    body = reply.json()
    assert set(body) == ERROR_KEYS
    assert body["code"] == code


def raw_get(server: EmulatorServer, path: str, timeout: float = 5.0) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    conn.request("GET", path + ("&" if "?" in path else "?") + "apikey=demo-api-key")
    return conn.getresponse()


# ------------------------------------------------------------------ token endpoint


def test_token_with_basic_auth(emu: EmulatorClient) -> None:
    basic = base64.b64encode(b"demo-client:demo-secret").decode()
    reply = emu.request(
        "POST",
        "/token",
        form={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert reply.status == 200
    body = reply.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert len(body["access_token"]) >= 40 and body["access_token"].count(".") != 2  # opaque, not a JWT


def test_token_with_form_credentials_and_scope(emu: EmulatorClient) -> None:
    reply = emu.request("POST", "/token", form={**CREDENTIALS, "scope": "all"})
    assert reply.status == 200 and reply.json()["scope"] == "all"
    assert get(emu, f"{ORDERS}/FR", reply.json()["access_token"]).status == 200


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({**CREDENTIALS, "client_secret": "nope"}, 401, "invalid_client"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
        ({**CREDENTIALS, "grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"client_id": "demo-client", "client_secret": "demo-secret"}, 400, "unsupported_grant_type"),
    ],
)
def test_token_errors(emu: EmulatorClient, form: dict[str, str], status: int, error: str) -> None:
    reply = emu.request("POST", "/token", form=form)
    assert reply.status == status and reply.json()["error"] == error
    if status == 401:
        assert reply.json()["error_description"] == "Client authentication failed"
    assert emu.stats()["token_requests_by_status"] == {str(status): 1}


def test_token_get_is_405(emu: EmulatorClient) -> None:
    assert emu.request("GET", "/token").status == 405


def test_token_response_styles(emu: EmulatorClient) -> None:
    emu.configure(expires_in_style="string", token_type_style="bearer", token_lifetime=120)
    tok = emu.request("POST", "/token", form=CREDENTIALS).json()
    assert tok["expires_in"] == "120" and tok["token_type"] == "bearer"
    emu.configure(expires_in_style="missing")
    basic = base64.b64encode(b"demo-client:demo-secret").decode()
    tok = emu.request(
        "POST",
        "/token",
        form={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
    ).json()
    assert "expires_in" not in tok


def test_token_expiry(emu: EmulatorClient) -> None:
    """The emulator's clock jumps instead of the test sleeping: no race with a slow first call."""
    emu.configure(token_lifetime=60)
    tok = emu.get_token()
    assert orders(emu, tok).status == 200
    emu.advance_clock(50)
    assert orders(emu, tok).status == 200  # 10 s of real time to spare
    emu.advance_clock(11)
    assert_error(orders(emu, tok), 401, "EXPIRED_TOKEN")
    assert emu.stats()["unauthorized"] == 1
    emu.reset()  # the clock goes back with the rest
    fresh = emu.get_token()
    assert orders(emu, fresh).status == 200


def test_revoke_all_and_one(emu: EmulatorClient) -> None:
    first, second = emu.get_token(), emu.get_token()
    assert emu.revoke_tokens(first) == 1
    assert_error(orders(emu, first), 401, "INVALID_TOKEN")
    assert orders(emu, second).status == 200
    assert emu.revoke_tokens() == 1
    assert_error(orders(emu, second), 401, "INVALID_TOKEN")


def test_missing_or_unknown_token(emu: EmulatorClient) -> None:
    reply = get(emu, f"{ORDERS}/FR")
    assert_error(reply, 401, "INVALID_TOKEN")
    assert reply.json()["moreInfo"] == "https://api-explorer.se.com"
    assert "Bearer" in reply.headers["WWW-Authenticate"]
    assert_error(orders(emu, "x" * 48), 401, "INVALID_TOKEN")


def test_api_key_mode(emu: EmulatorClient, token: str) -> None:
    by_key = get(emu, f"{ORDERS}/FR", apikey="demo-api-key")
    assert by_key.status == 200
    assert by_key.json() == orders(emu, token).json()  # apikey is not a filter
    assert_error(get(emu, f"{ORDERS}/FR", apikey="wrong"), 401, "INVALID_API_KEY")
    emu.configure(accept_api_key=False)
    assert_error(get(emu, f"{ORDERS}/FR", apikey="demo-api-key"), 401, "INVALID_API_KEY")


# ------------------------------------------------------------------ common errors


def test_unknown_path_and_method(emu: EmulatorClient, token: str) -> None:
    assert_error(get(emu, "/v9/nothing", token), 404, "NOT_FOUND")
    reply = emu.request("DELETE", f"{ORDERS}/FR", token=token)
    assert_error(reply, 405, "METHOD_NOT_ALLOWED")
    assert reply.headers["Allow"] == "GET"


# ------------------------------------------------------------------ order status


def test_order_pagination_and_last_page_trap(emu: EmulatorClient, token: str) -> None:
    seen = []
    for page in (1, 2, 3):
        body = orders(emu, token, page=page, **{"page-size": 100}).json()
        assert body["pagination"] == {
            "totalNumberOfRecords": 250,
            "pageNumber": page,
            "totalNumberOfPages": 3,
        }
        seen += body["orderList"]
    assert seen == [data.order(42, "FR", i) for i in range(250)]
    beyond = orders(emu, token, page=7, **{"page-size": 100}).json()
    assert beyond["pagination"]["pageNumber"] == 3
    assert beyond["orderList"] == seen[200:]  # the last page again, never empty
    default = orders(emu, token).json()
    assert len(default["orderList"]) == 10 and default["pagination"]["totalNumberOfPages"] == 25


def test_page_size_limits(emu: EmulatorClient, token: str) -> None:
    assert_error(orders(emu, token, **{"page-size": 101}), 400, "INVALID_FIELD")
    emu.configure(page_size_over_max="clamp")
    assert len(orders(emu, token, **{"page-size": 500}).json()["orderList"]) == 100
    emu.configure(page_size_over_max="error")
    legacy = get(emu, f"{LEGACY_ORDERS}/FR", token, **{"page-size": 200}).json()
    assert len(legacy["orderList"]) == 200 and legacy["pagination"]["totalNumberOfPages"] == 2
    assert_error(get(emu, f"{LEGACY_ORDERS}/FR", token, **{"page-size": 201}), 400, "INVALID_FIELD")


@pytest.mark.parametrize(
    ("country", "params"),
    [
        ("fr", {}),
        ("FRA", {}),
        ("F1", {}),
        ("FR", {"order-number": "FR"}),
        ("FR", {"purchaser-id": "1234"}),
        ("FR", {"purchaser-id": "12345678"}),
        ("FR", {"page": 0}),
        ("FR", {"page": "x"}),
        ("FR", {"page-size": 0}),
        ("FR", {"order-status": "Lost"}),
    ],
)
def test_order_invalid_fields(emu: EmulatorClient, token: str, country: str, params: dict[str, Any]) -> None:
    assert_error(orders(emu, token, country, **params), 400, "INVALID_FIELD")


def test_order_filters(emu: EmulatorClient, token: str) -> None:
    everything = [data.order(42, "DE", i) for i in range(250)]
    shipped = orders(emu, token, "DE", **{"order-status": "Shipped", "page-size": 100}).json()
    expected = [o for o in everything if o["orderStatus"] == "Shipped"]
    assert shipped["orderList"] == expected[:100]
    assert shipped["pagination"]["totalNumberOfRecords"] == len(expected)
    purchaser = everything[0]["purchaserId"]
    body = orders(emu, token, "DE", **{"purchaser-id": purchaser, "page-size": 100}).json()
    assert {o["purchaserId"] for o in body["orderList"]} == {purchaser}
    assert body["pagination"]["totalNumberOfRecords"] == sum(o["purchaserId"] == purchaser for o in everything)
    short = data.purchaser_ids(42, "DE")[0]
    body = orders(emu, token, "DE", **{"purchaser-id": short.lstrip("0").zfill(5), "page-size": 100}).json()
    assert body["pagination"]["totalNumberOfRecords"] == sum(o["purchaserId"] == short for o in everything)
    prefix = orders(emu, token, "DE", **{"order-number": "DE0000001"}).json()
    assert [o["orderNumber"] for o in prefix["orderList"]] == [f"DE0000001{d}" for d in range(10)]


def test_zero_results_and_beyond_page(emu: EmulatorClient, token: str) -> None:
    body = orders(emu, token, **{"order-number": "XX999", "page": 4}).json()
    assert body == {
        "orderList": [],
        "pagination": {"totalNumberOfRecords": 0, "pageNumber": 1, "totalNumberOfPages": 0},
    }
    filtered = orders(emu, token, **{"order-status": "Open", "page-size": 7, "page": 999}).json()
    pages = filtered["pagination"]["totalNumberOfPages"]
    assert filtered["pagination"]["pageNumber"] == pages
    assert (
        filtered["orderList"]
        == orders(emu, token, **{"order-status": "Open", "page-size": 7, "page": pages}).json()["orderList"]
    )


#: A page of the largest country the emulator allows is computed, not generated from the whole list: were it
#: generated, one answer would take minutes and these tests would hit this bound (no timing assertion).
LARGEST = 99_999_999


@pytest.mark.timeout(60)
def test_a_page_deep_in_the_largest_country_is_computed(emu: EmulatorClient, token: str) -> None:
    emu.configure(orders_per_country=LARGEST)
    body = orders(emu, token, page=4_000_000, **{"page-size": 25}).json()
    assert body["pagination"]["totalNumberOfPages"] == 4_000_000
    assert body["orderList"][-1]["orderNumber"] == "FR" + str(LARGEST)
    assert [o["orderNumber"] for o in body["orderList"]] == [
        data.order_number("FR", i) for i in range(LARGEST - 24, LARGEST)
    ]


def test_order_number_prefix_ranges() -> None:
    for prefix in (
        "FR0",
        "FR00000",
        "FR0000001",
        "FR00000010",
        "FR00000000",
        "FR1",
        "DE000",
        "FRX00",
        "FR000000011",
    ):
        expected = [i for i in range(1200) if data.order_number("FR", i).startswith(prefix)]
        assert list(data.order_indexes("FR", prefix, 1200)) == expected, prefix


@pytest.mark.timeout(60)
def test_an_order_number_lookup_in_the_largest_country_is_computed(emu: EmulatorClient, token: str) -> None:
    emu.configure(orders_per_country=LARGEST)
    body = orders(emu, token, "SE", **{"order-number": "SE76543210"}).json()
    assert body["orderList"] == [data.order(42, "SE", 76543209)]


def test_order_status_override_and_schedule(emu: EmulatorClient, token: str) -> None:
    number = data.order_number("IT", 3)
    emu.set_order_status("IT", number, "Lost In Transit")
    listed = orders(emu, token, "IT", **{"order-number": number}).json()["orderList"]
    assert listed[0]["orderStatus"] == "Lost In Transit"
    emu.schedule_order_statuses("IT", number, ["In Progress", "Shipped", "Invoiced"], every_s=60)
    first = orders(emu, token, "IT", **{"order-number": number}).json()["orderList"][0]["orderStatus"]
    emu.advance_clock(61)
    second = orders(emu, token, "IT", **{"order-number": number, "order-status": "Shipped"}).json()
    assert first == "In Progress" and [o["orderNumber"] for o in second["orderList"]] == [number]
    with pytest.raises(EmulatorError):
        emu.set_order_status("IT", "IT99999999", "Shipped")


# ------------------------------------------------------------------ catalogue


def test_catalog_mandatory_ids(emu: EmulatorClient, token: str) -> None:
    for name in IDS:
        params = {k: v for k, v in IDS.items() if k != name}
        assert_error(get(emu, CATALOG, token, **params), 400, "MISSING_FIELD")
    assert_error(get(emu, CATALOG, token, **{**IDS, "customerid-type": "gln"}), 400, "INVALID_FIELD")


def test_catalog_full_scope(emu: EmulatorClient, token: str) -> None:
    body = get(emu, CATALOG, token, **IDS, **{"etim-version": "ETIM-9.0"}).json()
    assert body["supplierID"] == "SE01" and body["customerIDType"] == "duns"
    assert len(body["products"]) == 500
    assert body["products"] == [data.product_summary(42, i) for i in range(500)]
    assert body["products"][1]["identifiers"] == {"commercialReference": "LC1D09/BD", "gtin": data.gtin(1)}
    assert set(body["products"][1]) == {"identifiers", "description", "status"}
    references = [p["identifiers"]["commercialReference"] for p in body["products"]]
    assert len(set(references)) == 500 and any("\\" in r for r in references) and any("/" in r for r in references)
    assert get(emu, CATALOG.replace("/v2/", "/v1/"), token, **IDS).json() == body


def test_catalog_detail(emu: EmulatorClient, token: str) -> None:
    refs = [data.product_reference(i) for i in (1, 7, 42)] + ["UNKNOWN-REF"]
    body = get(emu, CATALOG, token, **IDS, **{"product-reference": refs}).json()
    assert body["products"] == [data.product_detail(42, i) for i in (1, 7, 42)]
    by_gtin = get(emu, CATALOG, token, **IDS, **{"product-reference": [data.gtin(5)], "product-identifier": "gtin"})
    assert by_gtin.json()["products"] == [data.product_detail(42, 5)]
    bad = get(emu, CATALOG, token, **IDS, **{"product-reference": "X", "product-identifier": "ean"})
    assert_error(bad, 400, "INVALID_FIELD")


def test_catalog_delta(emu: EmulatorClient, token: str) -> None:
    since = TODAY - dt.timedelta(days=20)
    params = {**IDS, "date-of-reference": since.isoformat(), "change-type": "all"}
    body = get(emu, CATALOG, token, **params).json()
    assert body["products"] == data.delta(42, since, TODAY, "all", 500) != []
    deleted = get(emu, CATALOG, token, **{**params, "change-type": "delete"}).json()["products"]
    assert deleted == data.delta(42, since, TODAY, "delete", 500)
    assert {p["changeType"] for p in deleted} == {"delete"}
    with_refs = get(emu, CATALOG, token, **params, **{"product-reference": ["LC1D09/BD"]}).json()
    assert with_refs["products"] == body["products"]  # the delta wins over references
    emu.configure(delta_semantics="on")
    on_day = get(emu, CATALOG, token, **params).json()["products"]
    assert on_day == data.catalog_changes(42, since, 500)
    future = {**params, "date-of-reference": (TODAY + dt.timedelta(days=3)).isoformat()}
    assert get(emu, CATALOG, token, **future).json()["products"] == []
    assert_error(get(emu, CATALOG, token, **{**params, "date-of-reference": "30/06/2025"}), 400, "INVALID_FIELD")
    assert_error(get(emu, CATALOG, token, **{**params, "change-type": "moved"}), 400, "INVALID_FIELD")
    no_type = {k: v for k, v in params.items() if k != "change-type"}
    assert_error(get(emu, CATALOG, token, **no_type), 400, "MISSING_FIELD")


def test_change_log_is_deterministic() -> None:
    day = dt.date(2024, 2, 29)
    changes = data.catalog_changes(7, day, 500)
    assert changes == data.catalog_changes(7, day, 500)
    counts = [len(data.catalog_changes(7, day + dt.timedelta(days=n), 500)) for n in range(60)]
    assert min(counts) >= 0 and max(counts) <= 15 and len(set(counts)) > 3
    assert len({c["commercialReference"] for c in changes}) == len(changes)
    assert all(c["changeDate"] == day.isoformat() for c in changes)
    assert data.delta(7, day, day + dt.timedelta(days=1)) == changes + data.catalog_changes(
        7, day + dt.timedelta(days=1), 500
    )
    assert all(sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(data.gtin(n))) % 10 == 0 for n in range(50))


# ------------------------------------------------------------ stock, availability, prices, quotes, orders


def test_stock_level_with_slash_reference(emu: EmulatorClient, token: str) -> None:
    body = get(emu, f"{STOCK}/LC1D09%2FBD", token, shipTo="0001234567").json()
    assert body["productReference"] == "LC1D09/BD" and body["shipTo"] == "0001234567"
    assert body["stockLevels"] == data.stock_levels(42, 1, TODAY)
    backslash = data.product_reference(7)
    assert get(emu, f"{STOCK}/{backslash.replace(chr(92), '%5C')}", token).json()["productReference"] == backslash
    assert_error(get(emu, f"{STOCK}/LC1D09~2FBD", token), 404, "PRODUCT_NOT_FOUND")
    emu.configure(path_substitutions={"~2F": "/", "~5C": "\\"})
    assert get(emu, f"{STOCK}/LC1D09~2FBD", token).json()["productReference"] == "LC1D09/BD"
    assert get(emu, f"{STOCK}/{backslash.replace(chr(92), '~5C')}", token).status == 200
    assert_error(get(emu, f"{STOCK}/NOPE", token), 404, "PRODUCT_NOT_FOUND")


def test_stock_levels_bulk(emu: EmulatorClient, token: str) -> None:
    items = [
        {"productReference": "LC1D09/BD", "referenceType": "4"},
        {"productReference": "NOPE", "referenceType": "4"},
    ]
    reply = emu.request("POST", f"{STOCK}/stock-levels", json_body={"products": items}, token=token)
    found, missing = reply.json()
    assert found["stockLevels"] == data.stock_levels(42, 1, TODAY)
    assert missing["stockLevels"] == [] and missing["error"]["code"] == "PRODUCT_NOT_FOUND"
    bad = emu.request("POST", f"{STOCK}/stock-levels", json_body={}, token=token)
    assert_error(bad, 400, "MISSING_FIELD")


def test_availability(emu: EmulatorClient, token: str) -> None:
    body = get(emu, f"{AVAILABILITY}/LC1D09%2FBD", token, quantity=5, shipTo="0001234567").json()
    assert set(body) == {"productReference", "quantity", "shipTo", "deliveryDate", "shortage", "currLeadTime"}
    assert isinstance(body["shortage"], bool) and body["deliveryDate"] > TODAY.isoformat()
    assert_error(get(emu, f"{AVAILABILITY}/LC1D09%2FBD", token), 400, "MISSING_FIELD")
    assert_error(get(emu, f"{AVAILABILITY}/LC1D09%2FBD", token, quantity=0), 400, "INVALID_FIELD")


def test_net_price_business_errors(emu: EmulatorClient, token: str) -> None:
    erroring = next(i for i in range(500) if data.has_net_price_error(42, i))
    fine = next(i for i in range(500) if not data.has_net_price_error(42, i))
    bad = get(emu, NET_PRICE, token, **{"catalog-number": data.product_reference(erroring), "quantity": 2}).json()
    assert bad["errorMessages"] and bad["netPrice"] is None
    good = get(
        emu,
        NET_PRICE,
        token,
        **{"catalog-number": data.product_reference(fine), "quantity": 3, "currencyCode": "EUR"},
    ).json()
    assert good["errorMessages"] == [] and good["totalNetPrice"] == round(good["netPrice"] * 3, 2)
    unknown = get(emu, NET_PRICE, token, **{"catalog-number": "NOPE"})
    assert unknown.status == 200 and unknown.json()["errorMessages"][0]["code"] == "MATERIAL_NOT_FOUND"
    warned = [get(emu, NET_PRICE, token, **{"catalog-number": data.product_reference(i)}).json() for i in range(40)]
    assert any(w["warningMessages"] for w in warned)
    assert_error(get(emu, NET_PRICE, token), 400, "MISSING_FIELD")


def test_quote(emu: EmulatorClient, token: str) -> None:
    body = get(emu, f"{QUOTE}/12345678", token).json()
    assert body["quoteHeader"]["quoteNumber"] == "12345678" and body["quoteLines"]
    assert {"quoteLineId", "catalogNumber", "totalOrderQuantity", "itemDescription"} <= set(body["quoteLines"][0])
    assert_error(get(emu, f"{QUOTE}/ABC", token), 404, "QUOTE_NOT_FOUND")


def test_order_entry(emu: EmulatorClient, token: str) -> None:
    fine = next(i for i in range(500) if not data.has_net_price_error(42, i))
    lines = {"orderLines": [{"catalogNumber": data.product_reference(fine), "quantity": 10}]}
    checked = emu.request("POST", f"{ORDER_ENTRY}/validate", json_body=lines, token=token).json()
    assert checked["valid"] is True and emu.stats()["order_submissions"] == 0
    submitted = emu.request("POST", f"{ORDER_ENTRY}/submit", json_body=lines, token=token).json()
    status = get(emu, f"{ORDER_ENTRY}/{submitted['orderId']}/status", token).json()
    assert status == {"orderId": submitted["orderId"], "status": "RECEIVED"}
    refused = emu.request(
        "POST",
        f"{ORDER_ENTRY}/submit",
        json_body={"orderLines": [{"catalogNumber": "NOPE", "quantity": 1}]},
        token=token,
    )
    assert refused.status == 200 and refused.json()["orderId"] is None and refused.json()["errorMessages"]
    assert emu.stats()["order_submissions"] == 1
    assert_error(emu.request("POST", f"{ORDER_ENTRY}/submit", json_body={}, token=token), 400, "MISSING_FIELD")
    assert_error(get(emu, f"{ORDER_ENTRY}/SE999/status", token), 404, "ORDER_NOT_FOUND")


# ------------------------------------------------------------------ faults


def test_fault_status_with_retry_after_times_and_skip(emu: EmulatorClient, token: str) -> None:
    rule = emu.add_fault(target="api", kind="status", status=429, retry_after="2", times=2, skip=1)
    replies = [orders(emu, token) for _ in range(4)]
    assert [r.status for r in replies] == [200, 429, 429, 200]
    assert replies[1].headers["Retry-After"] == "2"
    assert_error(replies[1], 429, "TOO_MANY_REQUESTS")
    when = email.utils.format_datetime(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=5), usegmt=True)
    emu.add_fault(target="/v1/supply-chain", kind="status", status=503, retry_after=when)
    assert orders(emu, token).headers["Retry-After"] == when
    stats = emu.stats()
    assert stats["faults_applied"] == {rule["id"]: 2, emu.faults()[1]["id"]: 1}
    assert stats["api_calls_by_status"] == {"200": 2, "429": 2, "503": 1}


def test_fault_targets_and_match_query(emu: EmulatorClient, token: str) -> None:
    emu.add_fault(target="/v2/reference-data", kind="status", status=500, times=-1)
    assert orders(emu, token).status == 200
    assert get(emu, CATALOG, token, **IDS).status == 500
    assert get(emu, CATALOG, token, **IDS).status == 500
    emu.clear_faults()
    assert get(emu, CATALOG, token, **IDS).status == 200
    emu.add_fault(target="api", kind="status", status=502, match_query={"page": "3"})
    assert orders(emu, token, page=2).status == 200
    assert orders(emu, token, page=3).status == 502
    emu.add_fault(target="token", kind="status", status=503)
    with pytest.raises(EmulatorError, match="503"):
        emu.get_token()
    assert emu.get_token()
    assert emu.stats()["token_requests_by_status"] == {"503": 1, "200": 2}


def test_fault_html_and_invalid_json(emu: EmulatorClient, token: str) -> None:
    emu.add_fault(target="api", kind="html", status=502)
    reply = orders(emu, token)
    assert reply.status == 502 and reply.headers["Content-Type"].startswith("text/html")
    assert reply.text.startswith("<!DOCTYPE html>")
    emu.add_fault(target="api", kind="invalid_json")
    reply = orders(emu, token)
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        reply.json()


def test_fault_truncate_and_reset(emu: EmulatorClient, server: EmulatorServer) -> None:
    emu.add_fault(target="api", kind="truncate")
    resp = raw_get(server, f"{ORDERS}/FR")
    assert resp.status == 200
    with pytest.raises(http.client.IncompleteRead):
        resp.read()
    emu.add_fault(target="api", kind="reset")
    with pytest.raises(ConnectionError):
        raw_get(server, f"{ORDERS}/FR").read()
    assert raw_get(server, f"{ORDERS}/FR").status == 200
    assert emu.stats()["api_calls_by_status"] == {"truncate": 1, "reset": 1, "200": 1}


def test_fault_delay(emu: EmulatorClient, server: EmulatorServer) -> None:
    emu.add_fault(target="api", kind="delay", delay_s=0.4, times=2)
    with pytest.raises(TimeoutError):
        raw_get(server, f"{ORDERS}/FR", timeout=0.15)
    start = time.perf_counter()
    assert raw_get(server, f"{ORDERS}/FR").status == 200
    assert time.perf_counter() - start >= 0.4


def test_fault_change_total_pages(emu: EmulatorClient, token: str) -> None:
    emu.add_fault(target=ORDERS, kind="change_total_pages", delta=2, match_query={"page": "2"})
    assert orders(emu, token, page=2).json()["pagination"]["totalNumberOfPages"] == 27
    assert orders(emu, token, page=2).json()["pagination"]["totalNumberOfPages"] == 25


def test_bad_fault_rule_is_rejected(emu: EmulatorClient) -> None:
    with pytest.raises(EmulatorError, match="kind"):
        emu.add_fault(target="api", kind="explode")
    with pytest.raises(EmulatorError, match="unknown knob"):
        emu.configure(colour="blue")


# ------------------------------------------------------------------ concurrency, stats, reset


def test_peak_concurrency_with_latency(emu: EmulatorClient, token: str) -> None:
    emu.configure(latency_ms=300)
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def call() -> None:
        barrier.wait()
        statuses.append(orders(emu, token).status)

    threads = [threading.Thread(target=call) for _ in range(8)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert time.perf_counter() - start < 1.5 and statuses == [200] * 8
    stats = emu.stats()
    assert stats["peak_concurrency"] == 8 and stats["in_flight"] == 0


def test_sixteen_clients_and_keep_alive(emu: EmulatorClient, server: EmulatorServer) -> None:
    emu.configure(latency_ms=50)
    results: list[bool] = []

    def session(calls: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        sockets = set()
        for _ in range(calls):
            conn.request("GET", f"{ORDERS}/FR?apikey=demo-api-key")
            resp = conn.getresponse()
            ok = resp.status == 200 and len(json.loads(resp.read())["orderList"]) == 10
            sockets.add(id(conn.sock))
            results.append(ok)
        conn.close()
        results.append(len(sockets) == 1)  # one keep-alive socket for all calls

    threads = [threading.Thread(target=session, args=(5 if i < 10 else 1,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 10 * 6 + 6 * 2 and all(results)
    assert emu.stats()["api_calls"] == 56


def test_stats_and_reset(emu: EmulatorClient, token: str) -> None:
    before = time.time()
    emu.configure(orders_per_country=30)
    orders(emu, token)
    get(emu, f"{ORDERS}/FR")
    emu.health()
    stats = emu.stats()
    assert stats["api_calls"] == 2 and stats["api_calls_by_status"] == {"200": 1, "401": 1}
    assert stats["api_calls_by_path"] == {f"{ORDERS}/FR": 2} and stats["unauthorized"] == 1
    assert stats["token_requests"] == 1 and before - 5 < stats["token_request_times"][0] <= time.time()
    emu.reset_counters()
    assert emu.stats()["api_calls"] == 0 and orders(emu, token).status == 200  # tokens survive
    assert emu.stats()["peak_concurrency"] == 1
    emu.reset()
    assert emu.config()["orders_per_country"] == 250
    assert_error(orders(emu, token), 401, "INVALID_TOKEN")  # tokens do not survive a reset
    assert emu.stats()["token_requests"] == 0


def test_a_straggler_from_before_a_reset_never_reaches_the_next_tests_numbers(
    emu: EmulatorClient, server: EmulatorServer, token: str
) -> None:
    """A pull cancelled at the end of one test can still have a request on the wire when the next test
    resets the emulator: it must neither count nor take a fault meant for the next test."""
    emu.configure(latency_ms=300)
    in_flight = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    in_flight.request("GET", f"{ORDERS}/FR", headers={"Authorization": f"Bearer {token}"})
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    idle.connect()
    time.sleep(0.1)  # the first request is inside the emulator's latency now
    emu.reset()
    emu.add_fault(target="api", kind="status", status=500, times=1)
    late = in_flight.getresponse()
    assert late.status == 503 and json.loads(late.read())["code"] == "STALE_CONNECTION"
    idle.request("GET", f"{ORDERS}/FR", headers={"Authorization": f"Bearer {token}"})
    stale = idle.getresponse()
    assert stale.status == 503 and json.loads(stale.read())["code"] == "STALE_CONNECTION"
    stats = emu.stats()
    assert stats["api_calls"] == 0 and stats["faults_applied"] == {}  # counted in neither test
    assert emu.request_log() == []
    assert orders(emu, emu.get_token()).status == 500  # the fault waited for this test's own request
    in_flight.close()
    idle.close()


# ------------------------------------------------------------------ real subprocess


def test_subprocess_emulator() -> None:
    with EmulatorProcess(token_lifetime=8, seed=7, orders_per_country=12) as proc:
        client = proc.client
        assert client.health() == {"ok": True}
        reply = client.request("POST", "/token", form=CREDENTIALS)
        assert reply.json()["expires_in"] == 8
        body = orders(client, reply.json()["access_token"], "ES", **{"page-size": 5}).json()
        assert body["orderList"] == [data.order(7, "ES", i) for i in range(5)]
        assert body["pagination"]["totalNumberOfPages"] == math.ceil(12 / 5)
    assert proc.returncode == 0
    other = EmulatorProcess("--client-id", "me").start()
    assert other.client.get_token("me", "demo-secret")
    assert other.process is not None
    other.process.send_signal(signal.SIGINT)
    assert other.process.wait(10) == 0
    other.stop()


def test_import_is_light() -> None:
    code = (
        "import sys, airflow_provider_schneider.emulator, airflow_provider_schneider.emulator.client;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'airflow', 'requests'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
