"""Reading what a gateway answered, liberally: Schneider's error shape, OAuth errors in RFC 6749 and Apigee
spelling, gateway ``fault`` objects, proxy HTML pages, plain text.

Shared by the token endpoint and API calls, so both describe a failure the same way.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflow_provider_schneider.redaction import redact

HTML_ERROR = "the gateway returned an HTML error page"
#: Gateway error codes that mean "slow down", whatever the HTTP status they came with (some gateway
#: versions send a spike-arrest violation as a 500).
_THROTTLE_MARKERS = ("spikearrestviolation", "quotaviolation", "ratelimit", "rate_limit", "too_many_requests")
#: Gateway codes for a bearer token the gateway no longer accepts: worth one refresh and replay.
TOKEN_REJECTED_CODES = frozenset(
    {"oauth.v2.invalidaccesstoken", "keymanagement.service.access_token_expired", "invalid_token", "expired_token"}
)


def is_html(content_type: str, body: bytes) -> bool:
    """An HTML page (a proxy's or gateway's error page) where JSON was expected."""
    return "html" in content_type.lower() or body.lstrip()[:1] == b"<"


def parse_json(body: bytes) -> Any:
    """``json.loads`` that turns absurd nesting into a ``ValueError`` instead of a ``RecursionError``."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deeply to parse") from None


@dataclass(frozen=True)
class ErrorFields:
    """Schneider's ``code``/``userMessage``/``developerMessage``, from whichever shape the body had."""

    code: str | None = None
    user_message: str | None = None
    developer_message: str | None = None

    def summary(self) -> str:
        """One line for an error message: ``code: message``, or ``empty body``."""
        return ": ".join(part for part in (self.code, self.user_message) if part) or "empty body"

    @property
    def throttled(self) -> bool:
        """The gateway said "rate limit" (spike arrest, quota), whatever the HTTP status."""
        code = (self.code or "").lower()
        return any(marker in code for marker in _THROTTLE_MARKERS)

    @property
    def token_rejected(self) -> bool:
        return (self.code or "").lower() in TOKEN_REJECTED_CODES

    @property
    def api_key_rejected(self) -> bool:
        return "invalidapikey" in (self.code or "").lower()


def _text(value: object, limit: int, secrets: Iterable[str]) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return redact(str(value)[:limit], secrets) or None


def _first(body: dict[str, Any], *names: str) -> Any:
    for name in names:
        if body.get(name) not in (None, ""):
            return body[name]
    return None


def error_fields(content_type: str, body: bytes, secrets: Iterable[str] = ()) -> ErrorFields:
    """The error in ``body``: Schneider's shape, OAuth's ``error``/``error_description`` (or Apigee's
    ``ErrorCode``/``Error``), a gateway ``fault``, plain text or an HTML page; redacted of ``secrets``."""
    secrets = tuple(secrets)
    if is_html(content_type, body):
        return ErrorFields(user_message=HTML_ERROR)
    try:
        data = parse_json(body)
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return ErrorFields(user_message=_text(text or None, 200, secrets))
    if not isinstance(data, dict):
        return ErrorFields()
    fault: dict[str, Any] = data["fault"] if isinstance(data.get("fault"), dict) else {}
    detail: dict[str, Any] = fault["detail"] if isinstance(fault.get("detail"), dict) else {}
    code = _first(data, "code", "error", "ErrorCode", "errorCode") or detail.get("errorcode")
    message = _first(data, "userMessage", "error_description", "Error", "message") or fault.get("faultstring")
    if isinstance(data.get("error"), dict):  # {"error": {"code": ..., "message": ...}}
        inner = data["error"]
        code, message = _first(inner, "code", "status") or code, _first(inner, "message") or message
    return ErrorFields(
        code=_text(code, 200, secrets),
        user_message=_text(message, 500, secrets),
        developer_message=_text(data.get("developerMessage"), 500, secrets),
    )
