"""One HTTP exchange that always ends: a total deadline per attempt, a cap on the decoded body, no wire prints.

``requests``' read timeout is per socket read: a server that drips one byte every few seconds keeps a call
alive forever, and ``response.content`` reads any body whole. Here every attempt runs under a deadline
enforced by a watchdog thread (:mod:`.deadlines`), which shuts the attempt's socket down when time is up
(a thread blocked in ``recv`` then returns at once), and bodies are streamed with a limit on their
*decoded* size (so a gzip bomb or an endless chunked body stops at the limit). Failures come out as
:class:`TransportError` with a secret-free reason (requests' own messages contain the URL, with any
``apikey``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from airflow_provider_schneider import __version__
from airflow_provider_schneider.client.cancellation import CancelScope, PullCancelled, check_cancelled, current_scope
from airflow_provider_schneider.client.deadlines import (
    AttemptGuard,
    current_guard,
    set_current_guard,
    watchdog,
)
from airflow_provider_schneider.client.environment import environment_for
from airflow_provider_schneider.config.settings import is_loopback
from airflow_provider_schneider.redaction import install_log_filters

USER_AGENT = f"airflow-provider-schneider/{__version__}"
#: Of an error body only this much is read: enough for any error message, never a flood.
ERROR_BODY_LIMIT = 64 * 1024
READ_CHUNK = 64 * 1024

#: Transport failures worth another try: refused/reset connections, timeouts, truncated bodies.
TRANSIENT_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


class TransportError(Exception):
    """No usable HTTP answer; ``reason`` is secret-free, ``transient`` says whether a retry may help."""

    def __init__(self, reason: str, *, transient: bool):
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


class BodyTooLarge(Exception):
    """The decoded body exceeded the limit (a gateway bug or an attack; retrying will not shrink it)."""

    def __init__(self, limit: int, declared: int | None = None):
        seen = f"declared {declared} bytes" if declared is not None else "more"
        super().__init__(f"response body exceeds the {limit}-byte limit ({seen}; see 'max_response_bytes')")
        self.limit = limit


@dataclass(frozen=True)
class Exchange:
    """A complete answer: status, headers and the (decoded, size-checked) body."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    elapsed: float

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").lower()


# -- connections and session ------------------------------------------------------------------------------------


class _GuardedHTTPConnection(HTTPConnection):
    """Registers itself with the current attempt's guard; never prints wire traffic (``http.client``'s
    debug output shows the query, with any ``apikey``, and the ``Authorization`` header)."""

    debuglevel = 0

    def connect(self) -> None:
        _watch(self)
        super().connect()
        _watch(self)  # again with the socket open: a guard that fired while it opened shuts it

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self)
        super().request(*args, **kwargs)


class _GuardedHTTPSConnection(_GuardedHTTPConnection, HTTPSConnection):
    """The same for TLS (the guard's behaviour comes first in the MRO, TLS from ``HTTPSConnection``)."""


def _watch(connection: HTTPConnection) -> None:
    guard = current_guard()
    if guard is not None:
        guard.watch(connection)


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


_POOLS = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


class SchneiderAdapter(HTTPAdapter):
    """requests' adapter, without urllib3 retries (ours are tenacity's), with guarded, quiet connections."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def build_session(max_connections: int) -> requests.Session:
    """A pooled session that reads the environment once per origin, not on every call.

    With ``trust_env`` requests scans the whole process environment twice per call (proxies, then the proxy
    bypass) and stats ``~/.netrc``: a quarter of its per-call cost. Off here; :func:`environment_for` gives
    each call the same proxies (``HTTPS_PROXY``, ``NO_PROXY``, ...) and CA bundle (``REQUESTS_CA_BUNDLE``,
    ``CURL_CA_BUNDLE``) requests would have found, looked up once per origin and proxy settings. A ``.netrc``
    is never used: every call carries its own credentials."""
    install_log_filters()
    session = requests.Session()
    adapter = SchneiderAdapter(pool_connections=4, pool_maxsize=max(max_connections, 1), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    session.trust_env = False
    return session


# -- one exchange -------------------------------------------------------------------------------------------------


def describe_transport_error(exc: BaseException) -> str:
    """A short, secret-free name for a transport failure (the requests message may contain the URL)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "read timeout"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection broken mid-body (truncated response)"
    if isinstance(exc, requests.exceptions.ContentDecodingError):
        return "response body could not be decoded"
    if isinstance(exc, requests.exceptions.SSLError):
        if _is_certificate_error(exc):
            return "TLS certificate verification failed (for a private CA set the connection's 'ca_bundle')"
        return "TLS error"
    if isinstance(exc, requests.exceptions.ProxyError):
        return "proxy error"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed or was reset"
    return type(exc).__name__


