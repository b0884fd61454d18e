"""Validated, immutable settings read once from an Airflow Connection.

Every other module takes a :class:`SchneiderSettings` instead of a Connection, so bad input fails here,
early, with an error that names the connection id and the field (and never echoes a secret).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_schneider.exceptions import SchneiderConfigError

CONN_TYPE = "schneider"
DEFAULT_CONN_ID = "schneider_default"

#: Token endpoint and API host per environment, from Schneider's API portal (see README).
ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "explore": ("https://api.explore.se.com/token", "https://api.explore.se.com"),
    "dev": ("https://api.dev.se.com/token", "https://api.dev.se.com"),
    "qa": ("https://api.qa.se.com/token", "https://api.qa.se.com"),
    "preprod": ("https://api.preprod.se.com/token", "https://api.preprod.se.com"),
    "production": ("https://api.se.com/token", "https://api.se.com"),
}
DEFAULT_ENVIRONMENT = "production"
CLIENT_AUTH_MODES = ("basic", "body")
TOKEN_CACHE_TIERS = ("memory", "file", "variable")
DEFAULT_TOKEN_CACHE = TOKEN_CACHE_TIERS
#: The API portal's FAQ allows at most 10 parallel calls per client.
MAX_CONCURRENCY_CAP = 10
TOKEN_CACHE_DIR_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_TOKEN_CACHE_DIR"


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent calls are retried; a value so operators can override it per task."""

    max_attempts: int = 5
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    max_total_wait: float = 120.0
    retry_after_cap: float = 120.0


