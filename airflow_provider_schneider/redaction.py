"""Keep secrets out of text: query-string api keys, Authorization headers and known secret values.

Airflow's secrets masker covers task logs once a value is registered; this module also covers text that
leaves through other paths (exception messages, urllib3's DEBUG request lines, plain Python logging).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any

REDACTED = "***"
_QUERY_SECRET = re.compile(r"(?i)((?:api[_-]?key|access_token|client_secret)=)[^&\s'\"#]+")
_AUTH_HEADER = re.compile(
    r"(?i)((?:authorization|proxy-authorization)['\"]?\s*[:=]\s*['\"]?)(?:basic|bearer)\s+[^\s'\",}]+"
)

_known_secrets: set[str] = set()


def register_secret(*values: str | None) -> None:
    """Remember values to scrub from any text this module redacts (and tell Airflow's masker)."""
    for value in values:
        if value and len(value) >= 4:
            _known_secrets.add(value)
            _mask_in_airflow(value)


def _mask_in_airflow(value: str) -> None:
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - Airflow 3.0 layout
        try:
            from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef]
        except ImportError:
            return
    try:
        mask_secret(value)
    except Exception:  # noqa: BLE001 - masking must never break a call; our own redaction still applies
        pass


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with api keys in URLs, auth headers and known secret values replaced by ``***``."""
    text = _QUERY_SECRET.sub(rf"\1{REDACTED}", text)
    text = _AUTH_HEADER.sub(rf"\1{REDACTED}", text)
    for secret in sorted({*_known_secrets, *(s for s in secrets if s)}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Logging filter that redacts the rendered message (urllib3 logs full URLs at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is not ours to fix
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


_FILTERED_LOGGERS = ("urllib3.connectionpool", "urllib3.util.retry", "requests")
_installed = False


def install_log_filters() -> None:
    """Attach :class:`RedactingFilter` once to the loggers that print request URLs."""
    global _installed
    if _installed:
        return
    for name in _FILTERED_LOGGERS:
        logging.getLogger(name).addFilter(RedactingFilter())
    _installed = True


def safe_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Params fit for a log line or an XCom (api keys and tokens removed)."""
    return {k: (REDACTED if _QUERY_SECRET.match(f"{k}=x") else v) for k, v in (params or {}).items()}
