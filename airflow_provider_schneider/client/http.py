"""Authenticated, retried, concurrency-capped HTTP calls to Schneider APIs, with errors mapped to one type.

Each attempt applies the *current* credentials through the client's ``auth`` object (a retry never
replays a stale Authorization header); after a 401 the auth object decides whether one replay is worth it
(a bearer token: invalidate exactly the token used, refresh, replay once). Every attempt has a total
deadline and a body cap (:mod:`transport`).

Calls are governed at three levels: the client's adaptive limit (:mod:`.pacing`: at most ``max_concurrency``
in flight, fewer and paced after a throttle), then the host's share of the client (:mod:`.host`: a cool-down
after a throttle, an optional calls-per-second pace, and at most ``client_max_in_flight`` calls in flight
across every process of the host), then the socket.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import requests

from airflow_provider_schneider import metrics
from airflow_provider_schneider.client.answers import IDEMPOTENT_METHODS, Answers, clean_params
from airflow_provider_schneider.client.auth import ApiAuth
from airflow_provider_schneider.client.cancellation import cancellable_sleep
from airflow_provider_schneider.client.host import HostCalls, client_folder
from airflow_provider_schneider.client.pacing import AdaptiveLimit, LocalPace
from airflow_provider_schneider.client.request import ApiRequest
from airflow_provider_schneider.client.retrying import TransientFailure, call_with_retries, no_retry
from airflow_provider_schneider.client.transport import BodyTooLarge, Exchange, TransportError, build_session, exchange
from airflow_provider_schneider.config.settings import SchneiderSettings
from airflow_provider_schneider.redaction import install_log_filters

log = logging.getLogger(__name__)

__all__ = ["SchneiderHttpClient", "clean_params"]


class SchneiderHttpClient:
    """One pooled session per hook; calls governed by the client's adaptive limit and the host's share.

    The limits hold around each attempt (the host slot around the socket call itself), so they hold whatever
    fans out above them (concurrent pages, per-product calls, 401 replays, retries).
    """

    def __init__(self, settings: SchneiderSettings, *, auth: ApiAuth, session: requests.Session | None = None):
        install_log_filters()
        self.settings = settings
        self.answers = Answers(settings)
        self.auth = auth
        self.session = session or build_session(settings.max_concurrency)
        self.limit = AdaptiveLimit(settings.max_concurrency, adaptive=settings.adaptive_concurrency)
        client = settings.client_id or f"apikey:{settings.api_key}"
        size = settings.client_max_in_flight
        self.host = HostCalls.open(client_folder(settings.api_base_url, client, settings.token_cache_dir), size)
        rate = settings.max_calls_per_second
        self._local_pace = LocalPace(rate) if rate > 0 and self.host is None else None
        self._paused_until = 0.0

    # -- public -------------------------------------------------------------------------------------------

    def url_for(self, path: str) -> str:
        return self.answers.url_for(path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retry: bool | None = None,
        page: int | None = None,
    ) -> Any:
        """Send one call and return its parsed JSON (``None`` for an empty body).

        Idempotent methods are retried on 429/5xx/transport errors/deadline hits and on gateway throttles
        whatever their status; writes only when ``retry=True``.
        """
        call = self.answers.call(method, path, params, json, page)
        should_retry = call.method in IDEMPOTENT_METHODS if retry is None else retry

        def attempt() -> Any:
            window = self.limit.enter(call.label)
            outcome = "error"
            try:
                result = self._send_authenticated(call)
                outcome = "ok"
                return result
            except TransientFailure as failure:
                outcome = "throttled" if failure.throttled else "error"
                raise
            finally:
                self.limit.leave(window, outcome)

        if not should_retry:
            return no_retry(attempt)
        return call_with_retries(attempt, policy=self.settings.retry, log=log, what=call.label, on_wait=self._note_wait)

    def close(self) -> None:
        self.session.close()

    # -- internals ----------------------------------------------------------------------------------------

    def _send_authenticated(self, call: ApiRequest) -> Any:
        """Send ``call``; on a 401 the auth object decides: replay once with fresh credentials, or say why."""
        self._wait_if_paused()  # before the token lookup: a long throttle pause must not age the token
        answer = self._send(call)
        replayed = False
        while answer.status == 401:
            fields = self.answers.fields(answer)
            why = self.auth.after_401(fields, replayed)
            if why is None and replayed:  # one replay at most, whatever an auth object says
                why = "the credentials were rejected again after a replay"
            if why is not None:
                raise self.answers.permission(answer, fields, call, why)
            log.info("HTTP 401 (%s) on %s: refreshing the token once and replaying", fields.summary(), call.label)
            replayed = True
            answer = self._send(call)
        return self.answers.parse(answer, call)

    def _note_wait(self, seconds: float, failure: TransientFailure) -> None:
        """A throttle (429, ``Retry-After``, a rate-limit code) pauses every call of this client on the host,
        not just the throttled one; a plain 5xx or network failure only delays its own retry."""
        metrics.incr("http.retries")
        if not failure.throttled:
            return
        metrics.incr("http.throttled")
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        if self.host is not None:
            self.host.cool_down(seconds)

    def _wait_if_paused(self) -> None:
        delay = self._paused_until - time.monotonic()
        if self.host is not None:
            delay = max(delay, self.host.cool_down_left(time.time(), self.settings.retry.retry_after_cap))
        if delay > 0:
            cancellable_sleep(delay)

    def _paced(self) -> None:
        """The learned pace after a throttle, then the configured calls per second (shared by the host's
        processes when it can be); after any cool-down, so a paused queue does not leave as a burst."""
        wait = self.limit.reserve()
        if wait > 0:
            cancellable_sleep(wait)
        rate = self.settings.max_calls_per_second
        if rate <= 0:
            return
        if self.host is not None:
            wait = self.host.reserve(rate, self.settings.retry.retry_after_cap)
        else:
            assert self._local_pace is not None
            wait = self._local_pace.reserve()
        if wait > 0:
            cancellable_sleep(wait)

    def _slot(self, call: ApiRequest) -> contextlib.AbstractContextManager[None]:
        if self.host is None or self.host.size <= 0:
            return contextlib.nullcontext()
        return self.host.slot(self.settings.slot_wait_timeout, f"{self.settings.conn_id}: {call.label}")

    def _send(self, call: ApiRequest) -> Exchange:
        settings = self.settings
        self._wait_if_paused()
        self._paced()
        with self._slot(call):
            try:
                answer = exchange(
                    self.session,
                    call.method,
                    call.url,
                    connect_timeout=settings.connect_timeout,
                    read_timeout=settings.timeout,
                    deadline=settings.attempt_timeout,
                    max_bytes=settings.max_response_bytes,
                    params=list(call.query),
                    json=call.body,
                    auth=self.auth,
                    verify=settings.verify,
                )
            except (TransportError, BodyTooLarge) as exc:
                raise self.answers.wire_failure(exc, call) from None
        log.debug("%s %s -> HTTP %s in %.0f ms", call.method, call.path, answer.status, answer.elapsed * 1e3)
        metrics.http_request(answer.status, answer.elapsed)
        return answer
