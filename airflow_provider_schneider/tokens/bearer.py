"""``Authorization: Bearer <token>`` on API calls, and the one refresh-and-replay after a 401: the client's
auth protocol (:class:`~airflow_provider_schneider.client.auth.ApiAuth`) implemented with tokens.

A replay never carries another token a cache tier still holds (it may have been revoked with the one that
was rejected): only a token issued after that 401, or one another process requested to replace that very
token. "A freshly issued token was rejected" is said only when that is what happened.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

import requests.auth

from airflow_provider_schneider.client.responses import ErrorFields
from airflow_provider_schneider.redaction import register_secret
from airflow_provider_schneider.tokens.token import Token, token_id


class TokenSource(Protocol):
    """Where a bearer auth gets its tokens (:class:`~airflow_provider_schneider.tokens.manager.TokenManager`)."""

    #: Whether the source can issue a replacement after a 401 (a fixed token cannot).
    renews: bool

    def get_token(self, *, replacing: Token | None = None) -> Token:
        """A usable token; with ``replacing`` (a token answered 401), only a replacement of it."""

    def invalidate(self, token: Token) -> float | None:
        """Forget ``token`` everywhere; when this process first saw it rejected (epoch seconds)."""


class FixedToken:
    """One token and nothing else (``test_connection`` checks the token it just requested)."""

    renews = False

    def __init__(self, token: Token):
        self._token = token

    def get_token(self, *, replacing: Token | None = None) -> Token:
        return self._token

    def invalidate(self, token: Token) -> float | None:
        return None


class BearerTokenAuth(requests.auth.AuthBase):
    """The token that is current *now* on each attempt (a retry never replays a stale header); after a 401,
    invalidate it and replay once with its replacement."""

    def __init__(self, source: TokenSource):
        self._source = source
        #: Per thread: ``token`` (the last request's), ``rejected`` + ``since`` (the last 401's token and when
        #: it was first seen rejected), ``replacing`` (set until the replay has its replacement).
        self._used = threading.local()

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        replacing = getattr(self._used, "replacing", None)
        token = self._source.get_token(replacing=replacing)
        self._used.replacing = None  # after success only: a retried replay still asks for the replacement
        # Tokens read from a shared cache were issued in another process: tell the maskers about them too.
        register_secret(token.access_token)
        self._used.token = token
        r.headers["Authorization"] = f"Bearer {token.access_token}"
        return r

    def after_401(self, fields: ErrorFields, replayed: bool) -> str | None:
        if fields.api_key_rejected:
            return f"the gateway asks for an API key ({fields.code}); set the connection's 'api_key'"
        if replayed:
            if self._replaced():
                return "a freshly issued token was rejected"
            return "the token was rejected, and so was the replay, whose token was not issued after that rejection"
        used = self._used
        used.rejected = used.since = None
        token = getattr(used, "token", None)
        if token is None or not self._source.renews:
            return "the token was rejected"
        seen = time.time()
        since = self._source.invalidate(token)
        used.rejected, used.since = token, seen if since is None else min(seen, since)
        used.replacing = token
        return None

    def _replaced(self) -> bool:
        """Whether the replay carried a replacement: issued after the first 401, or requested to replace it."""
        used = self._used
        token, rejected, since = (getattr(used, name, None) for name in ("token", "rejected", "since"))
        if token is None or rejected is None or since is None:
            return False
        return bool(token.issued_at >= since or token.replaces == token_id(rejected))
