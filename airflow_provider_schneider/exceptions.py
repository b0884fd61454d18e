"""One family of exceptions; each names the connection and endpoint, never a secret.

Errors that no retry can fix (bad configuration, rejected credentials, missing permission) derive from
Airflow's ``AirflowFailException`` so Airflow does not retry the task either: retrying a rejected client
secret only risks locking the technical user.
"""

from __future__ import annotations

from typing import Any

try:  # Airflow >= 3.2: the Task SDK's own classes
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout
except ImportError:  # Airflow 3.1 (the lowest supported): still in airflow.exceptions
    from airflow.exceptions import (  # type: ignore[no-redef]
        AirflowException,
        AirflowFailException,
        AirflowSensorTimeout,
    )

__all__ = [
    "AirflowException",
    "AirflowFailException",
    "AirflowSensorTimeout",
    "SchneiderApiError",
    "SchneiderAuthError",
    "SchneiderBusinessError",
    "SchneiderConfigError",
    "SchneiderError",
    "SchneiderOrderStatusFailed",
    "SchneiderPermissionError",
    "SchneiderResponseError",
    "SchneiderSchemaError",
    "SchneiderStorageError",
    "SchneiderTokenEndpointError",
]


class SchneiderError(AirflowException):
    """Base class of every error this provider raises."""


class SchneiderConfigError(SchneiderError, AirflowFailException):
    """The connection (or an operator argument) is invalid; fix the input, retrying will not help."""


class SchneiderApiError(SchneiderError):
    """An HTTP error (or an unusable response) from a Schneider endpoint.

    Carries what a data engineer needs to act: HTTP status, Schneider's error ``code`` and ``userMessage``,
    the method and path (query string redacted) and the connection id.
    """

    def __init__(
        self,
        message: str,
        *,
        conn_id: str,
        method: str,
        path: str,
        status: int | None = None,
        code: str | None = None,
        user_message: str | None = None,
        developer_message: str | None = None,
        page: int | None = None,
    ):
        self.conn_id = conn_id
        self.method = method
        self.path = path
        self.status = status
        self.code = code
        self.user_message = user_message
        self.developer_message = developer_message
        self.page = page
        details = [f"{method} {path}"]
        if page is not None:
            details.append(f"page {page}")
        if status is not None:
            details.append(f"HTTP {status}")
        if code:
            details.append(f"code={code}")
        text = f"Schneider connection '{conn_id}': {message} ({', '.join(details)})"
        if user_message:
            text += f": {user_message}"
        if developer_message and developer_message != user_message:
            text += f" [{developer_message}]"
        super().__init__(text)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the exception picklable (Airflow ships exceptions between processes).
        return (_rebuild, (type(self), str(self), self.__dict__))


def _rebuild(cls: type[Exception], text: str, state: dict[str, Any]) -> Exception:
    err = Exception.__new__(cls)
    Exception.__init__(err, text)
    err.__dict__.update(state)
    return err


class SchneiderResponseError(SchneiderApiError):
    """A response that cannot be trusted: HTML instead of JSON, invalid JSON, a missing pagination block, or
    records unlike the API's documentation (a record list that is not a list, a change date that is not a
    date, a product a bulk call flagged). Data, not configuration: Airflow may retry the task."""


class SchneiderPermissionError(SchneiderApiError, AirflowFailException):
    """401 again after a fresh token, or 403: the credentials lack access to this API."""


class SchneiderAuthError(SchneiderError, AirflowFailException):
    """The token endpoint rejected the client credentials (400/401). Never retried."""


class SchneiderTokenEndpointError(SchneiderError):
    """The token endpoint failed transiently (5xx, timeouts) beyond the retry budget, or answered garbage."""


class SchneiderBusinessError(SchneiderError):
    """A 200 response that carries ``errorMessages`` (Net Price, Order Entry) when the caller asked to fail."""


class SchneiderSchemaError(SchneiderError, AirflowFailException):
    """Records that break a ``schema_contract="freeze"``: the API changed, so a retry would fail the same; the
    message names the task, the field, its declared and its received type. Nothing was committed."""


class SchneiderStorageError(SchneiderError):
    """The output could not be written (a folder that cannot be made, a store that refused a write); names the
    task, the field and the URI. Airflow may retry: a store that was briefly down may take the retry."""


class SchneiderOrderStatusFailed(SchneiderError, AirflowFailException):
    """The order a sensor waits for reached a failure status (or is unknown): waiting longer cannot help, so
    no retry either."""
