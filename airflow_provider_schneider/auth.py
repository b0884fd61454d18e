"""OAuth 2.0 client-credentials flow against Schneider's token endpoint.

Strict in what it sends (POST, form body, ``grant_type=client_credentials``, Basic or body client auth),
liberal in what it accepts (``expires_in`` as number, string or missing; any ``token_type`` casing).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from airflow_provider_schneider.exceptions import SchneiderAuthError, SchneiderTokenEndpointError
from airflow_provider_schneider.redaction import register_secret
from airflow_provider_schneider.responses import error_fields
from airflow_provider_schneider.retrying import (
    RETRYABLE_STATUSES,
    TRANSIENT_TRANSPORT_ERRORS,
    TransientFailure,
    call_with_retries,
    describe_transport_error,
    parse_retry_after,
)
from airflow_provider_schneider.settings import SchneiderSettings

log = logging.getLogger(__name__)

#: Schneider documents one-hour tokens; used when a response omits ``expires_in``.
DEFAULT_LIFETIME = 3600.0
#: A leeway never eats more than this share of a token's life, so short-lived tokens are still used.
MAX_LEEWAY_SHARE = 0.25


class NoExtraAuth(requests.auth.AuthBase):
    """Sends only the credentials we set: with ``trust_env`` on and no ``auth``, requests would add a
    ``~/.netrc`` login as Basic auth, replacing the bearer header or leaking that login to the gateway."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


NO_EXTRA_AUTH = NoExtraAuth()


@dataclass(frozen=True)
class Token:
    """A bearer token and when it stops being valid (epoch seconds). ``repr`` hides the token."""

    access_token: str = field(repr=False)
    expires_at: float
    lifetime: float
    token_type: str = "Bearer"

    def is_fresh(self, leeway: float, now: float | None = None, *, spread: float = 0.0) -> bool:
        """True while the token may start a request: ``now < expires_at - leeway`` (leeway capped at a share
        of the lifetime), the margin stretched by ``spread`` (e.g. 0.3 = 30 % earlier)."""
        now = time.time() if now is None else now
        return now < self.expires_at - min(leeway, self.lifetime * MAX_LEEWAY_SHARE) * (1.0 + spread)

    def to_json(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "expires_at": self.expires_at,
            "lifetime": self.lifetime,
            "token_type": self.token_type,
        }

    @classmethod
    def from_json(cls, data: Any) -> Token | None:
        """Rebuild a cached token; ``None`` for anything malformed (a cache entry is never trusted blindly)."""
        try:
            token = cls(
                access_token=str(data["access_token"]),
                expires_at=float(data["expires_at"]),
                lifetime=float(data["lifetime"]),
                token_type=str(data.get("token_type") or "Bearer"),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        plausible = math.isfinite(token.expires_at) and math.isfinite(token.lifetime) and token.lifetime > 0
        return token if token.access_token and plausible else None


def parse_token_response(body: bytes, *, conn_id: str, token_url: str, now: float | None = None) -> Token:
    """Turn a 200 token response into a :class:`Token`, or raise a clear error."""
    where = f"Schneider connection '{conn_id}': token endpoint {token_url}"
    try:
        data = json.loads(body)
    except ValueError:
        snippet = "an HTML page" if body.lstrip()[:1] == b"<" else "invalid JSON"
        raise SchneiderTokenEndpointError(f"{where} returned {snippet} instead of a JSON token") from None
    if not isinstance(data, dict):
        raise SchneiderTokenEndpointError(f"{where} returned JSON that is not an object")
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token.strip():
        keys = ", ".join(sorted(map(str, data))) or "none"
        raise SchneiderTokenEndpointError(f"{where} returned no 'access_token' (fields: {keys})")
    register_secret(access_token)
    token_type = data.get("token_type") or "Bearer"
    if not isinstance(token_type, str) or token_type.strip().lower() != "bearer":
        raise SchneiderTokenEndpointError(f"{where} returned unsupported token_type {token_type!r}")
    lifetime = _lifetime(data.get("expires_in"), where)
    issued = time.time() if now is None else now
    return Token(access_token=access_token.strip(), expires_at=issued + lifetime, lifetime=lifetime)


def _lifetime(raw: Any, where: str) -> float:
    if raw is None or raw == "":
        return DEFAULT_LIFETIME
    try:
        if isinstance(raw, bool):
            raise ValueError
        lifetime = float(raw)
    except (TypeError, ValueError):
        log.warning("%s sent unreadable expires_in %r; assuming %ds", where, raw, DEFAULT_LIFETIME)
        return DEFAULT_LIFETIME
    if not math.isfinite(lifetime) or lifetime <= 0:
        log.warning("%s sent expires_in %r; assuming %ds", where, raw, DEFAULT_LIFETIME)
        return DEFAULT_LIFETIME
    return lifetime


def request_token(settings: SchneiderSettings, session: requests.Session) -> Token:
    """POST the client credentials and return a fresh token.

    400/401/403 mean the credentials (or the grant) were rejected: raised at once, never retried, because
    repeated failures can lock the technical user. 429, 5xx and transport errors are retried.
    """
    if not settings.client_id or not settings.client_secret:
        raise SchneiderAuthError(f"Schneider connection '{settings.conn_id}': no client id/secret to request a token")
    form = {"grant_type": "client_credentials"}
    if settings.scope:
        form["scope"] = settings.scope
    auth: tuple[str, str] | requests.auth.AuthBase = NO_EXTRA_AUTH  # never a ~/.netrc login
    if settings.client_auth == "body":
        form.update(client_id=settings.client_id, client_secret=settings.client_secret)
    else:
        auth = (settings.client_id, settings.client_secret)
    where = f"Schneider connection '{settings.conn_id}': token endpoint {settings.token_url}"

    def attempt() -> Token:
        # Expiry counts from when the request left: the gateway's clock started before we got the answer,
        # so a slow token endpoint must not make us believe the token lives longer than it does.
        sent_at = time.time()
        try:
            response = session.post(
                settings.token_url,
                data=form,
                auth=auth,
                headers={"Accept": "application/json"},
                timeout=(settings.connect_timeout, settings.timeout),
                verify=settings.verify,
                allow_redirects=False,
            )
        except TRANSIENT_TRANSPORT_ERRORS as exc:
            reason = describe_transport_error(exc)
            raise TransientFailure(
                SchneiderTokenEndpointError(f"{where} unreachable: {reason}"), reason=reason
            ) from None
        status = response.status_code
        if status == 200:
            return parse_token_response(
                response.content, conn_id=settings.conn_id, token_url=settings.token_url, now=sent_at
            )
        detail = error_fields(response, settings.secrets).summary()
        if status in (400, 401, 403):
            raise SchneiderAuthError(
                f"{where} rejected the client credentials (HTTP {status}: {detail}). "
                "Check the Client ID / Client secret / environment of the connection; not retried."
            )
        error = SchneiderTokenEndpointError(f"{where} failed with HTTP {status}: {detail}")
        if status in RETRYABLE_STATUSES:
            raise TransientFailure(
                error, retry_after=parse_retry_after(response.headers.get("Retry-After")), reason=f"HTTP {status}"
            )
        raise error

    return call_with_retries(attempt, policy=settings.retry, log=log, describe=f"token request ({where})")
