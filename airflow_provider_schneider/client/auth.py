"""How credentials go on an API call, and what an HTTP 401 means for them: the client's auth protocol.

The client defines it and never looks behind it (as an httpx client takes an ``Auth``): an auth object puts
the current credentials on each attempt and, given a 401, says whether one replay is worth it. Bearer tokens
implement it in :mod:`airflow_provider_schneider.tokens.bearer`; the long-lived API key is here.
"""

from __future__ import annotations

from typing import Any, Protocol

import requests.auth

from airflow_provider_schneider.client.responses import ErrorFields
from airflow_provider_schneider.redaction import register_secret


class ApiAuth(Protocol):
    """A ``requests`` auth object (called on every attempt, so a retry never replays stale credentials)
    that also decides what a 401 means."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest: ...

    def after_401(self, fields: ErrorFields, replayed: bool) -> str | None:
        """``None``: send the call once more (the next attempt carries fresh credentials); else why the
        credentials were rejected, for the permission error. ``replayed``: the 401 answered the replay."""


class ApiKeyAuth(requests.auth.AuthBase):
    """The long-lived key as ``apikey`` query parameter; a 401 is never replayed (the key will not change)."""

    def __init__(self, api_key: str):
        self._api_key = api_key
        register_secret(api_key)

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.prepare_url(r.url or "", {"apikey": self._api_key})
        return r

    def after_401(self, fields: ErrorFields, replayed: bool) -> str | None:
        return "the API key was rejected"


class AsyncAuth(Protocol):
    """Credentials for the asynchronous client. Coroutines share a thread, so what a call used travels in a
    per-call ``state`` (from :meth:`start`), not in a thread-local as with :class:`ApiAuth`."""

    def start(self) -> Any:
        """A fresh state for one call (its attempts and its replay)."""

    async def apply(self, state: Any, query: list[tuple[str, str]], headers: dict[str, str]) -> None:
        """Put the current credentials on an attempt."""

    async def after_401(self, state: Any, fields: ErrorFields, replayed: bool) -> str | None:
        """As :meth:`ApiAuth.after_401`, for the call of ``state``."""


class AsyncApiKeyAuth:
    """The API key as ``apikey`` query parameter; a 401 is never replayed."""

    def __init__(self, api_key: str):
        self._api_key = api_key
        register_secret(api_key)

    def start(self) -> None:
        return None

    async def apply(self, state: Any, query: list[tuple[str, str]], headers: dict[str, str]) -> None:
        query.append(("apikey", self._api_key))

    async def after_401(self, state: Any, fields: ErrorFields, replayed: bool) -> str | None:
        return "the API key was rejected"
