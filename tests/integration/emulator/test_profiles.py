"""The emulator's gateway profiles: ``default`` (textbook OAuth + Schneider errors) and ``apigee``."""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

import pytest

from airflow_provider_schneider.emulator import EmulatorConfig, EmulatorServer
from airflow_provider_schneider.emulator.__main__ import config_from_args, parse_args
from airflow_provider_schneider.emulator.client import (
    EmulatorClient,
    EmulatorError,
    EmulatorProcess,
    Reply,
    _option_args,
)

#: The emulator alone, no Airflow involved: the lowest-version run skips it.
pytestmark = pytest.mark.latest_only

ORDERS = "/v1/supply-chain/partner-order-status/orders/FR"
CATALOG = "/v2/reference-data/product/product-catalog/products"
CREDENTIALS = {"grant_type": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret"}
SPIKE = "Spike arrest violation. Allowed rate : MessageRate{messagesPerPeriod=10, periodInMicroseconds=1000000}"
APIGEE_TOKEN_KEYS = [
    "refresh_token_expires_in",
    "api_product_list",
    "api_product_list_json",
    "organization_name",
    "developer.email",
    "token_type",
    "issued_at",
    "client_id",
    "access_token",
    "application_name",
    "scope",
    "expires_in",
    "refresh_count",
    "status",
]


@pytest.fixture
def apigee(emu: EmulatorClient) -> EmulatorClient:
    emu.configure(profile="apigee")
    return emu


def token_reply(emu: EmulatorClient, **form: str) -> Reply:
    return emu.request("POST", "/token", form={**CREDENTIALS, **form})


def fault(faultstring: str, errorcode: str) -> dict[str, Any]:
    return {"fault": {"faultstring": faultstring, "detail": {"errorcode": errorcode}}}


# ------------------------------------------------------------------ token endpoint


def test_apigee_token_shape(apigee: EmulatorClient) -> None:
    before = time.time() * 1000
    reply = token_reply(apigee)
    assert reply.status == 200 and reply.headers["Cache-Control"] == "no-store"
    body = reply.json()
    assert list(body) == APIGEE_TOKEN_KEYS
    assert {k: v for k, v in body.items() if k not in ("issued_at", "access_token", "application_name")} == {
        "refresh_token_expires_in": "0",
        "api_product_list": "[Partner-Orders]",
        "api_product_list_json": ["Partner-Orders"],
        "organization_name": "se",
        "developer.email": "team@distributor.example",
        "token_type": "BearerToken",
        "client_id": "demo-client",
        "scope": "",
        "expires_in": "3599",
        "refresh_count": "0",
        "status": "approved",
    }
    assert before - 1000 <= int(body["issued_at"]) <= time.time() * 1000 + 1000
    assert str(uuid.UUID(body["application_name"])) == body["application_name"]
    assert apigee.request("GET", ORDERS, token=body["access_token"]).status == 200
    assert token_reply(apigee, scope="all").json()["scope"] == "all"


def test_apigee_token_ignores_default_styles_and_never_says_zero(apigee: EmulatorClient) -> None:
    apigee.configure(token_type_style="bearer", expires_in_style="int", token_lifetime=0.5)
    body = token_reply(apigee).json()
    assert body["token_type"] == "BearerToken" and body["expires_in"] == "1"
    basic = base64.b64encode(b"demo-client:demo-secret").decode()
    apigee.configure(token_lifetime=8)
    by_basic = apigee.request(
        "POST", "/token", form={"grant_type": "client_credentials"}, headers={"Authorization": f"Basic {basic}"}
    )
    assert by_basic.json()["expires_in"] == "7"


@pytest.mark.parametrize(
    ("form", "status", "body"),
    [
        ({"client_secret": "nope"}, 401, {"ErrorCode": "invalid_client", "Error": "ClientId is Invalid"}),
        ({"client_id": "someone"}, 401, {"ErrorCode": "invalid_client", "Error": "ClientId is Invalid"}),
        (
            {"grant_type": "password"},
            400,
            {"ErrorCode": "invalid_request", "Error": "Unsupported grant type : password"},
        ),
        ({"grant_type": ""}, 400, {"ErrorCode": "invalid_request", "Error": "Required param : grant_type"}),
    ],
)
def test_apigee_token_errors(apigee: EmulatorClient, form: dict[str, str], status: int, body: dict[str, str]) -> None:
    reply = token_reply(apigee, **form)
    assert (reply.status, reply.json()) == (status, body)
    assert apigee.stats()["token_requests_by_status"] == {str(status): 1}


@pytest.mark.parametrize(
    ("profile", "keys"), [("default", {"error", "error_description"}), ("apigee", {"ErrorCode", "Error"})]
)
def test_required_scope(emu: EmulatorClient, profile: str, keys: set[str]) -> None:
    emu.configure(profile=profile, required_scope="all")
    for form in ({}, {"scope": "read"}, {"scope": "all read"}):
        reply = token_reply(emu, **form)
        assert reply.status == 400 and set(reply.json()) == keys, form
        assert "invalid_scope" in reply.json().values()
    granted = token_reply(emu, scope="all")
    assert granted.status == 200 and granted.json()["scope"] == "all"
    assert emu.stats()["token_requests_by_status"] == {"400": 3, "200": 1}


def test_default_profile_is_unchanged(emu: EmulatorClient) -> None:
    assert emu.config()["profile"] == "default" and emu.config()["required_scope"] is None
    body = token_reply(emu).json()
    assert set(body) == {"access_token", "token_type", "expires_in"} and body["expires_in"] == 3600
    wrong = token_reply(emu, client_secret="nope")
    assert wrong.json() == {"error": "invalid_client", "error_description": "Client authentication failed"}
    assert emu.request("GET", ORDERS).json()["code"] == "INVALID_TOKEN"


# ------------------------------------------------------------------ API-call auth and faults


def test_apigee_auth_faults(apigee: EmulatorClient) -> None:
    invalid = fault("Invalid access token", "oauth.v2.InvalidAccessToken")
    missing = apigee.request("GET", ORDERS)
    assert (missing.status, missing.json()) == (401, invalid)
    assert "oauth.v2.InvalidAccessToken" in missing.headers["WWW-Authenticate"]
    assert apigee.request("GET", ORDERS, token="x" * 48).json() == invalid
    token = apigee.get_token()
    apigee.revoke_tokens(token)
    assert apigee.request("GET", ORDERS, token=token).json() == invalid
    bad_key = apigee.request("GET", ORDERS, params={"apikey": "wrong"})
    assert (bad_key.status, bad_key.json()) == (401, fault("Invalid ApiKey", "oauth.v2.InvalidApiKey"))
    assert apigee.stats()["unauthorized"] == 4


def test_apigee_expired_token(apigee: EmulatorClient) -> None:
    apigee.configure(token_lifetime=60)
    body = token_reply(apigee).json()
    assert body["expires_in"] == "59"  # one second less than the real lifetime, as Apigee says
    assert apigee.request("GET", ORDERS, token=body["access_token"]).status == 200
    apigee.advance_clock(61)
    expired = apigee.request("GET", ORDERS, token=body["access_token"])
    assert (expired.status, expired.json()) == (
        401,
        fault("Access Token expired", "keymanagement.service.access_token_expired"),
    )


def test_apigee_business_errors_keep_schneider_shape(apigee: EmulatorClient) -> None:
    token = apigee.get_token()
    missing = apigee.request("GET", CATALOG, token=token)
    assert missing.status == 400 and missing.json()["code"] == "MISSING_FIELD"
    assert apigee.request("GET", "/v9/nothing", token=token).json()["code"] == "NOT_FOUND"


def test_apigee_spike_arrest_sent_as_500(apigee: EmulatorClient) -> None:
    apigee.add_fault(
        target="api", kind="status", status=500, code="policies.ratelimit.SpikeArrestViolation", retry_after="1"
    )
    reply = apigee.request("GET", ORDERS, params={"apikey": "demo-api-key"})
    assert (reply.status, reply.json()) == (500, fault(SPIKE, "policies.ratelimit.SpikeArrestViolation"))
    assert reply.headers["Retry-After"] == "1"


@pytest.mark.parametrize(
    ("status", "faultstring", "errorcode"),
    [
        (429, SPIKE, "policies.ratelimit.SpikeArrestViolation"),
        (500, "Internal Server Error", "messaging.runtime.InternalServerError"),
        (502, "Bad Gateway", "messaging.adaptors.http.flow.BadGateway"),
        (503, "The Service is temporarily unavailable", "messaging.adaptors.http.flow.ServiceUnavailable"),
        (504, "Gateway Timeout", "messaging.adaptors.http.flow.GatewayTimeout"),
        (401, "Invalid access token", "oauth.v2.InvalidAccessToken"),
        (403, "Access Denied for client ip : 127.0.0.1", "accesscontrol.IPDeniedAccess"),
        (418, "Received 418 Response", "messaging.adaptors.http.flow.ErrorResponseCode"),
    ],
)
def test_apigee_status_fault_defaults(apigee: EmulatorClient, status: int, faultstring: str, errorcode: str) -> None:
    apigee.add_fault(target="api", kind="status", status=status)
    reply = apigee.request("GET", ORDERS, params={"apikey": "demo-api-key"})
    assert (reply.status, reply.json()) == (status, fault(faultstring, errorcode))


def test_apigee_status_fault_code_message_and_token_channel(apigee: EmulatorClient) -> None:
    apigee.add_fault(target="api", kind="status", status=429, code="policies.ratelimit.QuotaViolation")
    apigee.add_fault(target="api", kind="status", status=429, code="custom.Code", message="Slow down")
    quota = apigee.request("GET", ORDERS).json()
    assert quota["fault"]["detail"]["errorcode"] == "policies.ratelimit.QuotaViolation"
    assert quota["fault"]["faultstring"].startswith("Rate limit quota violation")
    assert apigee.request("GET", ORDERS).json() == fault("Slow down", "custom.Code")
    apigee.add_fault(target="token", kind="status", status=503)
    apigee.add_fault(target="token", kind="status", status=401)
    unavailable = token_reply(apigee)
    assert unavailable.status == 503
    assert unavailable.json() == {
        "ErrorCode": "messaging.adaptors.http.flow.ServiceUnavailable",
        "Error": "The Service is temporarily unavailable",
    }
    assert token_reply(apigee).json() == {"ErrorCode": "invalid_client", "Error": "HTTP 401"}


def test_default_profile_status_faults_unchanged(emu: EmulatorClient) -> None:
    emu.add_fault(target="api", kind="status", status=500, code="policies.ratelimit.SpikeArrestViolation")
    emu.add_fault(target="token", kind="status", status=503)
    body = emu.request("GET", ORDERS).json()
    assert body["code"] == "policies.ratelimit.SpikeArrestViolation" and set(body) >= {"userMessage", "moreInfo"}
    assert token_reply(emu).json() == {"error": "service_unavailable", "error_description": "Emulated fault: HTTP 503"}


# ------------------------------------------------------------------ configuration, reset, CLI


def test_profile_is_a_knob_and_reset_restores_it(emu: EmulatorClient) -> None:
    config = emu.configure(profile="apigee", required_scope="all")
    assert config["profile"] == "apigee" and config["required_scope"] == "all"
    with pytest.raises(EmulatorError, match="profile must be one of default, apigee"):
        emu.configure(profile="kong")
    with pytest.raises(EmulatorError, match="required_scope"):
        emu.configure(required_scope="")
    emu.reset()
    assert emu.config()["profile"] == "default" and emu.config()["required_scope"] is None
    assert token_reply(emu).json()["token_type"] == "Bearer"


def test_startup_profile_survives_reset() -> None:
    with pytest.raises(ValueError, match="profile"):
        EmulatorConfig(profile="Apigee")
    with EmulatorServer(profile="apigee", required_scope="all") as srv:
        client = srv.client
        client.configure(profile="default", required_scope=None)
        assert token_reply(client).json()["token_type"] == "Bearer"
        client.reset()
        assert token_reply(client, scope="all").json()["token_type"] == "BearerToken"
        assert token_reply(client).json() == {"ErrorCode": "invalid_scope", "Error": "Invalid scope : "}


def test_cli_flags() -> None:
    config = config_from_args(parse_args(["--profile", "apigee", "--required-scope", "all"]))
    assert (config.profile, config.required_scope) == ("apigee", "all")
    assert config_from_args(parse_args([])).profile == "default"
    with pytest.raises(SystemExit):
        parse_args(["--profile", "kong"])
    assert _option_args({"profile": "apigee", "required_scope": "all"}) == [
        "--profile",
        "apigee",
        "--required-scope",
        "all",
    ]


def test_subprocess_with_apigee_profile() -> None:
    with EmulatorProcess(profile="apigee") as proc:
        body = token_reply(proc.client).json()
        assert body["token_type"] == "BearerToken" and body["expires_in"] == "3599"
        assert proc.client.config()["profile"] == "apigee"
    assert proc.returncode == 0
