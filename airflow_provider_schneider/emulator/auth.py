"""OAuth 2.0 client-credentials token endpoint and API-call authentication.

Both client-authentication styles Schneider documents are accepted (HTTP Basic, or ``client_id`` /
``client_secret`` form fields); API calls accept a live bearer token or, if enabled, the ``apikey`` query
parameter, which is removed from the query so it never acts as a business filter. The ``apigee`` profile
answers in the shapes of :mod:`.apigee` instead of RFC 6749's and Schneider's.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
from urllib.parse import parse_qs, unquote_plus

from . import apigee
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


def _first(form: dict[str, list[str]], name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def token_endpoint(state: EmulatorState, req: Request) -> Response:
    """``POST /token``: issue an opaque bearer token for valid client credentials."""
    cfg = state.config
    is_apigee = cfg.profile == apigee.PROFILE
    if req.method != "POST":
        if is_apigee:
            raise apigee.token_error(405, "invalid_request", "Use POST on the token endpoint", {"Allow": "POST"})
        raise _oauth_error(405, "invalid_request", "Use POST on the token endpoint", {"Allow": "POST"})
    form = parse_qs(req.body.decode("utf-8", "replace"), keep_blank_values=True)
    basic = _basic_credentials(req.headers.get("Authorization"))
    client_id, secret = basic or (_first(form, "client_id"), _first(form, "client_secret"))
    if not _client_ok(state, client_id, secret):
        if is_apigee:
            raise apigee.token_error(401, "invalid_client", "ClientId is Invalid")
        raise _oauth_error(
            401, "invalid_client", "Client authentication failed", {"WWW-Authenticate": 'Basic realm="token"'}
        )
    grant = _first(form, "grant_type")
    if grant != "client_credentials":
        if is_apigee:
            message = f"Unsupported grant type : {grant}" if grant else "Required param : grant_type"
            raise apigee.token_error(400, "invalid_request", message)
        raise _oauth_error(400, "unsupported_grant_type", f"grant_type must be client_credentials, got {grant!r}")
    scope = _first(form, "scope")
    if cfg.required_scope is not None and scope != cfg.required_scope:
        if is_apigee:
            raise apigee.token_error(400, "invalid_scope", f"Invalid scope : {scope or ''}")
        raise _oauth_error(400, "invalid_scope", f"scope must be {cfg.required_scope!r}, got {scope!r}")
    token = state.tokens.issue(cfg.token_lifetime)
    state.stats.token_issued()
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if is_apigee:
        return Response(200, apigee.token_body(token, cfg.client_id, scope, cfg.token_lifetime), headers)
    body: dict[str, object] = {"access_token": token, "token_type": cfg.token_type_style}
    lifetime = int(math.ceil(cfg.token_lifetime))
    if cfg.expires_in_style == "int":
        body["expires_in"] = lifetime
    elif cfg.expires_in_style == "string":
        body["expires_in"] = str(lifetime)
    if scope:
        body["scope"] = scope
    return Response(200, body, headers)


def _unauthorized(state: EmulatorState, code: str) -> ApiError:
    if state.config.profile == apigee.PROFILE:
        return apigee.auth_error(code)
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
            raise _unauthorized(state, "INVALID_API_KEY")
    raise _unauthorized(state, bearer_problem or "INVALID_TOKEN")
