"""Validated, immutable settings read once from an Airflow Connection.

Every other module takes a :class:`SchneiderSettings` instead of a Connection, so bad input fails here,
early, with an error that names the connection id and the field (and never echoes a secret). Types, bounds
and defaults come from :mod:`airflow_provider_schneider.config.fields`.

Precedence for a field: the connection's extra, then the field's environment variable if it declares one
(``token_cluster_lease``, ``token_cluster_settle``; read here, once, when the settings are built), then the
provider's default.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_schneider.config.fields import (
    ENVIRONMENTS,
    FIELDS_BY_NAME,
    TOKEN_CACHE_TIERS,
    ConnField,
    default,
)
from airflow_provider_schneider.exceptions import SchneiderConfigError

__all__ = ["CONN_TYPE", "DEFAULT_CONN_ID", "RetryPolicy", "SchneiderSettings", "settings_from_connection"]

CONN_TYPE = "schneider"
DEFAULT_CONN_ID = "schneider_default"
DEFAULT_TOKEN_CACHE = TOKEN_CACHE_TIERS
TOKEN_CACHE_DIR_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_TOKEN_CACHE_DIR"
_OFF = ("0", "false", "no", "off")


@dataclass(frozen=True)
class RetryPolicy:
    """How idempotent calls are retried; a value so operators can override it per task."""

    max_attempts: int = default("retry_max_attempts")
    backoff_initial: float = default("retry_backoff_initial")
    backoff_max: float = default("retry_backoff_max")
    max_total_wait: float = default("retry_max_total_wait")
    retry_after_cap: float = default("retry_after_cap")


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
    client_auth: str = default("client_auth")
    environment: str = default("environment")
    connect_timeout: float = default("connect_timeout")
    timeout: float = default("timeout")
    #: Total seconds one attempt may take (connect to last body byte), whatever the server drips.
    attempt_timeout: float = default("connect_timeout") + 2 * default("timeout")
    max_response_bytes: int = default("max_response_bytes")
    max_pages: int = default("max_pages")
    verify: bool | str = default("verify_ssl")
    max_concurrency: int = default("max_concurrency")
    #: Calls in flight per client shared by every process of the host (0: no host-wide cap).
    client_max_in_flight: int = default("client_max_in_flight")
    slot_wait_timeout: float = default("slot_wait_timeout")
    #: A host-wide pace in calls per second (0: none).
    max_calls_per_second: float = default("max_calls_per_second")
    adaptive_concurrency: bool = default("adaptive_concurrency")
    page_size: int = default("page_size")
    token_cache: tuple[str, ...] = DEFAULT_TOKEN_CACHE
    token_cache_dir: str | None = None
    token_leeway: float = default("token_leeway")
    token_refresh_spread: float = default("token_refresh_spread")
    token_wait_timeout: float = default("token_wait_timeout")
    token_max_lifetime: float = default("token_max_lifetime")
    #: The cross-host lease in the Variable tier (:mod:`..tokens.lease`); off: each host renews on its own.
    token_cluster_lease: bool = default("token_cluster_lease")
    #: Seconds between writing the lease and reading it back (bounds in :mod:`.fields`).
    token_cluster_settle: float = default("token_cluster_settle")
    retry: RetryPolicy = RetryPolicy()
    #: A GET path the connection's "Test" button calls after the token request (``None``: none).
    test_path: str | None = None

    @property
    def uses_api_key(self) -> bool:
        return bool(self.api_key)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never be printed."""
        return tuple(s for s in (self.client_secret, self.api_key) if s)


def _from_environment(spec: ConnField) -> Any:
    """An empty field's value from its environment variable, else its default.

    Read as leniently as before these variables had connection fields (an operator's worker-wide knob must
    not fail every task): a boolean is off only for 0/false/no/off; a number that does not parse or is not
    finite is the default, one out of bounds is clamped to them.
    """
    text = os.environ.get(spec.env, "").strip() if spec.env else ""
    if not text:
        return spec.default
    if spec.kind == "boolean":
        return text.lower() not in _OFF
    if spec.kind in ("number", "integer"):
        try:
            number = float(text)
        except ValueError:
            return spec.default
        if not math.isfinite(number):
            return spec.default
        if spec.minimum is not None:
            number = max(number, spec.minimum)
        if spec.maximum is not None:
            number = min(number, spec.maximum)
        return int(number) if spec.kind == "integer" else number
    return text


