"""Keep secrets out of text: query-string api keys, Authorization headers and known secret values.

Airflow's secrets masker covers task logs once a value is registered; this module also covers text that
leaves through other paths (exception messages, urllib3's DEBUG request lines, plain Python logging).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

REDACTED = "***"
_SECRET_NAMES = r"api[_-]?key|access[_-]?token|client[_-]?secret|token"
_QUERY_SECRET = re.compile(rf"(?i)(\b(?:{_SECRET_NAMES})(?:=|%3D))[^&\s'\"#]+")
_AUTH_HEADER = re.compile(
    r"(?i)((?:authorization|proxy-authorization)['\"]?\s*[:=]\s*['\"]?)(?:basic|bearer)\s+[^\s'\",}]+"
)
#: Names whose values are secrets when they appear as query/param keys (exact match, case-insensitive).
_SECRET_KEY = re.compile(rf"(?i)^(?:{_SECRET_NAMES}|password|secret)$")

_known_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(*values: str | None) -> None:
    """Remember values to scrub from any text this module redacts, and tell Airflow's masker (once each).

    Also installs the log filters, so urllib3/requests DEBUG lines are clean from the first request on.
    """
    install_log_filters()
    for value in values:
        if not value or len(value) < 4:
            continue
        with _lock:
            if value in _known_secrets:
                continue
            _known_secrets.add(value)
        _mask_in_airflow(value)


def _mask_in_airflow(value: str) -> None:
    try:
        from airflow.sdk.execution_time import task_runner
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - no Task SDK
        return
    try:
        comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
        if comms is not None and type(comms).__name__ == "InProcessSupervisorComms":
            # ``dag.test()`` / ``airflow dags test``: the "supervisor" is this very process, and it logs each
            # request it is sent at DEBUG, MaskSecret included, as a pydantic model the masker cannot look
            # into: the secret would be printed in clear. Its masker is ours here: registering locally is
            # all it needs.
            _mask_locally(value)
            return
        mask_secret(value)
    except Exception:  # noqa: BLE001 - masking must never break a call; our own redaction still applies
        pass


def _mask_locally(value: str) -> None:
    try:
        from airflow.sdk._shared.secrets_masker import _secrets_masker
    except ImportError:  # pragma: no cover - other layouts: the public call is better than no mask at all
        from airflow.sdk.log import mask_secret

        mask_secret(value)
        return
    _secrets_masker().add_mask(value)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with api keys in URLs, auth headers and known secret values replaced by ``***``."""
    text = _QUERY_SECRET.sub(rf"\1{REDACTED}", text)
    text = _AUTH_HEADER.sub(rf"\1{REDACTED}", text)
    with _lock:
        known = set(_known_secrets)
    for secret in sorted(known | {s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """Logging filter that redacts the rendered message (urllib3 logs full URLs, apikey included, at DEBUG)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is not ours to fix
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


#: Loggers that print request URLs or headers. Logger filters are not inherited by child loggers, so each
#: one that logs is named.
_FILTERED_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "requests",
    "airflow_provider_schneider.client.http",
    "airflow_provider_schneider.tokens.endpoint",
    "airflow_provider_schneider.client.transport",
)
_installed = False


def install_log_filters() -> None:
    """Attach :class:`RedactingFilter` once to the loggers that print request URLs."""
    global _installed
    if _installed:
        return
    with _lock:
        if _installed:
            return
        for name in _FILTERED_LOGGERS:
            logging.getLogger(name).addFilter(RedactingFilter())
        _installed = True


def is_secret_name(name: str) -> bool:
    """A parameter name whose value is a credential (``apikey``, ``access_token``, ``client_secret``...)."""
    return bool(_SECRET_KEY.match(name))


def safe_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """Params fit for a log line or an XCom (api keys, tokens and secrets removed)."""
    return {k: (REDACTED if is_secret_name(str(k)) else v) for k, v in (params or {}).items()}
