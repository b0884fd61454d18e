"""From a call's arguments to an :class:`ApiRequest`, and from its answer to JSON or an error.

Shared by the blocking client (:mod:`.http`) and the asynchronous one (:mod:`.async_http`), so both accept
the same gateways the same way: an HTML page, a throttle sent as 500, a ``fault`` body, a 401 or 403 all
become the same errors whichever client met them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from airflow_provider_schneider.client.request import ApiRequest
from airflow_provider_schneider.client.responses import ErrorFields, error_fields, is_html, parse_json
from airflow_provider_schneider.client.retrying import RETRYABLE_STATUSES, TransientFailure, parse_retry_after
from airflow_provider_schneider.client.transport import BodyTooLarge, Exchange, TransportError
from airflow_provider_schneider.config.settings import SchneiderSettings
from airflow_provider_schneider.exceptions import (
    SchneiderApiError,
    SchneiderConfigError,
    SchneiderPermissionError,
    SchneiderResponseError,
)
from airflow_provider_schneider.redaction import redact

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def clean_params(params: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Query parameters as sent: ``None`` dropped, booleans lower-case, lists repeated (``product-reference``)."""
    pairs: list[tuple[str, str]] = []
    for name, value in (params or {}).items():
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is None:
                continue
            if isinstance(item, bool):
                item = "true" if item else "false"
            pairs.append((str(name), str(item)))
    return pairs


class Answers:
    """Builds the calls of one connection and reads their answers; holds no connection of its own."""

    def __init__(self, settings: SchneiderSettings):
        self.settings = settings

    def url_for(self, path: str) -> str:
        base = self.settings.api_base_url
        if path.startswith(("http://", "https://")):
            if not path.startswith(base + "/"):
                raise SchneiderConfigError(
                    f"Schneider connection '{self.settings.conn_id}': URL {redact(path)!r} is not under the "
                    f"connection's API base URL {base}"
                )
            return path
        return f"{base}/{path.lstrip('/')}"

    def call(self, method: str, path: str, params: Mapping[str, Any] | None, body: Any, page: int | None) -> ApiRequest:
        method = method.upper()
        url = self.url_for(path)
        shown_path = redact("/" + url[len(self.settings.api_base_url) :].lstrip("/"), self.settings.secrets)
        return ApiRequest(method, url, shown_path, tuple(clean_params(params)), body, page)

    def error(self, cls: type[SchneiderApiError], message: str, call: ApiRequest, **kw: Any) -> Any:
        return cls(message, conn_id=self.settings.conn_id, method=call.method, path=call.path, page=call.page, **kw)

    def wire_failure(self, exc: TransportError | BodyTooLarge, call: ApiRequest) -> Exception:
        """What to raise when no usable answer came: a retryable failure, or the final error."""
        if isinstance(exc, BodyTooLarge):
            return self.error(SchneiderResponseError, str(exc), call)
        error = self.error(SchneiderApiError, f"request failed: {exc.reason}", call)
        return TransientFailure(error, reason=exc.reason) if exc.transient else error

    def fields(self, answer: Exchange) -> ErrorFields:
        return error_fields(answer.content_type, answer.body, self.settings.secrets)

    def permission(self, answer: Exchange, fields: ErrorFields, call: ApiRequest, why: str) -> SchneiderApiError:
        return self.http_error(
            SchneiderPermissionError,
            f"permission denied ({why}); check that the credentials are subscribed to this API",
            answer,
            fields,
            call,
        )

    def http_error(
        self, cls: type[SchneiderApiError], message: str, answer: Exchange, fields: ErrorFields, call: ApiRequest
    ) -> SchneiderApiError:
        """``cls`` carrying the status and the (redacted) error fields of ``answer``."""
        return self.error(
            cls,
            message,
            call,
            status=answer.status,
            code=fields.code,
            user_message=fields.user_message,
            developer_message=fields.developer_message,
        )

    def parse(self, answer: Exchange, call: ApiRequest) -> Any:
        """The JSON of a 2xx answer; else the error, wrapped in :class:`TransientFailure` when worth a retry."""
        status = answer.status
        if 200 <= status < 300:
            return self._parse_success(answer, call)
        fields = self.fields(answer)
        if status == 403 and not fields.throttled:
            raise self.permission(answer, fields, call, "HTTP 403")
        if fields.throttled:
            message = f"the gateway throttled the call ({fields.code})"
        else:
            message = "the API returned an error"
        error = self.http_error(SchneiderApiError, message, answer, fields, call)
        if status in RETRYABLE_STATUSES or fields.throttled:
            raise TransientFailure(
                error,
                retry_after=parse_retry_after(answer.headers.get("Retry-After")),
                reason=f"HTTP {status}" + (" throttle" if fields.throttled and status != 429 else ""),
                status=status,
                throttled=fields.throttled,
            )
        raise error

    def _parse_success(self, answer: Exchange, call: ApiRequest) -> Any:
        body = answer.body
        if not body.strip():
            return None
        if is_html(answer.content_type, body):
            message = f"expected JSON but got an HTML page with HTTP {answer.status}"
            raise self.error(SchneiderResponseError, message, call)
        try:
            return parse_json(body)
        except ValueError as exc:
            detail = (
                f"{exc.msg} at byte {exc.pos} of {len(body)}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            )
            raise self.error(SchneiderResponseError, f"response is not valid JSON ({detail})", call) from None
