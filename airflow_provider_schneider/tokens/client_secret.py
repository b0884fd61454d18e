"""How the client id and secret reach the token endpoint, as ``requests`` auth objects: HTTP Basic
(:class:`ClientSecretBasic`, the documented sample) or the form body (:class:`ClientSecretPost`).

Passing an auth object also stops ``requests`` from adding a ``~/.netrc`` login, which would replace our
header or leak that login to the gateway.
"""

from __future__ import annotations

import base64
from urllib.parse import parse_qsl

import requests.auth

from airflow_provider_schneider.redaction import register_secret


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