def _is_certificate_error(exc: BaseException) -> bool:
    """A failed certificate check will fail again: not worth a retry (unlike a TLS handshake cut short)."""
    return "certificate" in str(exc).lower()


def tls_hint(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme == "https" and is_loopback(parts.hostname):
        return (
            "; a loopback server (such as the emulator) usually speaks plain http: write http:// in the "
            "connection's host or set its schema to 'http'"
        )
    return ""


def _classify(exc: BaseException, url: str) -> TransportError:
    if isinstance(exc, requests.exceptions.SSLError):
        transient = not _is_certificate_error(exc)
        return TransportError(describe_transport_error(exc) + tls_hint(url), transient=transient)
    if isinstance(exc, TRANSIENT_TRANSPORT_ERRORS):
        return TransportError(describe_transport_error(exc), transient=True)
    return TransportError(type(exc).__name__, transient=False)


def refuse_declared_excess(headers: Mapping[str, str], limit: int) -> None:
    """A plain body whose ``Content-Length`` is over ``limit`` is refused before a byte of it is read."""
    declared = headers.get("Content-Length", "")
    if declared.isdigit() and not headers.get("Content-Encoding") and int(declared) > limit:
        raise BodyTooLarge(limit, int(declared))


class CappedBody:
    """A decoded body as its chunks arrive, at most ``limit`` bytes: over it, :class:`BodyTooLarge`
    (``strict``: a 2xx answer, refused even before a byte when its ``Content-Length`` says so) or cut."""

    def __init__(self, headers: Mapping[str, str], limit: int, *, strict: bool):
        if strict:
            refuse_declared_excess(headers, limit)
        self.limit, self.strict = limit, strict
        self._buffer = bytearray()

    def add(self, chunk: bytes) -> bool:
        """Keep ``chunk``; ``True`` once no more is wanted (the cut body is complete)."""
        self._buffer += chunk
        if len(self._buffer) <= self.limit:
            return False
        if self.strict:
            raise BodyTooLarge(self.limit)
        del self._buffer[self.limit :]
        return True

    def value(self) -> bytes:
        return bytes(self._buffer)


def _read_body(response: requests.Response, limit: int, *, strict: bool) -> bytes:
    """The decoded body, at most ``limit`` bytes: over it, :class:`BodyTooLarge` (``strict``) or cut."""
    body = CappedBody(response.headers, limit, strict=strict)
    for chunk in response.iter_content(READ_CHUNK):
        if body.add(chunk):
            break
    return body.value()


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    *,
    connect_timeout: float,
    read_timeout: float,
    deadline: float,
    max_bytes: int,
    **kwargs: Any,
) -> Exchange:
    """Send one request and read its whole answer within ``deadline`` seconds and ``max_bytes``.

    A 2xx body over ``max_bytes`` raises :class:`BodyTooLarge`; of other bodies the first
    :data:`ERROR_BODY_LIMIT` bytes are kept. Raises :class:`TransportError` for anything else that went
    wrong on the wire, :class:`PullCancelled` when the attempt's cancel scope was cancelled.
    """
    check_cancelled(f"{method} request")
    guard = AttemptGuard(deadline)
    scope: CancelScope | None = current_scope()
    on_cancel = lambda: guard.fire("cancelled")  # noqa: E731 - one identity to add and remove
    if scope is not None:
        scope.add_callback(on_cancel)
    # Guards nest: the bearer auth may fetch a token (an exchange of its own) while this one is prepared.
    outer = current_guard()
    set_current_guard(guard)
    watchdog().add(guard)
    started = time.monotonic()
    proxies, verify = environment_for(url, kwargs.pop("verify", True))
    try:
        response = session.request(
            method,
            url,
            stream=True,
            timeout=(connect_timeout, read_timeout),
            allow_redirects=False,
            proxies=proxies,
            verify=verify,
            **kwargs,
        )
        try:
            success = 200 <= response.status_code < 300
            body = _read_body(response, max_bytes if success else min(max_bytes, ERROR_BODY_LIMIT), strict=success)
        finally:
            response.close()
        if guard.fired:  # a socket shut down mid-headers can pass for a complete (empty) answer
            raise TransportError(f"answer cut off by the {guard.fired} watchdog", transient=True)
        return Exchange(response.status_code, response.headers, body, time.monotonic() - started)
    except BodyTooLarge:
        raise
    except Exception as exc:
        if guard.fired == "cancelled":
            raise PullCancelled(f"{method} request cancelled: the pull it belongs to was cancelled") from None
        if guard.fired == "deadline":
            raise TransportError(
                f"no complete answer within the {guard.seconds:g}s attempt deadline ('attempt_timeout')",
                transient=True,
            ) from None
        if not isinstance(exc, requests.RequestException):
            raise
        error = _classify(exc, url)
    finally:
        set_current_guard(outer)
        guard.close()
        if scope is not None:
            scope.remove_callback(on_cancel)
    raise error
