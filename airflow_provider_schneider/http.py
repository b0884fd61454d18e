"""Authenticated, retried, concurrency-capped HTTP calls to Schneider APIs, with errors mapped to one type.

Each attempt applies the *current* credentials (a retry never replays a stale Authorization header);
a 401 invalidates exactly the token that was used, refreshes once and replays once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
import requests.auth
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from airflow_provider_schneider.auth import NO_EXTRA_AUTH, Token
from airflow_provider_schneider.exceptions import (
    SchneiderApiError,
    SchneiderConfigError,
    SchneiderPermissionError,
    SchneiderResponseError,
)
from airflow_provider_schneider.redaction import install_log_filters, redact, register_secret
from airflow_provider_schneider.responses import error_fields, is_html
from airflow_provider_schneider.retrying import (
    RETRYABLE_STATUSES,
    TRANSIENT_TRANSPORT_ERRORS,
    TransientFailure,
    call_with_retries,
    describe_transport_error,
    no_retry,
    parse_retry_after,
)
from airflow_provider_schneider.settings import RetryPolicy, SchneiderSettings

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
USER_AGENT = "airflow-provider-schneider"


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


class _QuietHTTPConnection(HTTPConnection):
    """Never prints wire traffic: ``http.client``'s debug output shows the query (``apikey``) and the
    ``Authorization`` header, and ``HTTPConnection.debuglevel = 1`` is a common debugging recipe."""

    debuglevel = 0


class _QuietHTTPSConnection(HTTPSConnection):
    debuglevel = 0


class _QuietHTTPPool(HTTPConnectionPool):
    ConnectionCls = _QuietHTTPConnection


class _QuietHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _QuietHTTPSConnection


_QUIET_POOLS = {"http": _QuietHTTPPool, "https": _QuietHTTPSPool}


class SchneiderAdapter(HTTPAdapter):
    """requests' adapter, without urllib3 retries (ours are tenacity's) and without wire debug prints."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_QUIET_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = dict(_QUIET_POOLS)
        return manager


