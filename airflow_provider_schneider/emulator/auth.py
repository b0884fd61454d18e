"""OAuth 2.0 client-credentials token endpoint and API-call authentication.

Both client-authentication styles of the facts file are accepted (HTTP Basic, or ``client_id`` /
``client_secret`` form fields); API calls accept a live bearer token or, if enabled, the ``apikey`` query
parameter, which is removed from the query so it never acts as a business filter.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from urllib.parse import parse_qs, unquote_plus

from .errors import ApiError
from .routing import Request, Response
from .state import EmulatorState

_USER_MESSAGES = {
    "INVALID_TOKEN": "The access token is missing, unknown or revoked",
    "EXPIRED_TOKEN": "The access token has expired",
    "INVALID_API_KEY": "The API key is invalid",
}


def _oauth_error(status: int, error: str, description: str, headers: dict[str, str] | None = None) -> ApiError:
    body = {"error": error, "error_description": description}
    return ApiError(status, error, description, headers=headers, body=body)


def _same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def _basic_credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _client_ok(state: EmulatorState, client_id: str | None, secret: str | None) -> bool:
    cfg = state.config
    candidates = [(client_id, secret)]
    if client_id is not None and secret is not None:  # RFC 6749 2.3.1: Basic values may be form-encoded
        candidates.append((unquote_plus(client_id), unquote_plus(secret)))
    return any(_same(i, cfg.client_id) and _same(s, cfg.client_secret) for i, s in candidates)


def token_endpoint(state: EmulatorState, req: Request) -> Response:
    """``POST /token``: issue an opaque bearer token for valid client credentials."""
    if req.method != "POST":
        raise _oauth_error(405, "invalid_request", "Use POST on the token endpoint", {"Allow": "POST"})
    form = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
    basic = _basic_credentials(req.headers.get("Authorization"))
    client_id, secret = basic or (
        (form.get("client_id") or [None])[0],
        (form.get("client_secret") or [None])[0],
    )
    if not _client_ok(state, client_id, secret):
        raise _oauth_error(
            401, "invalid_client", "Client authentication failed", {"WWW-Authenticate": 'Basic realm="token"'}
        )
    grant = (form.get("grant_type") or [None])[0]
    if grant != "client_credentials":
        raise _oauth_error(400, "unsupported_grant_type", f"grant_type must be client_credentials, got {grant!r}")
    cfg = state.config
    token = state.tokens.issue(cfg.token_lifetime)
    state.stats.token_issued()
    body: dict[str, object] = {"access_token": token, "token_type": cfg.token_type_style}
    lifetime = int(math.ceil(cfg.token_lifetime))
    if cfg.expires_in_style == "int":
        body["expires_in"] = lifetime
    elif cfg.expires_in_style == "string":
        body["expires_in"] = str(lifetime)
    scope = (form.get("scope") or [None])[0]
    if scope:
        body["scope"] = scope
    return Response(200, body, {"Cache-Control": "no-store", "Pragma": "no-cache"})


def _unauthorized(code: str) -> ApiError:
    return ApiError(
        401,
        code,
        _USER_MESSAGES[code],
        f"{code}: obtain a token from POST /token and send 'Authorization: Bearer <token>'",
        headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{code}"'},
    )


def authenticate(state: EmulatorState, req: Request) -> None:
    """Accept a live bearer token or a valid ``apikey``; strip ``apikey`` from the query either way."""
    api_keys = req.query.pop("apikey", None)
    header = req.headers.get("Authorization") or ""
    bearer_problem = None
    if header[:7].lower() == "bearer ":
        bearer_problem = state.tokens.problem(header[7:].strip())
        if bearer_problem is None:
            return
    if api_keys is not None:
        cfg = state.config
        if cfg.accept_api_key and _same(api_keys[0], cfg.api_key):
            return
        if bearer_problem is None:
            raise _unauthorized("INVALID_API_KEY")
    raise _unauthorized(bearer_problem or "INVALID_TOKEN")
