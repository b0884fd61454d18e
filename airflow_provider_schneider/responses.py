"""Reading what a gateway answered, liberally: Schneider's error shape, OAuth errors, proxy HTML pages.

Shared by the token endpoint and API calls, so both describe a failure the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import requests

from airflow_provider_schneider.redaction import redact

HTML_ERROR = "the gateway returned an HTML error page"


def is_html(response: requests.Response) -> bool:
    """An HTML page (a proxy's or gateway's error page) where JSON was expected."""
    content_type = response.headers.get("Content-Type", "").lower()
    return "html" in content_type or response.content.lstrip()[:1] == b"<"


@dataclass(frozen=True)
class ErrorFields:
    """Schneider's ``code``/``userMessage``/``developerMessage``, from whichever shape the body had."""

    code: str | None = None
    user_message: str | None = None
    developer_message: str | None = None

    def summary(self) -> str:
        """One line for an error message: ``code: message``, or ``empty body``."""
        return ": ".join(part for part in (self.code, self.user_message) if part) or "empty body"


def _text(value: object, limit: int, secrets: Iterable[str]) -> str | None:
    return None if value is None else (redact(str(value)[:limit], secrets) or None)


def error_fields(response: requests.Response, secrets: Iterable[str] = ()) -> ErrorFields:
    """The error of ``response``: Schneider's shape, OAuth's ``error``/``error_description``, an API
    gateway ``fault``, plain text or an HTML page; redacted of ``secrets``."""
    secrets = tuple(secrets)
    if is_html(response):
        return ErrorFields(user_message=HTML_ERROR)
    try:
        body = response.json()
    except ValueError:
        return ErrorFields(user_message=_text((response.text or "").strip() or None, 200, secrets))
    if not isinstance(body, dict):
        return ErrorFields()
    fault = body.get("fault") if isinstance(body.get("fault"), dict) else {}
    return ErrorFields(
        code=_text(body.get("code", body.get("error", fault.get("faultstring"))), 200, secrets),
        user_message=_text(body.get("userMessage", body.get("error_description", body.get("message"))), 500, secrets),
        developer_message=_text(body.get("developerMessage"), 500, secrets),
    )
