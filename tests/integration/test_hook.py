"""SchneiderHook against the emulator (real HTTP over loopback) and against a capturing token endpoint."""

from __future__ import annotations

import base64
import logging
from urllib.parse import parse_qs

import pytest

from airflow_provider_schneider.exceptions import (
    SchneiderApiError,
    SchneiderAuthError,
    SchneiderPermissionError,
    SchneiderTokenEndpointError,
)
from airflow_provider_schneider.hooks.schneider import SchneiderHook
from tests.conftest import API_KEY, CLIENT_ID, CLIENT_SECRET, only_profile
from tests.support.endpoints import TokenEndpoint

pytestmark = pytest.mark.dialects  # a gateway's shapes can break what these test

ORDERS = "/v1/supply-chain/partner-order-status/orders/FR"


@pytest.fixture
def token_endpoint():
    endpoints: list[TokenEndpoint] = []

    def make(**kwargs) -> TokenEndpoint:
        endpoints.append(TokenEndpoint(**kwargs))
        return endpoints[-1]

    yield make
    for endpoint in endpoints:
        endpoint.close()


def test_basic_client_auth_request_is_exactly_per_spec(schneider_conn, token_endpoint):
    endpoint = token_endpoint()
    schneider_conn(token_url=f"{endpoint.url}/oauth/token", token_cache="none")
    token = SchneiderHook().get_token()
    assert token == "tok-" + "x" * 30
    (sent,) = endpoint.requests
    assert sent["path"] == "/oauth/token"
    assert sent["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert sent["headers"]["Authorization"] == "Basic " + base64.b64encode(b"demo-client:demo-secret").decode()
    assert parse_qs(sent["body"].decode()) == {"grant_type": ["client_credentials"]}


def test_body_client_auth_with_scope(schneider_conn, token_endpoint):
    endpoint = token_endpoint()
    schneider_conn(token_url=endpoint.url + "/token", client_auth="body", scope="all", token_cache="none")
    SchneiderHook().get_token()
    (sent,) = endpoint.requests
    assert "Authorization" not in sent["headers"]
    assert parse_qs(sent["body"].decode()) == {
        "grant_type": ["client_credentials"],
        "scope": ["all"],
        "client_id": [CLIENT_ID],
        "client_secret": [CLIENT_SECRET],
    }


@pytest.mark.parametrize("client_auth", ["basic", "body"])
def test_both_client_auth_styles_work_against_the_gateway(schneider_conn, emulator, client_auth):
    schneider_conn(client_auth=client_auth)
    records = list(SchneiderHook().iter_records(ORDERS, records_field="orderList"))
    assert len(records) == 250
    assert emulator.stats()["token_requests_by_status"] == {"200": 1}


@only_profile("default")  # these knobs shape the textbook dialect; the apigee one has its own test
@pytest.mark.parametrize(
    ("knobs", "lifetime"),
    [
        ({"expires_in_style": "string"}, 3600),
        ({"expires_in_style": "missing", "token_lifetime": 120}, 3600),  # missing -> documented 1 hour
        ({"token_type_style": "bearer"}, 3600),
        ({"token_type_style": "BEARER", "token_lifetime": 900}, 900),
    ],
)
def test_token_response_parsed_liberally(schneider_conn, emulator, knobs, lifetime):
    emulator.configure(**knobs)
    hook = SchneiderHook()
    token = hook.token_manager.get_token()
    assert token.lifetime == lifetime
    assert hook.request("GET", ORDERS, params={"page-size": 1})["pagination"]["totalNumberOfRecords"] == 250


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b"<html><body>Gateway says hi</body></html>", "text/html", "an HTML page"),
        (b'{"token_type": "Bearer", "expires_in": 3600}', "application/json", "no 'access_token'"),
        (b'{"access_token": "abc", "expi', "application/json", "invalid JSON"),
        (b'["not", "an", "object"]', "application/json", "not an object"),
    ],
)
def test_malformed_token_response_is_a_clear_error(schneider_conn, token_endpoint, body, content_type, expected):
    endpoint = token_endpoint(body=body, content_type=content_type)
    schneider_conn("bad_tokens", token_url=endpoint.url + "/token", token_cache="none")
    with pytest.raises(SchneiderTokenEndpointError) as info:
        SchneiderHook("bad_tokens").get_token()
    text = str(info.value)
    assert expected in text and "'bad_tokens'" in text and endpoint.url + "/token" in text
    assert len(endpoint.requests) == 1  # a garbage 200 is not retried


