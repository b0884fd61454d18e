"""How credentials go on a request, as ``requests`` auth objects (in the style of ``requests.auth``).

Token endpoint: :class:`ClientSecretBasic` (HTTP Basic) or :class:`ClientSecretPost` (form body). API calls:
:class:`BearerTokenAuth` (owns the one refresh-and-replay after a 401) or :class:`ApiKeyAuth` (the
``apikey`` query parameter). Passing an auth object also stops ``requests`` from adding a ``~/.netrc``
login, which would replace our header or leak that login to the gateway.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import requests.auth

from airflow_provider_schneider.redaction import register_secret
from airflow_provider_schneider.responses import ErrorFields

if TYPE_CHECKING:
    from airflow_provider_schneider.auth import Token

log = logging.getLogger(__name__)


def basic_value(client_id: str, client_secret: str) -> str:
    """The Basic credential as sent: base64 of the UTF-8 bytes of ``id:secret`` (RFC 7617, charset UTF-8),
    so any Unicode secret works and the masked value is exactly the one on the wire."""
    return base64.b64encode(f"{client_id}:{client_secret}".encode()).decode("ascii")


class ClientSecretBasic(requests.auth.AuthBase):
    """``Authorization: Basic ...`` for the token endpoint."""

    def __init__(self, client_id: str, client_secret: str):
        self._value = basic_value(client_id, client_secret)
        register_secret(self._value)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Basic {self._value}"
        return r


class ClientSecretPost(requests.auth.AuthBase):
    """``client_id`` / ``client_secret`` added to the form body of the token request."""

    def __init__(self, client_id: str, client_secret: str):
        self._fields = [("client_id", client_id), ("client_secret", client_secret)]

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        body = r.body.decode() if isinstance(r.body, bytes) else str(r.body or "")
        r.prepare_body(data=[*parse_qsl(body, keep_blank_values=True), *self._fields], files=None)
        return r


class ApiKeyAuth(requests.auth.AuthBase):
    """The long-lived key as ``apikey`` query parameter; a 401 is never replayed (the key will not change)."""

    def __init__(self, api_key: str):
        self._api_key = api_key
        register_secret(api_key)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.prepare_url(r.url or "", {"apikey": self._api_key})
        return r

    def replay_after_401(self, fields: ErrorFields) -> bool:
        return False

    def rejection(self, fields: ErrorFields, replayed: bool) -> str:
        return "the API key was rejected"


class BearerTokenAuth(requests.auth.AuthBase):
    """``Authorization: Bearer <token>`` with the token that is current *now* (each attempt asks again, so a
    retry never replays a stale header). After a 401 the token used is invalidated and the call replayed
    once; a 401 that says the gateway wants an API key is not replayed."""

    def __init__(self, get_token: Callable[[], Token], invalidate: Callable[[Token], None]):
        self._get_token = get_token
        self._invalidate = invalidate
        self._used = threading.local()  # the token this thread's last request carried

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self._get_token()
        # Tokens read from a shared cache were issued in another process: tell the maskers about them too.
        register_secret(token.access_token)
        self._used.token = token
        r.headers["Authorization"] = f"Bearer {token.access_token}"
        return r

    def replay_after_401(self, fields: ErrorFields) -> bool:
        if fields.api_key_rejected:
            return False
        token = getattr(self._used, "token", None)
        if token is not None:
            self._invalidate(token)
        return True

    def rejection(self, fields: ErrorFields, replayed: bool) -> str:
        if fields.api_key_rejected:
            return f"the gateway asks for an API key ({fields.code}); set the connection's 'api_key'"
        return "a freshly issued token was rejected" if replayed else "the token was rejected"