def build_session(max_connections: int) -> requests.Session:
    """A pooled session; ``trust_env`` stays on so corporate proxies and CA bundles from the environment work."""
    install_log_filters()
    session = requests.Session()
    adapter = SchneiderAdapter(pool_connections=4, pool_maxsize=max(max_connections, 1), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
    session.trust_env = True
    return session


def _is_certificate_error(exc: BaseException) -> bool:
    """A failed certificate check will fail again: not worth a retry (unlike a TLS handshake cut short)."""
    return "certificate" in str(exc).lower()


class SchneiderHttpClient:
    """One pooled session per hook; at most ``max_concurrency`` calls in flight, shared 429 back-off.

    The cap is a semaphore around the socket call itself, so it holds whatever fans out above it
    (concurrent pages, per-product calls, 401 replays, retries).
    """

    def __init__(
        self,
        settings: SchneiderSettings,
        *,
        get_token: Callable[[], Token] | None = None,
        invalidate_token: Callable[[Token], None] | None = None,
        session: requests.Session | None = None,
    ):
        install_log_filters()
        self.settings = settings
        self._get_token = get_token
        self._invalidate_token = invalidate_token
        self.session = session or build_session(settings.max_concurrency)
        self._slots = threading.BoundedSemaphore(settings.max_concurrency)
        self._pause_lock = threading.Lock()
        self._paused_until = 0.0

    # -- public -------------------------------------------------------------------------------------------

    def url_for(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            if not path.startswith(self.settings.api_base_url + "/"):
                raise SchneiderConfigError(
                    f"Schneider connection '{self.settings.conn_id}': URL {redact(path)!r} is not under the "
                    f"connection's API base URL {self.settings.api_base_url}"
                )
            return path
        return f"{self.settings.api_base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        retry: bool | None = None,
        retry_policy: RetryPolicy | None = None,
        page: int | None = None,
    ) -> Any:
        """Send one call and return its parsed JSON (``None`` for an empty body).

        Idempotent methods are retried on 429/5xx/transport errors; writes only when ``retry=True``.
        """
        method = method.upper()
        url = self.url_for(path)
        shown_path = redact("/" + url[len(self.settings.api_base_url) :].lstrip("/"), self.settings.secrets)
        query = clean_params(params)
        should_retry = method in IDEMPOTENT_METHODS if retry is None else retry

        def attempt() -> Any:
            return self._send_authenticated(method, url, shown_path, query, json_body, page)

        if not should_retry:
            return no_retry(attempt)
        return call_with_retries(
            attempt,
            policy=retry_policy or self.settings.retry,
            log=log,
            describe=f"{method} {shown_path}" + (f" page {page}" if page else ""),
            on_wait=self._note_wait,
        )

    def close(self) -> None:
        self.session.close()

    # -- internals ----------------------------------------------------------------------------------------

    def _error(self, cls: type[SchneiderApiError], message: str, method: str, path: str, **kw: Any) -> Any:
        return cls(message, conn_id=self.settings.conn_id, method=method, path=path, **kw)

    def _send_authenticated(
        self, method: str, url: str, path: str, query: list[tuple[str, str]], json_body: Any, page: int | None
    ) -> Any:
        if self.settings.uses_api_key:
            response = self._send(method, url, path, [*query, ("apikey", self.settings.api_key)], {}, json_body, page)
            if response.status_code == 401:
                self._raise_permission(response, method, path, page, "the API key was rejected")
            return self._parse(response, method, path, page)

        assert self._get_token is not None
        self._wait_if_paused()  # before the token lookup: a long throttle pause must not age the token
        # The token is looked up on every attempt: a retry carries the token that is current *now* (another
        # thread may have refreshed it after a 401), never the header of the failed attempt.
        token = self._get_token()
        response = self._send(method, url, path, query, self._bearer(token), json_body, page)
        if response.status_code == 401:
            log.info("HTTP 401 on %s %s: refreshing the token once and replaying", method, path)
            if self._invalidate_token is not None:
                self._invalidate_token(token)
            token = self._get_token()
            response = self._send(method, url, path, query, self._bearer(token), json_body, page)
            if response.status_code == 401:
                self._raise_permission(response, method, path, page, "a freshly issued token was rejected")
        return self._parse(response, method, path, page)

    @staticmethod
    def _bearer(token: Token) -> dict[str, str]:
        # Tokens read from a shared cache were issued in another process: tell the maskers about them too.
        register_secret(token.access_token)
        return {"Authorization": f"Bearer {token.access_token}"}

    def _note_wait(self, seconds: float, failure: TransientFailure) -> None:
        """A throttle (429 / ``Retry-After``) pauses every thread of this client, not just the throttled one;
        a plain 5xx or network failure only delays its own retry."""
        if not failure.throttled:
            return
        with self._pause_lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _wait_if_paused(self) -> None:
        delay = self._paused_until - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _send(
        self,
        method: str,
        url: str,
        path: str,
        query: list[tuple[str, str]],
        headers: dict[str, str],
        json_body: Any,
        page: int | None,
    ) -> requests.Response:
        with self._slots:
            self._wait_if_paused()
            started = time.monotonic()
            try:
                response = self.session.request(
                    method,
                    url,
                    params=query,
                    json=json_body,
                    headers=headers,
                    auth=NO_EXTRA_AUTH,
                    timeout=(self.settings.connect_timeout, self.settings.timeout),
                    verify=self.settings.verify,
                    allow_redirects=False,
                )
                reason, transient = None, False
            # Only a secret-free description survives: requests' messages hold the URL (and the apikey).
            except requests.exceptions.SSLError as exc:
                reason, transient = describe_transport_error(exc), not _is_certificate_error(exc)
            except TRANSIENT_TRANSPORT_ERRORS as exc:
                reason, transient = describe_transport_error(exc), True
            except requests.RequestException as exc:
                reason, transient = type(exc).__name__, False
        if reason is not None:
            # Raised outside the ``except`` blocks so the requests exception is not even chained.
            error = self._error(SchneiderApiError, f"request failed: {reason}", method, path, page=page)
            if transient:
                raise TransientFailure(error, reason=reason)
            raise error
        log.debug("%s %s -> HTTP %s in %.0f ms", method, path, response.status_code, (time.monotonic() - started) * 1e3)
        return response

    def _raise_permission(
        self, response: requests.Response, method: str, path: str, page: int | None, why: str
    ) -> None:
        raise self._http_error(
            SchneiderPermissionError,
            f"permission denied ({why}); check that the credentials are subscribed to this API",
            response,
            method,
            path,
            page,
        )

    def _http_error(
        self,
        cls: type[SchneiderApiError],
        message: str,
        response: requests.Response,
        method: str,
        path: str,
        page: int | None,
    ) -> SchneiderApiError:
        """``cls`` carrying the status and the (redacted) error fields of ``response``."""
        fields = error_fields(response, self.settings.secrets)
        return self._error(
            cls,
            message,
            method,
            path,
            status=response.status_code,
            code=fields.code,
            user_message=fields.user_message,
            developer_message=fields.developer_message,
            page=page,
        )

    def _parse(self, response: requests.Response, method: str, path: str, page: int | None) -> Any:
        status = response.status_code
        if 200 <= status < 300:
            return self._parse_success(response, method, path, page)
        if status == 403:
            self._raise_permission(response, method, path, page, "HTTP 403")
        error = self._http_error(SchneiderApiError, "the API returned an error", response, method, path, page)
        if status in RETRYABLE_STATUSES:
            raise TransientFailure(
                error,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
                reason=f"HTTP {status}",
                status=status,
            )
        raise error

    def _parse_success(self, response: requests.Response, method: str, path: str, page: int | None) -> Any:
        body = response.content
        if not body.strip():
            return None
        if is_html(response):
            raise self._error(
                SchneiderResponseError,
                f"expected JSON but got an HTML page with HTTP {response.status_code}",
                method,
                path,
                page=page,
            )
        try:
            return json.loads(body)
        except ValueError as exc:
            raise self._error(
                SchneiderResponseError,
                f"response is not valid JSON ({exc.msg} at byte {exc.pos} of {len(body)})"
                if isinstance(exc, json.JSONDecodeError)
                else "response is not valid JSON",
                method,
                path,
                page=page,
            ) from None
