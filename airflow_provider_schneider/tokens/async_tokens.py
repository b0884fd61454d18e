"""Tokens for an event loop: the sync manager's tiers and cluster lease, one refresh at a time per loop.

Every call of the triggerer's clients asks :meth:`AsyncTokens.get`; almost always the manager's current
token is usable and the answer comes without a lock, a file or a thread. When it is not (once an hour per
client, or after a 401), one coroutine per loop takes the refresh, and it runs the manager's
:meth:`~.manager.TokenManager.get_token` in a passing thread: that path takes the host's ``flock``, reads
the cluster tier through Airflow's (blocking) Variable API and may wait on the cluster lease, none of which
may run on the event loop. The thread ends with the refresh, so a triggerer keeps no thread for tokens;
500 triggers waiting on a cold cache cost one token request.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from airflow_provider_schneider.client.responses import ErrorFields
from airflow_provider_schneider.redaction import register_secret
from airflow_provider_schneider.tokens.manager import TokenManager
from airflow_provider_schneider.tokens.token import Token, token_id

T = TypeVar("T")


async def in_passing_thread(work: Callable[[], T], name: str) -> T:
    """``work()`` in a thread of its own that ends with it (not the loop's executor, whose threads stay)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(outcome: tuple[bool, Any]) -> None:
        if done.done():  # the awaiting coroutine was cancelled
            return
        ok, value = outcome
        if ok:
            done.set_result(value)
        else:
            done.set_exception(value)

    def run() -> None:
        try:
            outcome: tuple[bool, Any] = (True, context.run(work))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:  # the loop closed meanwhile: nobody waits any more
            pass

    threading.Thread(target=run, name=name, daemon=True).start()
    return await done


class AsyncTokens:
    """A :class:`TokenManager` for coroutines: single flight per event loop, blocking work off the loop."""

    renews = True

    def __init__(self, manager: TokenManager):
        self.manager = manager
        self._flight: asyncio.Lock | None = None

    def _lock(self) -> asyncio.Lock:
        if self._flight is None:
            self._flight = asyncio.Lock()
        return self._flight

    async def get(self, *, replacing: Token | None = None) -> Token:
        token = self.manager.current(replacing=replacing)
        if token is None:
            async with self._lock():
                token = self.manager.current(replacing=replacing)
                if token is None:
                    token = await in_passing_thread(
                        lambda: self.manager.get_token(replacing=replacing), "schneider-token-refresh"
                    )
        register_secret(token.access_token)
        return token

    async def invalidate(self, token: Token) -> float:
        """:meth:`TokenManager.invalidate` (it takes the host lock and writes the shared tiers)."""
        return await in_passing_thread(lambda: self.manager.invalidate(token), "schneider-token-invalidate")


class _Used:
    """What one call of the asynchronous client used: its token, and after a 401 the rejected one."""

    __slots__ = ("token", "rejected", "since")

    def __init__(self) -> None:
        self.token: Token | None = None
        self.rejected: Token | None = None
        self.since: float | None = None


class AsyncBearerAuth:
    """:class:`~.bearer.BearerTokenAuth` for the asynchronous client (:class:`~..client.auth.AsyncAuth`)."""

    def __init__(self, tokens: AsyncTokens):
        self.tokens = tokens

    def start(self) -> _Used:
        return _Used()

    async def apply(self, state: _Used, query: list[tuple[str, str]], headers: dict[str, str]) -> None:
        token = await self.tokens.get(replacing=state.rejected)
        state.token = token
        headers["Authorization"] = f"Bearer {token.access_token}"

    async def after_401(self, state: _Used, fields: ErrorFields, replayed: bool) -> str | None:
        if fields.api_key_rejected:
            return f"the gateway asks for an API key ({fields.code}); set the connection's 'api_key'"
        token = state.token
        if replayed:
            rejected, since = state.rejected, state.since
            fresh = (
                token is not None
                and rejected is not None
                and since is not None
                and (token.issued_at >= since or token.replaces == token_id(rejected))
            )
            if fresh:
                return "a freshly issued token was rejected"
            return "the token was rejected, and so was the replay, whose token was not issued after that rejection"
        if token is None:
            return "the token was rejected"
        seen = time.time()
        since = await self.tokens.invalidate(token)
        state.rejected, state.since = token, min(seen, since)
        return None