def _extra_value(extra: Mapping[str, Any], name: str) -> Any:
    """Read an extra saved by the UI form (``extra__schneider__x``) or written by hand (``x``)."""
    value = extra.get(name)
    if value in (None, ""):
        value = extra.get(f"extra__{CONN_TYPE}__{name}")
    return None if value == "" else value


class _Reader:
    """Parses one declared field at a time and raises errors that name the connection and the field."""

    def __init__(self, conn_id: str, extra: Mapping[str, Any]):
        self.conn_id = conn_id
        self.extra = extra

    def fail(self, field_name: str, problem: str) -> SchneiderConfigError:
        return SchneiderConfigError(f"Connection '{self.conn_id}': field '{field_name}' {problem}")

    def raw(self, name: str) -> Any:
        return _extra_value(self.extra, name)

    def get(self, name: str) -> Any:
        """The field's value, parsed by its declared kind and bounds; when empty, its environment variable's
        (if it declares one) or its default."""
        spec = FIELDS_BY_NAME[name]
        value = self.raw(name)
        if isinstance(value, str):
            value = value.strip() or None
        if value is None:
            return _from_environment(spec)
        if spec.kind == "boolean":
            return self._boolean(spec, value)
        if spec.kind in ("number", "integer"):
            return self._number(spec, value)
        if not isinstance(value, str):
            raise self.fail(name, f"must be a string, got {type(value).__name__}")
        if spec.choices:
            value = value.lower()
            if value not in spec.choices:
                raise self.fail(name, f"is {value!r}; choose one of {', '.join(spec.choices)}")
        return value

    def _number(self, spec: ConnField, value: Any) -> float | int:
        shown = "***" if spec.secret else repr(value)
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise self.fail(spec.name, f"must be a number, got {shown}") from None
        if not math.isfinite(number):
            raise self.fail(spec.name, f"must be a finite number, got {shown}")
        if spec.minimum is not None and number < spec.minimum:
            raise self.fail(spec.name, f"must be >= {spec.minimum:g}, got {shown}")
        if spec.maximum is not None and number > spec.maximum:
            raise self.fail(spec.name, f"must be <= {spec.maximum:g}, got {shown}")
        if spec.kind == "integer":
            if not number.is_integer():
                raise self.fail(spec.name, f"must be a whole number, got {shown}")
            return int(number)
        return number

    def _boolean(self, spec: ConnField, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise self.fail(spec.name, f"must be true or false, got {value!r}")


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _without_userinfo(url: str) -> str:
    """``url`` fit for an error message: any ``user:password@`` removed."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, tail = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rsplit("@", 1)[1]
    return f"{scheme}{sep}{authority}{slash}{tail}"


def _check_url(reader: _Reader, field_name: str, url: str) -> str:
    """Only https, except plain http to loopback (the emulator): a token must not cross a network in clear."""
    shown = _without_userinfo(url)
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a port that is not 0..65535
    except ValueError:
        raise reader.fail(field_name, f"is not a valid URL (bad port?): {shown!r}") from None
    if parts.username or parts.password:
        raise reader.fail(field_name, f"must not embed credentials: {shown!r}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise reader.fail(field_name, f"must be an absolute http(s) URL, got {shown!r}")
    if port == 0:
        raise reader.fail(field_name, f"has port 0: {shown!r}")
    if parts.query or parts.fragment or url.rstrip().endswith(("?", "#")):
        raise reader.fail(field_name, f"must not carry a query string or fragment, got {shown!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise reader.fail(field_name, f"uses plain http to non-loopback host {parts.hostname!r}; use https")
    return url.rstrip("/")


def _port(conn: Any, reader: _Reader) -> int | None:
    raw = conn.port
    if raw in (None, ""):
        return None
    try:
        if isinstance(raw, bool):
            raise ValueError
        port = int(str(raw).strip())
    except ValueError:
        raise reader.fail("port", f"must be a whole number 1..65535, got {raw!r}") from None
    if not 1 <= port <= 65535:
        raise reader.fail("port", f"must be 1..65535, got {port}")
    return port


def _api_base_url(conn: Any, reader: _Reader) -> str | None:
    """The API base URL from host (+ schema/port), in the style of Airflow's HttpHook.

    ``host`` may carry the scheme (``http://127.0.0.1:8080``) or the scheme may sit in ``schema``
    (URI form ``schneider://id:secret@127.0.0.1:8080/http``). Default scheme is https.
    """
    host = (conn.host or "").strip()
    port = _port(conn, reader)
    if not host:
        return None
    if "://" not in host:
        scheme = (conn.schema or "https").strip().lower()
        host = f"{scheme}://{host}"
    url = _check_url(reader, "host", host)
    parts = urlsplit(url)
    if port and not parts.port:
        url = f"{parts.scheme}://{parts.netloc}:{port}{parts.path}"
    return url


def _token_cache(reader: _Reader) -> tuple[str, ...]:
    raw = reader.raw("token_cache")
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
    raw = reader.get("ca_bundle")
    if raw is not None:
        if not os.path.isfile(raw):
            raise reader.fail("ca_bundle", f"must be the path of a readable CA bundle file, got {raw!r}")
        return str(raw)
    return bool(reader.get("verify_ssl"))


def _retry_policy(reader: _Reader) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=reader.get("retry_max_attempts"),
        backoff_initial=reader.get("retry_backoff_initial"),
        backoff_max=reader.get("retry_backoff_max"),
        max_total_wait=reader.get("retry_max_total_wait"),
        retry_after_cap=reader.get("retry_after_cap"),
    )


def settings_from_connection(conn: Any, *, overrides: Mapping[str, Any] | None = None) -> SchneiderSettings:
    """Validate an Airflow Connection (or anything with its attributes) into settings.

    ``overrides`` take precedence over the connection's extras (e.g. per-operator retry settings).
    """
    conn_id = conn.conn_id or DEFAULT_CONN_ID
    extra = dict(conn.extra_dejson or {})
    extra.update({k: v for k, v in (overrides or {}).items() if v is not None})
    reader = _Reader(conn_id, extra)

    environment = reader.get("environment")
    env_token_url, env_host = ENVIRONMENTS[environment]
    api_base_url = _api_base_url(conn, reader) or env_host

    token_url = reader.get("token_url")
    if token_url:
        token_url = _check_url(reader, "token_url", token_url)
    elif conn.host:
        # Schneider's token endpoint is ``{api host}/token`` in every environment.
        token_url = f"{api_base_url}/token"
    else:
        token_url = env_token_url

    api_key = reader.get("api_key")
    client_id = (conn.login or "").strip() or None
    client_secret = conn.password or None
    if not api_key:
        if not client_id:
            raise reader.fail("login", "(Client ID) is empty and no 'api_key' is set")
        if not client_secret:
            raise reader.fail("password", "(Client secret) is empty and no 'api_key' is set")

    connect_timeout = reader.get("connect_timeout")
    timeout = reader.get("timeout")
    attempt_timeout = reader.get("attempt_timeout") or connect_timeout + 2 * timeout
    return SchneiderSettings(
        conn_id=conn_id,
        api_base_url=api_base_url,
        token_url=token_url,
        client_id=client_id,
        client_secret=client_secret,
        api_key=api_key,
        scope=reader.get("scope"),
        client_auth=reader.get("client_auth"),
        environment=environment,
        connect_timeout=connect_timeout,
        timeout=timeout,
        attempt_timeout=attempt_timeout,
        max_response_bytes=reader.get("max_response_bytes"),
        max_pages=reader.get("max_pages"),
        verify=_verify(reader),
        max_concurrency=reader.get("max_concurrency"),
        client_max_in_flight=reader.get("client_max_in_flight"),
        slot_wait_timeout=reader.get("slot_wait_timeout"),
        max_calls_per_second=reader.get("max_calls_per_second"),
        adaptive_concurrency=reader.get("adaptive_concurrency"),
        page_size=reader.get("page_size"),
        token_cache=_token_cache(reader),
        token_cache_dir=reader.get("token_cache_dir") or os.environ.get(TOKEN_CACHE_DIR_ENV) or None,
        token_leeway=reader.get("token_leeway"),
        token_refresh_spread=reader.get("token_refresh_spread"),
        token_wait_timeout=reader.get("token_wait_timeout"),
        token_max_lifetime=reader.get("token_max_lifetime"),
        token_cluster_lease=reader.get("token_cluster_lease"),
        token_cluster_settle=reader.get("token_cluster_settle"),
        retry=_retry_policy(reader),
        test_path=reader.get("test_path"),
    )
