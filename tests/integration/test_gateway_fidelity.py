"""What gateways that are not our emulator answer (section 5 of the API facts), against real HTTP.

Token answers with any ``token_type`` spelling and string numbers, Apigee and RFC 6749 token errors, the
scope hint, gateway ``fault`` errors on API calls, a spike arrest sent as 500, and Unicode secrets in both
client-auth styles. Tests that use the ``emulator`` fixture run once per emulator profile.
"""

from __future__ import annotations

import base64
import json
import logging

import pytest

from airflow_provider_schneider import redaction
from airflow_provider_schneider.exceptions import SchneiderAuthError, SchneiderPermissionError
from airflow_provider_schneider.hooks.schneider import SchneiderHook
from airflow_provider_schneider.process import STATE
from tests.conftest import CLIENT_ID, only_profile
from tests.support.endpoints import APIGEE_TOKEN, TokenEndpoint
from tests.support.faults import FAST_RETRIES, ORDERS_PATH

#: Version-agnostic (the hook and its transport, or a fake store): the lowest-version run skips it.
pytestmark = [pytest.mark.latest_only, pytest.mark.dialects]  # a gateway's shapes can break what these test


@pytest.fixture
def scripted_token_endpoint():
    endpoints: list[TokenEndpoint] = []

    def make(body: dict | bytes, status: int = 200) -> TokenEndpoint:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        endpoints.append(TokenEndpoint(status=status, body=raw))
        return endpoints[-1]

    yield make
    for endpoint in endpoints:
        endpoint.close()


@only_profile("default")  # a scripted token endpoint: the emulator's dialect does not matter
@pytest.mark.parametrize(
    ("token_type", "warned"),
    [("BearerToken", False), ("bearer", False), ("Bearer", False), (None, False), ("mac", True), (42, True)],
)
def test_any_token_type_is_used_as_a_bearer_token(
    schneider_conn, scripted_token_endpoint, caplog, monkeypatch, token_type, warned
):
    monkeypatch.setattr(STATE, "said", set())
    body = {**APIGEE_TOKEN, "token_type": token_type}
    if token_type is None:
        del body["token_type"]
    endpoint = scripted_token_endpoint(body)
    schneider_conn("gw", token_url=endpoint.url + "/token", token_cache="none")
    with caplog.at_level(logging.WARNING, logger="airflow_provider_schneider.tokens.endpoint"):
        token = SchneiderHook("gw").token_manager.get_token()
        SchneiderHook("gw").token_manager.get_token()  # a second hook: the warning is said once per process
    assert token.access_token == APIGEE_TOKEN["access_token"]
    assert token.lifetime == 3599  # a numeric string
    warnings = [r for r in caplog.records if "token_type" in r.getMessage()]
    assert len(warnings) == (1 if warned else 0)


@only_profile("default")
def test_implausible_lifetime_is_capped(schneider_conn, scripted_token_endpoint, caplog):
    endpoint = scripted_token_endpoint({**APIGEE_TOKEN, "expires_in": "315360000"})  # ten years
    schneider_conn("gw", token_url=endpoint.url + "/token", token_cache="none", token_max_lifetime=7200)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_schneider.tokens.endpoint"):
        token = SchneiderHook("gw").token_manager.get_token()
    assert token.lifetime == 7200
    assert any("capping it to 7200s" in r.getMessage() for r in caplog.records)


def test_apigee_token_answer_works_end_to_end(schneider_conn, emulator):
    """The apigee profile's token (strings everywhere, 'BearerToken', issued_at) drives a full pull."""
    emulator.configure(profile="apigee")
    records = list(SchneiderHook().iter_records(ORDERS_PATH, records_field="orderList"))
    assert len(records) == 250
    assert emulator.stats()["token_requests_by_status"] == {"200": 1}


@pytest.mark.parametrize("scope", [None, "wrong"])
def test_scope_rejection_suggests_the_scope_field(schneider_conn, emulator, scope):
    emulator.configure(required_scope="all")
    schneider_conn(**({"scope": scope} if scope else {}))
    with pytest.raises(SchneiderAuthError) as info:
        SchneiderHook().get_token()
    text = str(info.value)
    assert "invalid_scope" in text and "'scope'" in text
    assert ("'all'" in text) if scope is None else ("'wrong'" in text)
    assert emulator.stats()["token_requests"] == 1  # fail fast: never retried


def test_scope_all_is_accepted(schneider_conn, emulator):
    emulator.configure(required_scope="all")
    schneider_conn(scope="all")
    assert SchneiderHook().get_token()


