"""The asynchronous twin of :mod:`.http`: the same calls, errors and guarantees on aiohttp, for triggers.

Same connection settings; the same answers read the same way (:mod:`.answers`); retries with the same
policy, back-off, ``Retry-After`` and budget (:func:`.retrying.async_call_with_retries`); a total deadline
and a body cap per attempt (:mod:`.async_transport`); credentials through an :class:`~.auth.AsyncAuth`
(bearer tokens from the shared tiers with one refresh-and-replay after a 401, or the API key as
``apikey``). Calls in flight are capped twice: by the client (an ``asyncio.Semaphore``) and by the host's
share of the client (:mod:`.host`, the slot files the blocking client's processes use too), whose slots are
taken without blocking the loop. A throttle's wait becomes the host-wide cool-down, as in the blocking client.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from airflow_provider_schneider import metrics
from airflow_provider_schneider.client import async_transport
from airflow_provider_schneider.client.answers import IDEMPOTENT_METHODS, Answers
from airflow_provider_schneider.client.auth import AsyncAuth
from airflow_provider_schneider.client.host import HostCalls, SlotWaitTimeout, client_folder
from airflow_provider_schneider.client.request import ApiRequest
from airflow_provider_schneider.client.retrying import TransientFailure, async_call_with_retries
from airflow_provider_schneider.client.transport import BodyTooLarge, Exchange, TransportError
from airflow_provider_schneider.config.settings import SchneiderSettings
from airflow_provider_schneider.redaction import install_log_filters

log = logging.getLogger(__name__)

_LONGEST_SLOT_POLL = 0.01


class AsyncSchneiderClient:
    """One aiohttp session for one connection in one event loop; up to ``max_in_flight`` calls at once.

    :param auth: the connection's credentials (a bearer token source, or the API key).
    :param max_in_flight: calls this client runs at once (the triggerer shares one client between all its
        triggers of a connection, so it gets the host's ``client_max_in_flight``, not a task's
        ``max_concurrency``).
    """

    def __init__(self, settings: SchneiderSettings, *, auth: AsyncAuth, max_in_flight: int):
        install_log_filters()
        self.settings = settings
        self.answers = Answers(settings)
        self.auth = auth
        self.max_in_flight = max(1, max_in_flight)
        client = settings.client_id or f"apikey:{settings.api_key}"
        folder = client_folder(settings.api_base_url, client, settings.token_cache_dir)
        self.host = HostCalls.open(folder, settings.client_max_in_flight)
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: asyncio.Semaphore | None = None
        self._paused_until = 0.0
        #: Calls in flight now and the most seen at once (tests and benchmarks read them).
        self.in_flight = self.peak_in_flight = 0

    # -- public -------------------------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retry: bool | None = None,
        page: int | None = None,
    ) -> Any:
        """Send one call and return its parsed JSON (``None`` for an empty body); GETs are retried."""
        call = self.answers.call(method, path, params, json, page)
        should_retry = call.method in IDEMPOTENT_METHODS if retry is None else retry
        if not should_retry:
            try:
                return await self._send_authenticated(call)
            except TransientFailure as failure:
                raise failure.error from None

        async def attempt() -> Any:
            return await self._send_authenticated(call)

        return await async_call_with_retries(
            attempt,
            policy=self.settings.retry,
            log=log,
            what=call.label,
            on_wait=self._note_wait,
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- credentials ----------------------------------------------------------------------------------------

    async def _send_authenticated(self, call: ApiRequest) -> Any:
        """Send ``call``; on a 401 the auth object decides: replay once with fresh credentials, or say why."""
        await self._wait_if_paused()  # before the token lookup: a long throttle pause must not age the token
        state = self.auth.start()
        answer = await self._send(call, state)
        replayed = False
        while answer.status == 401:
            fields = self.answers.fields(answer)
            why = await self.auth.after_401(state, fields, replayed)
            if why is None and replayed:  # one replay at most, whatever an auth object says
                why = "the credentials were rejected again after a replay"
            if why is not None:
                raise self.answers.permission(answer, fields, call, why)
            log.info("HTTP 401 (%s) on %s: refreshing the token once and replaying", fields.summary(), call.label)
            replayed = True
            answer = await self._send(call, state)
        return self.answers.parse(answer, call)

    # -- governance -------------------------------------------------------------------------------------------

    def _note_wait(self, seconds: float, failure: TransientFailure) -> None:
        """A throttle pauses every call of this client on the host (the blocking clients' cool-down too)."""
        metrics.incr("http.retries")
        if not failure.throttled:
            return
        metrics.incr("http.throttled")
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        if self.host is not None:
            self.host.cool_down(seconds)

    async def _wait_if_paused(self) -> None:
        delay = self._paused_until - time.monotonic()
        if self.host is not None:
            delay = max(delay, self.host.cool_down_left(time.time(), self.settings.retry.retry_after_cap))
        if delay > 0:
            await asyncio.sleep(delay)

    async def _host_slot(self, call: ApiRequest) -> int | None:
        """One of the host's slots for this client, polled without blocking the loop; ``None`` when off."""
        host = self.host
        if host is None or host.size <= 0:
            return None
        index = host.try_take()
        deadline = time.monotonic() + self.settings.slot_wait_timeout
        pause = 0.001
        while index is None:
            if time.monotonic() > deadline:
                raise SlotWaitTimeout(
                    f"{self.settings.conn_id}: {call.label}: all {host.size} calls this client may have in flight "
                    f"on this host stayed busy for {self.settings.slot_wait_timeout:g} s (client_max_in_flight; "
                    "other tasks of this host use the same client)"
                )
            await asyncio.sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, _LONGEST_SLOT_POLL)
            index = host.try_take()
        return index

    # -- the wire -------------------------------------------------------------------------------------------------

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            settings = self.settings
            self._session = async_transport.open_session(self.max_in_flight, settings.connect_timeout, settings.timeout)
        return self._session

    async def _send(self, call: ApiRequest, state: Any) -> Exchange:
        settings = self.settings
        await self._wait_if_paused()
        if self._in_flight is None:
            self._in_flight = asyncio.Semaphore(self.max_in_flight)
        query = list(call.query)
        headers: dict[str, str] = {}
        await self.auth.apply(state, query, headers)
        async with self._in_flight:
            slot = await self._host_slot(call)
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                answer = await async_transport.exchange(
                    self._open(),
                    call.method,
                    call.url,
                    deadline=settings.attempt_timeout,
                    max_bytes=settings.max_response_bytes,
                    params=query,
                    headers=headers,
                    json=call.body,
                    verify=settings.verify,
                )
            except (TransportError, BodyTooLarge) as exc:
                raise self.answers.wire_failure(exc, call) from None
            finally:
                self.in_flight -= 1
                if slot is not None and self.host is not None:
                    self.host.release(slot)
        log.debug("%s %s -> HTTP %s in %.0f ms", call.method, call.path, answer.status, answer.elapsed * 1e3)
        metrics.http_request(answer.status, answer.elapsed)
        return answer