@dataclass(frozen=True)
class SchneiderSettings:
    """Everything the hook needs, validated. ``repr`` never shows a secret."""

    conn_id: str
    api_base_url: str
    token_url: str
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    scope: str | None = None
    client_auth: str = "basic"
    environment: str = DEFAULT_ENVIRONMENT
    connect_timeout: float = 10.0
    timeout: float = 60.0
    verify: bool | str = True
    max_concurrency: int = 4
    page_size: int = 100
    token_cache: tuple[str, ...] = DEFAULT_TOKEN_CACHE
    token_cache_dir: str | None = None
    token_leeway: float = 300.0
    token_refresh_spread: float = 0.5
    token_wait_timeout: float = 120.0
    retry: RetryPolicy = RetryPolicy()

    @property
    def uses_api_key(self) -> bool:
        return bool(self.api_key)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be printed."""
        return tuple(s for s in (self.client_secret, self.api_key) if s)


def _extra_value(extra: Mapping[str, Any], name: str) -> Any:
    """Read an extra saved by the UI form (``extra__schneider__x``) or written by hand (``x``)."""
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(f"extra__{CONN_TYPE}__{name}")
    return None if value == "" else value


class _Reader:
    """Parses one field at a time and raises errors that name the connection and the field."""

    def __init__(self, conn_id: str, extra: Mapping[str, Any]):
        self.conn_id = conn_id
        self.extra = extra

    def fail(self, field_name: str, problem: str) -> SchneiderConfigError:
        return SchneiderConfigError(f"Connection '{self.conn_id}': field '{field_name}' {problem}")

    def text(self, name: str, default: str | None = None) -> str | None:
        value = _extra_value(self.extra, name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.fail(name, f"must be a string, got {type(value).__name__}")
        return value.strip() or default

    def number(self, name: str, default: float, *, minimum: float = 0.0, integer: bool = False) -> Any:
        value = _extra_value(self.extra, name)
        if value is None:
            return default
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            raise self.fail(name, f"must be a number, got {value!r}") from None
        if number != number or number < minimum:  # NaN or too small
            raise self.fail(name, f"must be >= {minimum:g}, got {value!r}")
        if integer:
            if number != int(number):
                raise self.fail(name, f"must be a whole number, got {value!r}")
            return int(number)
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = _extra_value(self.extra, name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", "off"):
            return False
        raise self.fail(name, f"must be true or false, got {value!r}")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_url(reader: _Reader, field_name: str, url: str) -> str:
    """Only https, except plain http to loopback (the emulator): a token must not cross a network in clear."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise reader.fail(field_name, f"must be an absolute http(s) URL, got {url!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise reader.fail(field_name, f"uses plain http to non-loopback host {parts.hostname!r}; use https")
    if parts.username or parts.password:
        raise reader.fail(field_name, "must not embed credentials")
    return url.rstrip("/")


def _api_base_url(conn: Any, reader: _Reader) -> str | None:
    """The API base URL from host (+ schema/port), in the style of Airflow's HttpHook.

    ``host`` may carry the scheme (``http://127.0.0.1:8080``) or the scheme may sit in ``schema``
    (URI form ``schneider://id:secret@127.0.0.1:8080/http``). Default scheme is https.
    """
    host = (conn.host or "").strip()
    if not host:
        return None
    if "://" not in host:
        scheme = (conn.schema or "https").strip().lower()
        host = f"{scheme}://{host}"
    parts = urlsplit(host)
    if conn.port and not parts.port:
        host = f"{parts.scheme}://{parts.netloc}:{conn.port}{parts.path}"
    return _check_url(reader, "host", host)


def _token_cache(reader: _Reader) -> tuple[str, ...]:
    raw = _extra_value(reader.extra, "token_cache")
    if raw is None:
        return DEFAULT_TOKEN_CACHE
    items = raw if isinstance(raw, (list, tuple)) else str(raw).replace(" ", "").split(",")
    tiers = tuple(dict.fromkeys(t for t in (str(i).strip().lower() for i in items) if t))
    if tiers in ((), ("none",)):
        return ()
    unknown = [t for t in tiers if t not in TOKEN_CACHE_TIERS]
    if unknown:
        raise reader.fail("token_cache", f"has unknown tier(s) {unknown}; choose from {', '.join(TOKEN_CACHE_TIERS)}")
    return tiers


def _verify(reader: _Reader) -> bool | str:
    raw = _extra_value(reader.extra, "ca_bundle")
    if raw is not None:
        if not isinstance(raw, str) or not os.path.isfile(raw):
            raise reader.fail("ca_bundle", f"must be the path of a readable CA bundle file, got {raw!r}")
        return raw
    return reader.boolean("verify_ssl", True)


def settings_from_connection(conn: Any, *, overrides: Mapping[str, Any] | None = None) -> SchneiderSettings:
    """Validate an Airflow Connection (or anything with its attributes) into settings.

    ``overrides`` take precedence over the connection's extras (e.g. per-operator retry settings).
    """
    conn_id = conn.conn_id or DEFAULT_CONN_ID
    extra = dict(conn.extra_dejson or {})
    extra.update({k: v for k, v in (overrides or {}).items() if v is not None})
    reader = _Reader(conn_id, extra)

    environment = (reader.text("environment", DEFAULT_ENVIRONMENT) or DEFAULT_ENVIRONMENT).lower()
    if environment not in ENVIRONMENTS:
        raise reader.fail("environment", f"is {environment!r}; choose one of {', '.join(ENVIRONMENTS)}")
    env_token_url, env_host = ENVIRONMENTS[environment]
    api_base_url = _api_base_url(conn, reader) or env_host

    token_url = reader.text("token_url")
    if token_url:
        token_url = _check_url(reader, "token_url", token_url)
    elif conn.host:
        # Schneider's token endpoint is ``{api host}/token`` in every environment.
        token_url = f"{api_base_url}/token"
    else:
        token_url = env_token_url

    client_auth = (reader.text("client_auth", "basic") or "basic").lower()
    if client_auth not in CLIENT_AUTH_MODES:
        raise reader.fail("client_auth", f"is {client_auth!r}; choose one of {', '.join(CLIENT_AUTH_MODES)}")

    api_key = reader.text("api_key")
    client_id = (conn.login or "").strip() or None
    client_secret = conn.password or None
    if not api_key:
        if not client_id:
            raise reader.fail("login", "(Client ID) is empty and no 'api_key' is set")
        if not client_secret:
            raise reader.fail("password", "(Client secret) is empty and no 'api_key' is set")

    max_concurrency = reader.number("max_concurrency", 4, minimum=1, integer=True)
    if max_concurrency > MAX_CONCURRENCY_CAP:
        raise reader.fail("max_concurrency", f"is {max_concurrency}; Schneider allows at most {MAX_CONCURRENCY_CAP}")
    page_size = reader.number("page_size", 100, minimum=1, integer=True)

    retry = RetryPolicy(
        max_attempts=reader.number("retry_max_attempts", RetryPolicy.max_attempts, minimum=1, integer=True),
        backoff_initial=reader.number("retry_backoff_initial", RetryPolicy.backoff_initial),
        backoff_max=reader.number("retry_backoff_max", RetryPolicy.backoff_max),
        max_total_wait=reader.number("retry_max_total_wait", RetryPolicy.max_total_wait),
        retry_after_cap=reader.number("retry_after_cap", RetryPolicy.retry_after_cap),
    )

    return SchneiderSettings(
        conn_id=conn_id,
        api_base_url=api_base_url,
        token_url=token_url,
        client_id=client_id,
        client_secret=client_secret,
        api_key=api_key,
        scope=reader.text("scope"),
        client_auth=client_auth,
        environment=environment,
        connect_timeout=reader.number("connect_timeout", 10.0, minimum=0.001),
        timeout=reader.number("timeout", 60.0, minimum=0.001),
        verify=_verify(reader),
        max_concurrency=max_concurrency,
        page_size=page_size,
        token_cache=_token_cache(reader),
        token_cache_dir=reader.text("token_cache_dir") or os.environ.get(TOKEN_CACHE_DIR_ENV) or None,
        token_leeway=reader.number("token_leeway", 300.0),
        token_refresh_spread=reader.number("token_refresh_spread", 0.5),
        token_wait_timeout=reader.number("token_wait_timeout", 120.0, minimum=1.0),
        retry=retry,
    )
