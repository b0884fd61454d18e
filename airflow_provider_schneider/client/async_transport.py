"""One HTTP exchange on aiohttp with the guarantees of :mod:`.transport`: a total deadline, a body cap.

The asynchronous twin of :func:`.transport.exchange` for the triggerer: no thread, no watchdog (the
deadline is ``asyncio.wait_for`` around the whole exchange, so a dripping body ends on time), the same
proxies and CA bundle the blocking client reads from the environment (:mod:`.environment`), never
``~/.netrc``, never a redirect followed.
"""

from __future__ import annotations

import asyncio
import functools
import os
import ssl
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

from airflow_provider_schneider.client.environment import environment_for
from airflow_provider_schneider.client.transport import (
    ERROR_BODY_LIMIT,
    READ_CHUNK,
    USER_AGENT,
    BodyTooLarge,
    CappedBody,
    Exchange,
    TransportError,
    tls_hint,
)


@functools.lru_cache(maxsize=16)
def ssl_for(verify: bool | str) -> ssl.SSLContext | bool:
    """What aiohttp needs for requests' ``verify``: certifi's bundle by default (as requests), a CA file or
    folder, or no verification."""
    if verify is False:
        return False
    if verify is True:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


def open_session(connections: int, connect_timeout: float, read_timeout: float) -> aiohttp.ClientSession:
    """A pooled session that never reads the environment by itself (proxies come per call, as requested)."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max(1, connections)),
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=read_timeout),
        trust_env=False,
        raise_for_status=False,
    )


def describe(exc: BaseException) -> TransportError:
    """A secret-free reason (aiohttp messages may carry the URL and its query) and whether to retry."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TransportError(
            "TLS certificate verification failed (for a private CA set the connection's 'ca_bundle')", transient=False
        )
    if isinstance(exc, aiohttp.ClientSSLError):
        return TransportError("TLS error", transient=True)
    if isinstance(exc, aiohttp.ClientProxyConnectionError):
        return TransportError("proxy error", transient=True)
    if isinstance(exc, (aiohttp.ServerTimeoutError, asyncio.TimeoutError)):
        return TransportError("read timeout", transient=True)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return TransportError("connection broken mid-body (truncated response)", transient=True)
    if isinstance(exc, (aiohttp.ClientConnectionError, aiohttp.ClientOSError)):
        return TransportError("connection failed or was reset", transient=True)
    if isinstance(exc, aiohttp.ClientResponseError):
        return TransportError("malformed HTTP answer", transient=True)
    return TransportError(type(exc).__name__, transient=False)


async def _read_body(response: aiohttp.ClientResponse, limit: int, *, strict: bool) -> bytes:
    body = CappedBody(response.headers, limit, strict=strict)
    async for chunk in response.content.iter_chunked(READ_CHUNK):
        if body.add(chunk):
            break
    return body.value()


async def _exchange_once(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    max_bytes: int,
    params: Sequence[tuple[str, str]],
    headers: dict[str, str],
    json: Any,
    verify: bool | str,
) -> Exchange:
    started = time.monotonic()
    proxies, verify = environment_for(url, verify)
    proxy = proxies.get(url.split(":", 1)[0]) or proxies.get("all")
    async with session.request(
        method,
        url,
        params=list(params),
        headers=headers,
        json=json,
        allow_redirects=False,
        proxy=proxy,
        ssl=ssl_for(verify),
    ) as response:
        success = 200 <= response.status < 300
        body = await _read_body(response, max_bytes if success else min(max_bytes, ERROR_BODY_LIMIT), strict=success)
        return Exchange(response.status, response.headers, body, time.monotonic() - started)


async def exchange(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    deadline: float,
    max_bytes: int,
    params: Sequence[tuple[str, str]] = (),
    headers: dict[str, str] | None = None,
    json: Any = None,
    verify: bool | str = True,
) -> Exchange:
    """Send one request and read its whole answer within ``deadline`` seconds and ``max_bytes``.

    Raises :class:`BodyTooLarge` for a 2xx body over the cap, :class:`TransportError` for anything else
    that went wrong on the wire (the deadline included).
    """
    try:
        return await asyncio.wait_for(
            _exchange_once(
                session,
                method,
                url,
                max_bytes=max_bytes,
                params=params,
                headers=headers or {},
                json=json,
                verify=verify,
            ),
            deadline,
        )
    except BodyTooLarge:
        raise
    except asyncio.TimeoutError:
        raise TransportError(
            f"no complete answer within the {deadline:g}s attempt deadline ('attempt_timeout')", transient=True
        ) from None
    except aiohttp.ClientError as exc:
        error = describe(exc)
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            error = TransportError(error.reason + tls_hint(url), transient=False)
        raise error from None