def test_invalid_client_shows_the_gateways_words_after_one_request(schneider_conn, emulator, emulator_profile):
    schneider_conn(password="not-the-secret")
    with pytest.raises(SchneiderAuthError) as info:
        SchneiderHook().get_token()
    text = str(info.value)
    assert "invalid_client" in text and "not-the-secret" not in text
    if emulator_profile == "apigee":
        assert "ClientId is Invalid" in text
    assert emulator.stats()["token_requests"] == 1


@pytest.mark.parametrize("code", ["oauth.v2.InvalidAccessToken", "keymanagement.service.access_token_expired"])
def test_rejected_token_fault_refreshes_once_and_replays(schneider_conn, emulator, code):
    schneider_conn(**FAST_RETRIES)
    hook = SchneiderHook()
    hook.get_token()
    emulator.add_fault(target="api", kind="status", status=401, code=code, times=1)
    body = hook.request("GET", ORDERS_PATH, params={"page-size": 1})
    assert body["pagination"]["totalNumberOfRecords"] == 250
    stats = emulator.stats()
    assert stats["token_requests"] == 2 and stats["api_calls_by_status"] == {"401": 1, "200": 1}


def test_gateway_asking_for_an_api_key_fails_clearly_without_replay(schneider_conn, emulator):
    schneider_conn(**FAST_RETRIES)
    emulator.add_fault(target="api", kind="status", status=401, code="oauth.v2.InvalidApiKey", times=1)
    with pytest.raises(SchneiderPermissionError) as info:
        SchneiderHook().request("GET", ORDERS_PATH)
    assert "api_key" in str(info.value) and "oauth.v2.InvalidApiKey" in str(info.value)
    assert emulator.stats()["api_calls"] == 1 and emulator.stats()["token_requests"] == 1


def test_wrong_api_key_fails_clearly(schneider_conn, emulator, emulator_profile):
    schneider_conn(login="", password="", api_key="not-the-key-1234")
    with pytest.raises(SchneiderPermissionError) as info:
        SchneiderHook().request("GET", ORDERS_PATH)
    text = str(info.value)
    assert "API key was rejected" in text and "not-the-key-1234" not in text
    if emulator_profile == "apigee":
        assert "oauth.v2.InvalidApiKey" in text
    assert emulator.stats()["api_calls"] == 1


@pytest.mark.parametrize("status", [500, 429])
def test_spike_arrest_is_a_throttle_whatever_the_status(schneider_conn, emulator, caplog, status):
    schneider_conn(**FAST_RETRIES)
    emulator.add_fault(
        target="api", kind="status", status=status, code="policies.ratelimit.SpikeArrestViolation", times=2
    )
    with caplog.at_level(logging.WARNING, logger="airflow_provider_schneider.client.http"):
        body = SchneiderHook().request("GET", ORDERS_PATH, params={"page-size": 1})
    assert body["pagination"]["totalNumberOfRecords"] == 250
    retries = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Retrying")]
    assert len(retries) == 2
    if status == 500:
        assert all("HTTP 500 throttle" in line for line in retries)


@only_profile("default")
@pytest.mark.parametrize("client_auth", ["basic", "body"])
@pytest.mark.parametrize("secret", ["secret€x", "sécret-ünïcode", "plain:colon%41+plus"])
def test_unicode_secrets_work_in_both_client_auth_styles(schneider_conn, emulator, client_auth, secret):
    emulator.configure(client_secret=secret)
    schneider_conn(password=secret, client_auth=client_auth)
    records = list(SchneiderHook().iter_records(ORDERS_PATH, records_field="orderList"))
    assert len(records) == 250
    if client_auth == "basic":  # the value the masker knows is exactly the one on the wire
        assert base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode() in redaction._known_secrets


@only_profile("default")
def test_host_without_scheme_against_a_loopback_server_suggests_http(schneider_conn, emulator, monkeypatch):
    """The host defaults to https; the emulator speaks http: the TLS error says what to write instead."""
    import json as _json

    host = emulator.url.removeprefix("http://")
    value = _json.dumps(
        {"conn_type": "schneider", "host": host, "login": CLIENT_ID, "password": "demo-secret",
         "extra": {"token_cache": "none", "retry_max_attempts": 1}}
    )  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_NOSCHEME", value)
    with pytest.raises(Exception) as info:
        SchneiderHook("noscheme").get_token()
    text = str(info.value)
    assert "TLS error" in text and "write http:// in the connection's host or set its schema to 'http'" in text
