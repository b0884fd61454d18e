"""OAuth 2.0 client-credentials flow against Schneider's token endpoint.

Strict in what it sends (POST, form body, ``grant_type=client_credentials``, Basic or body client auth),
liberal in what it accepts: any ``token_type`` spelling (Apigee says ``BearerToken``; the token is always
sent as ``Bearer``), ``expires_in`` as number, numeric string or missing, extra fields ignored, errors in
RFC 6749 (``error``) or Apigee (``ErrorCode``) shape.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import requests

from airflow_provider_schneider.client.responses import error_fields, is_html, parse_json
from airflow_provider_schneider.client.retrying import (
    RETRYABLE_STATUSES,
    TransientFailure,
    call_with_retries,
    parse_retry_after,
)
from airflow_provider_schneider.client.transport import BodyTooLarge, TransportError, exchange
from airflow_provider_schneider.config.settings import SchneiderSettings
from airflow_provider_schneider.exceptions import SchneiderAuthError, SchneiderTokenEndpointError
from airflow_provider_schneider.process import STATE
from airflow_provider_schneider.redaction import register_secret
from airflow_provider_schneider.tokens.client_secret import ClientSecretBasic, ClientSecretPost
from airflow_provider_schneider.tokens.token import DEFAULT_LIFETIME, Token

log = logging.getLogger(__name__)

#: A token response is small; more than this is not a token.
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024
#: Portal's Postman recipe for the token request.
PORTAL_SCOPE = "all"


def _warn_token_type(token_type: object, where: str) -> None:
    """Warn once per process and value about a ``token_type`` that does not say bearer (still sent as one)."""
    if token_type is None or (isinstance(token_type, str) and token_type.strip().lower().startswith("bearer")):
        return
    shown = repr(token_type)[:40]
    if not STATE.say_once(f"token_type {shown}"):
        return
    log.warning("%s returned token_type %s; using the token as a Bearer token anyway", where, shown)


def parse_token_response(
    body: bytes,
    *,
    conn_id: str,
    token_url: str,
    now: float | None = None,
    max_lifetime: float = 86400.0,
) -> Token:
    """Turn a 200 token response into a :class:`Token`, or raise a clear error."""
    where = f"Schneider connection '{conn_id}': token endpoint {token_url}"
    try:
        data = parse_json(body)
    except ValueError:
        snippet = "an HTML page" if is_html("", body) else "invalid JSON"
        raise SchneiderTokenEndpointError(f"{where} returned {snippet} instead of a JSON token") from None
    if not isinstance(data, dict):
        raise SchneiderTokenEndpointError(f"{where} returned JSON that is not an object")
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token.strip():
        keys = ", ".join(sorted(map(str, data))[:30]) or "none"
        raise SchneiderTokenEndpointError(f"{where} returned no 'access_token' (fields: {keys})")
    access_token = access_token.strip()
    register_secret(access_token)
    _warn_token_type(data.get("token_type"), where)
    lifetime = _lifetime(data.get("expires_in"), where, max_lifetime)
    issued = time.time() if now is None else now
    return Token(access_token=access_token, expires_at=issued + lifetime, lifetime=lifetime)


def _lifetime(raw: Any, where: str, max_lifetime: float) -> float:
    """``expires_in`` as seconds: number or numeric string; missing or unreadable means the documented hour,
    an implausibly long one is capped (a gateway bug must not pin a token in the cache for years)."""
    if raw is None or raw == "":
        return DEFAULT_LIFETIME
    try:
        if isinstance(raw, bool):
            raise ValueError
        lifetime = float(raw.strip() if isinstance(raw, str) else raw)
    except (TypeError, ValueError, OverflowError):
        log.warning("%s sent unreadable expires_in %r; assuming %ds", where, str(raw)[:40], DEFAULT_LIFETIME)
        return DEFAULT_LIFETIME
    if not math.isfinite(lifetime) or lifetime <= 0:
        log.warning("%s sent expires_in %r; assuming %ds", where, str(raw)[:40], DEFAULT_LIFETIME)
        return DEFAULT_LIFETIME
    if lifetime > max_lifetime:
        log.warning(
            "%s sent expires_in %.0fs; capping it to %.0fs (the connection's 'token_max_lifetime')",
            where,
            lifetime,
            max_lifetime,
        )
        return max_lifetime
    return lifetime


def _rejection(settings: SchneiderSettings, status: int, code: str | None, summary: str) -> str:
    """What was rejected and what to do: a scope problem gets the scope hint, anything else the credentials'."""
    what = f"(HTTP {status}: {summary})."
    if "scope" in f"{code or ''} {summary}".lower():
        if settings.scope:
            return (
                f"rejected the scope {what} Check the connection's 'scope' field (now {settings.scope!r}); not retried."
            )
        return (
            f"rejected the token request {what} It wants a scope: set the connection's 'scope' field to the value "
            f"the API portal shows for your application (its Postman recipe uses {PORTAL_SCOPE!r}); not retried."
        )
    return (
        f"rejected the client credentials {what} Check the Client ID / Client secret / environment of the "
        "connection; not retried."
    )


