"""Answers of the ``apigee`` profile: what an Apigee-style gateway in front of the APIs sends.

Token endpoint: every success value is a string (plus many extra fields), errors are
``{"ErrorCode", "Error"}``. API calls: gateway-level errors (authentication, throttling, upstream
trouble) are ``{"fault": {"faultstring", "detail": {"errorcode"}}}``; business errors still come from the
backend in Schneider's ``code``/``userMessage`` shape.
"""

from __future__ import annotations

import math
import time
import uuid

from .errors import ApiError

PROFILE = "apigee"

INVALID_ACCESS_TOKEN = "oauth.v2.InvalidAccessToken"
ACCESS_TOKEN_EXPIRED = "keymanagement.service.access_token_expired"
INVALID_API_KEY = "oauth.v2.InvalidApiKey"
SPIKE_ARREST = "policies.ratelimit.SpikeArrestViolation"
QUOTA_VIOLATION = "policies.ratelimit.QuotaViolation"
#: For statuses without an entry in :data:`STATUS_ERRORCODES`.
FALLBACK_ERRORCODE = "messaging.adaptors.http.flow.ErrorResponseCode"

#: faultstring the gateway sends with each errorcode.
FAULTSTRINGS = {
    INVALID_ACCESS_TOKEN: "Invalid access token",
    ACCESS_TOKEN_EXPIRED: "Access Token expired",
    INVALID_API_KEY: "Invalid ApiKey",
    "oauth.v2.ApiKeyNotApproved": "API key not approved",
    "accesscontrol.IPDeniedAccess": "Access Denied for client ip : 127.0.0.1",
    SPIKE_ARREST: (
        "Spike arrest violation. Allowed rate : MessageRate{messagesPerPeriod=10, periodInMicroseconds=1000000}"
    ),
    QUOTA_VIOLATION: "Rate limit quota violation. Quota limit  exceeded. Identifier : _default",
    "messaging.runtime.InternalServerError": "Internal Server Error",
    "messaging.adaptors.http.flow.BadGateway": "Bad Gateway",
    "messaging.adaptors.http.flow.ServiceUnavailable": "The Service is temporarily unavailable",
    "messaging.adaptors.http.flow.GatewayTimeout": "Gateway Timeout",
}

#: errorcode of a ``status`` fault rule without its own ``code``.
STATUS_ERRORCODES = {
    401: INVALID_ACCESS_TOKEN,
    403: "accesscontrol.IPDeniedAccess",
    429: SPIKE_ARREST,
    500: "messaging.runtime.InternalServerError",
    502: "messaging.adaptors.http.flow.BadGateway",
    503: "messaging.adaptors.http.flow.ServiceUnavailable",
    504: "messaging.adaptors.http.flow.GatewayTimeout",
}

#: The emulator's own API-call auth problems (see ``TokenStore.problem``) as gateway errorcodes.
AUTH_ERRORCODES = {
    "INVALID_TOKEN": INVALID_ACCESS_TOKEN,
    "EXPIRED_TOKEN": ACCESS_TOKEN_EXPIRED,
    "INVALID_API_KEY": INVALID_API_KEY,
}

_APP_NAMESPACE = uuid.UUID("6f1c2a52-9d0e-4b8e-a1c3-5e4d3c2b1a00")


def fault_body(errorcode: str, faultstring: str | None = None) -> dict[str, object]:
    """``{"fault": {"faultstring", "detail": {"errorcode"}}}``; the faultstring follows the code if known."""
    text = faultstring or FAULTSTRINGS.get(errorcode) or "Gateway error"
    return {"fault": {"faultstring": text, "detail": {"errorcode": errorcode}}}


def token_error_body(code: str, message: str) -> dict[str, object]:
    """Token endpoint error: ``{"ErrorCode": ..., "Error": ...}``."""
    return {"ErrorCode": code, "Error": message}


def token_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> ApiError:
    return ApiError(status, code, message, headers=headers, body=token_error_body(code, message))


def auth_error(problem: str) -> ApiError:
    """401 for an API call whose bearer token or api key the gateway refuses (``problem`` as in TokenStore)."""
    errorcode = AUTH_ERRORCODES[problem]
    faultstring = FAULTSTRINGS[errorcode]
    headers = {}
    if errorcode != INVALID_API_KEY:
        headers["WWW-Authenticate"] = (
            f'Bearer realm="null",error="invalid_token",error_description="{errorcode}: {faultstring}"'
        )
    return ApiError(401, errorcode, faultstring, headers=headers, body=fault_body(errorcode))


def status_fault_body(status: int, channel: str, code: str | None, message: str | None) -> dict[str, object]:
    """Body of an injected ``status`` fault: ``fault`` object on API calls, ``ErrorCode``/``Error`` on /token."""
    if channel == "token":
        errorcode = code or ("invalid_client" if status == 401 else STATUS_ERRORCODES.get(status, FALLBACK_ERRORCODE))
        return token_error_body(errorcode, message or FAULTSTRINGS.get(errorcode) or f"HTTP {status}")
    errorcode = code or STATUS_ERRORCODES.get(status, FALLBACK_ERRORCODE)
    return fault_body(errorcode, message or FAULTSTRINGS.get(errorcode) or f"Received {status} Response")


def application_name(client_id: str) -> str:
    """A uuid-like app name, stable per client id (Apigee names the developer app this way)."""
    return str(uuid.uuid5(_APP_NAMESPACE, client_id))


def token_body(token: str, client_id: str, scope: str | None, lifetime: float) -> dict[str, object]:
    """Success answer of the token endpoint; ``expires_in`` is one second less than the real lifetime."""
    return {
        "refresh_token_expires_in": "0",
        "api_product_list": "[Partner-Orders]",
        "api_product_list_json": ["Partner-Orders"],
        "organization_name": "se",
        "developer.email": "team@distributor.example",
        "token_type": "BearerToken",
        "issued_at": str(int(time.time() * 1000)),
        "client_id": client_id,
        "access_token": token,
        "application_name": application_name(client_id),
        "scope": scope or "",
        "expires_in": str(max(1, math.ceil(lifetime) - 1)),
        "refresh_count": "0",
        "status": "approved",
    }
