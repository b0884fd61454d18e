"""How credentials go on a request, as ``requests`` auth objects (in the style of ``requests.auth``).

Token endpoint: :class:`ClientSecretBasic` (HTTP Basic) or :class:`ClientSecretPost` (form body). API calls:
:class:`BearerTokenAuth` (owns the one refresh-and-replay after a 401) or :class:`ApiKeyAuth` (the
``apikey`` query parameter). Passing an auth object also stops ``requests`` from adding a ``~/.netrc``
login, which would replace our header or leak that login to the gateway.
"""

from __future__ import annotations

import base64
import inspect
import logging
import threading
import time
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


def _takes(fn: Callable[..., object], name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # a callable without a signature takes no keywords we know of
        return False


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
    retry never replays a stale header).

    After a 401 the token used is invalidated and the call replayed once, with a token issued after that
    rejection (``get_token(replacing=rejected)``), never another one a cache tier still holds. No replay
    when the gateway wants an API key, or when ``get_token`` cannot renew (a fixed token)."""

    def __init__(self, get_token: Callable[..., Token], invalidate: Callable[[Token], float | None]):
        self._get_token = get_token
        self._invalidate = invalidate
        self._renews = _takes(get_token, "replacing")
        #: Per thread: ``token`` (the last request's), ``rejected`` + ``since`` (the last 401's token and when
        #: it was first seen rejected), ``replacing`` (set until the replay has its replacement).
        self._used = threading.local()

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        replacing = getattr(self._used, "replacing", None)
        token = self._get_token(replacing=replacing) if replacing is not None else self._get_token()
        self._used.replacing = None  # after success only: a retried replay still asks for the replacement
        # Tokens read from a shared cache were issued in another process: tell the maskers about them too.
        register_secret(token.access_token)
        self._used.token = token
        r.headers["Authorization"] = f"Bearer {token.access_token}"
        return r

    def replay_after_401(self, fields: ErrorFields) -> bool:
        used = self._used
        used.rejected = used.since = None
        token = getattr(used, "token", None)
        if fields.api_key_rejected or token is None:
            return False
        seen = time.time()
        since = self._invalidate(token)
        used.rejected, used.since = token, seen if since is None else min(seen, since)
        if self._renews:
            used.replacing = token
        return self._renews

    def rejection(self, fields: ErrorFields, replayed: bool) -> str:
        if fields.api_key_rejected:
            return f"the gateway asks for an API key ({fields.code}); set the connection's 'api_key'"
        if not replayed:
            return "the token was rejected"
        if self._replaced():
            return "a freshly issued token was rejected"
        return "the token was rejected, and so was the replay, whose token was not issued after that rejection"

    def _replaced(self) -> bool:
        """Whether the replay carried a replacement: issued after the first 401, or requested to replace it."""
        # Imported here: token_sealing imports auth, which imports this module.
        from airflow_provider_schneider.token_sealing import token_id

        used = self._used
        token, rejected, since = (getattr(used, name, None) for name in ("token", "rejected", "since"))
        if token is None or rejected is None or since is None:
            return False
        return bool(token.issued_at >= since or token.replaces == token_id(rejected))