def request_token(settings: SchneiderSettings, session: requests.Session) -> Token:
    """POST the client credentials and return a fresh token.

    400/401/403 mean the credentials (or the grant) were rejected: raised at once, never retried, because
    repeated failures can lock the technical user. 429, 5xx, transport errors and deadline hits are retried.
    """
    if not settings.client_id or not settings.client_secret:
        raise SchneiderAuthError(f"Schneider connection '{settings.conn_id}': no client id/secret to request a token")
    form = {"grant_type": "client_credentials"}
    if settings.scope:
        form["scope"] = settings.scope
    client_auth: requests.auth.AuthBase = (
        ClientSecretPost(settings.client_id, settings.client_secret)
        if settings.client_auth == "body"
        else ClientSecretBasic(settings.client_id, settings.client_secret)
    )
    where = f"Schneider connection '{settings.conn_id}': token endpoint {settings.token_url}"

    def attempt() -> Token:
        # Expiry counts from when the request left: the gateway's clock started before we got the answer,
        # so a slow token endpoint must not make us believe the token lives longer than it does.
        sent_at = time.time()
        try:
            answer = exchange(
                session,
                "POST",
                settings.token_url,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.timeout,
                deadline=settings.attempt_timeout,
                max_bytes=min(settings.max_response_bytes, MAX_TOKEN_RESPONSE_BYTES),
                data=form,
                auth=client_auth,
                headers={"Accept": "application/json"},
                verify=settings.verify,
            )
        except TransportError as exc:
            error = SchneiderTokenEndpointError(f"{where} unreachable: {exc.reason}")
            if exc.transient:
                raise TransientFailure(error, reason=exc.reason) from None
            raise error from None
        except BodyTooLarge as exc:
            raise SchneiderTokenEndpointError(f"{where}: {exc}") from None
        status = answer.status
        if status == 200:
            return parse_token_response(
                answer.body,
                conn_id=settings.conn_id,
                token_url=settings.token_url,
                now=sent_at,
                max_lifetime=settings.token_max_lifetime,
            )
        fields = error_fields(answer.content_type, answer.body, settings.secrets)
        retry_after = parse_retry_after(answer.headers.get("Retry-After"))
        if status in (400, 401, 403) and not fields.throttled:
            raise SchneiderAuthError(f"{where} {_rejection(settings, status, fields.code, fields.summary())}")
        error = SchneiderTokenEndpointError(f"{where} failed with HTTP {status}: {fields.summary()}")
        if status in RETRYABLE_STATUSES or fields.throttled:
            raise TransientFailure(
                error, retry_after=retry_after, reason=f"HTTP {status}", status=status, throttled=fields.throttled
            )
        raise error

    return call_with_retries(attempt, policy=settings.retry, log=log, what=f"token request ({where})")