def test_wrong_credentials_fail_at_once_without_retry(schneider_conn, emulator):
    schneider_conn(password="wrong-secret-value")
    with pytest.raises(SchneiderAuthError) as info:
        SchneiderHook().get_token()
    text = str(info.value)
    assert "invalid_client" in text
    assert "'schneider_default'" in text and f"{emulator.url}/token" in text
    assert "wrong-secret-value" not in text
    assert emulator.stats()["token_requests"] == 1


def test_api_key_mode_requests_no_token(schneider_conn, emulator):
    schneider_conn(login="", password="", api_key=API_KEY)
    hook = SchneiderHook()
    records = list(hook.iter_records(ORDERS, records_field="orderList"))
    assert len({r["orderNumber"] for r in records}) == 250
    stats = emulator.stats()
    assert stats["token_requests"] == 0
    assert stats["api_calls_by_status"] == {"200": 3}
    with pytest.raises(Exception, match="API key"):
        hook.get_token()


def test_wrong_api_key_is_a_permission_error_without_the_key(schneider_conn, emulator):
    schneider_conn(login="", password="", api_key="not-the-right-key-123")
    with pytest.raises(SchneiderPermissionError) as info:
        SchneiderHook().request("GET", ORDERS)
    assert info.value.status == 401
    assert "not-the-right-key-123" not in str(info.value)


@pytest.mark.parametrize(("orders", "page_size", "calls"), [(250, 100, 3), (200, 100, 2), (0, 100, 1), (7, 10, 1)])
def test_pagination_stops_on_total_pages(schneider_conn, emulator, orders, page_size, calls):
    """The API answers a page past the end with the last page again: we must stop on the counter."""
    emulator.configure(orders_per_country=orders)
    records = list(SchneiderHook().iter_records(ORDERS, records_field="orderList", page_size=page_size))
    numbers = [r["orderNumber"] for r in records]
    assert len(numbers) == len(set(numbers)) == orders
    assert numbers == sorted(numbers)  # stable order
    assert emulator.stats()["api_calls"] == calls


def test_last_page_trap_is_real_on_the_gateway(schneider_conn, emulator):
    """Guard the premise of the test above: page 99 of 3 returns page 3's records again."""
    hook = SchneiderHook()
    last = hook.request("GET", ORDERS, params={"page": 3, "page-size": 100})
    beyond = hook.request("GET", ORDERS, params={"page": 99, "page-size": 100})
    assert beyond["orderList"] == last["orderList"] and beyond["orderList"]


def test_api_error_carries_status_code_message_and_where(schneider_conn, emulator):
    with pytest.raises(SchneiderApiError) as info:
        SchneiderHook().request("GET", "/v1/supply-chain/partner-order-status/orders/FRANCE")
    err = info.value
    assert err.status == 400 and err.code == "INVALID_FIELD" and err.user_message
    assert err.method == "GET" and err.path.endswith("/orders/FRANCE") and err.conn_id == "schneider_default"
    assert "HTTP 400" in str(err) and "schneider_default" in str(err)


def test_test_connection_reports_success_and_failure(schneider_conn, emulator):
    ok, message = SchneiderHook().test_connection()
    assert ok and "issued a token" in message
    schneider_conn("broken", password="nope-nope-nope")
    ok, message = SchneiderHook("broken").test_connection()
    assert not ok and "rejected the client credentials" in message and "nope-nope-nope" not in message


def test_no_secret_in_debug_logs_or_errors(schneider_conn, emulator, caplog):
    """DEBUG logging of the hook, requests and urllib3 (which prints full URLs) never shows a secret."""
    caplog.set_level(logging.DEBUG)
    hook = SchneiderHook()
    list(hook.iter_records(ORDERS, records_field="orderList"))
    token = hook.get_token()
    schneider_conn("keyed", login="", password="", api_key=API_KEY)
    keyed = SchneiderHook("keyed")
    list(keyed.iter_records(ORDERS, records_field="orderList"))
    errors = []
    for failing in (lambda: keyed.request("GET", "/v1/unknown/path"), lambda: hook.request("GET", "/nope")):
        with pytest.raises(SchneiderApiError) as info:
            failing()
        errors.append(str(info.value) + repr(info.value))
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    text = caplog.text + "".join(errors) + repr(hook.settings) + repr(keyed.settings)
    assert "apikey=" in caplog.text  # urllib3 did log the URL: the value must be redacted
    for secret in (CLIENT_SECRET, token, API_KEY, basic):
        assert secret not in text


def test_test_connection_with_test_path_makes_one_token_request(schneider_conn, emulator):
    schneider_conn(test_path="/v1/supply-chain/partner-order-status/orders/FR?page-size=1")
    ok, message = SchneiderHook().test_connection()
    assert ok and "succeeded" in message, message
    stats = emulator.stats()
    assert (stats["token_requests"], stats["api_calls"]) == (1, 1)
