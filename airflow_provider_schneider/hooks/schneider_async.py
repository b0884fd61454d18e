"""SchneiderAsyncHook: the hook for coroutines (triggers), on aiohttp, with the sync hook's guarantees."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any, TypeVar

import requests
from airflow.sdk import BaseHook

from airflow_provider_schneider.client.async_http import AsyncSchneiderClient
from airflow_provider_schneider.client.auth import AsyncApiKeyAuth, AsyncAuth
from airflow_provider_schneider.client.pagination import Page, PageCounters, last_page, records_of
from airflow_provider_schneider.client.transport import build_session
from airflow_provider_schneider.config.fields import MAX_CONCURRENCY_CAP
from airflow_provider_schneider.config.settings import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    SchneiderSettings,
    settings_from_connection,
)
from airflow_provider_schneider.exceptions import SchneiderResponseError
from airflow_provider_schneider.redaction import register_secret
from airflow_provider_schneider.tokens.async_tokens import AsyncBearerAuth, AsyncTokens
from airflow_provider_schneider.tokens.endpoint import request_token
from airflow_provider_schneider.tokens.manager import TokenManager

T = TypeVar("T")


async def gather_all(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Every call's result in order; the first failure cancels the others (none is left running)."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class SchneiderAsyncHook(BaseHook):
    """Calls Schneider partner APIs from a coroutine: the same connection, settings, errors and token cache
    as :class:`~airflow_provider_schneider.hooks.schneider.SchneiderHook`, without a thread per call.

    Tokens come from the same tiers (memory, host file, cluster Variable, endpoint) with one refresh per
    event loop at a time; calls in flight are capped by the host's ``client_max_in_flight`` share (the slot
    files the sync hook's processes use), or by ``max_concurrency`` when that cap is off.

    :param schneider_conn_id: Airflow connection id (type ``schneider``).
    :param overrides: connection extras to override for this hook.
    """

    conn_name_attr = "schneider_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Schneider Electric (async)"

    def __init__(
        self,
        schneider_conn_id: str = DEFAULT_CONN_ID,
        *,
        overrides: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.schneider_conn_id = schneider_conn_id
        self.overrides = dict(overrides or {})
        self._settings: SchneiderSettings | None = None
        self._client: AsyncSchneiderClient | None = None
        self._token_session: requests.Session | None = None
        self._opening: asyncio.Lock | None = None
        self._bearer: AsyncBearerAuth | None = None

    async def get_settings(self) -> SchneiderSettings:
        """The connection's validated settings, read once through Airflow's async connection API."""
        if self._settings is None:
            conn = await self.aget_connection(self.schneider_conn_id)
            settings = settings_from_connection(conn, overrides=self.overrides)
            register_secret(*settings.secrets)
            self._settings = settings
        return self._settings

    async def get_conn(self) -> AsyncSchneiderClient:
        """The connection's asynchronous client (built once per hook)."""
        if self._client is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._client is None:
                    self._client = self._build(await self.get_settings())
        return self._client

    def _build(self, settings: SchneiderSettings) -> AsyncSchneiderClient:
        auth: AsyncAuth
        if settings.api_key:
            auth = AsyncApiKeyAuth(settings.api_key)
        else:
            self._token_session = session = build_session(1)
            manager = TokenManager(settings, fetch=lambda: request_token(settings, session))
            auth = self._bearer = AsyncBearerAuth(AsyncTokens(manager))
        in_flight = settings.client_max_in_flight or settings.max_concurrency
        return AsyncSchneiderClient(settings, auth=auth, max_in_flight=min(in_flight, MAX_CONCURRENCY_CAP))

    @property
    def token_requests(self) -> int:
        """Token endpoint calls made by this hook (0 before the first call)."""
        bearer = self._bearer
        return 0 if bearer is None else bearer.tokens.manager.token_requests

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
        """Call ``path`` (relative to the API host) and return parsed JSON; GETs are retried."""
        client = await self.get_conn()
        return await client.request(method, path, params=params, json=json, retry=retry, page=page)

    async def get_first_page(
        self, path: str, *, records_field: str, params: Mapping[str, Any] | None = None, page_size: int | None = None
    ) -> Page:
        """Page 1 of a paginated GET, its counters checked (it says how many pages there are)."""
        settings = await self.get_settings()
        query = {**(params or {}), "page": 1, "page-size": page_size or settings.page_size}
        return PageCounters(self._page_error(path), records_field).read(
            await self.request("GET", path, params=query, page=1), 1
        )

    async def get_records(
        self,
        path: str,
        *,
        records_field: str,
        params: Mapping[str, Any] | None = None,
        page_size: int | None = None,
        first: Page | None = None,
        pages_hint: int | None = None,
    ) -> list[Any]:
        """Every record of a paginated GET, in page order (see :meth:`get_pages`)."""
        pages = await self.get_pages(
            path, records_field=records_field, params=params, page_size=page_size, first=first, pages_hint=pages_hint
        )
        error = self._page_error(path)
        return [record for page in pages for record in records_of(page, records_field, error)]

    async def get_pages(
        self,
        path: str,
        *,
        records_field: str,
        params: Mapping[str, Any] | None = None,
        page_size: int | None = None,
        first: Page | None = None,
        pages_hint: int | None = None,
    ) -> list[Page]:
        """Every page of a paginated GET: page 1, then pages 2..N all at once under the client's cap, in
        page order. A page count beyond ``max_pages`` or one that changes during the listing is an error.

        ``first``: page 1 when the caller already has it. ``pages_hint``: the page count a previous listing
        reported; pages 1..hint are then asked together (one round trip less), and page 1's count decides
        which of them count and whether more are needed."""
        settings = await self.get_settings()
        size = page_size or settings.page_size
        error = self._page_error(path)
        counters = PageCounters(error, records_field)

        async def fetch(number: int) -> Page:
            query = {**(params or {}), "page": number, "page-size": size}
            return counters.read(await self.request("GET", path, params=query, page=number), number)

        early: list[Page] = []
        if first is None and pages_hint and pages_hint > 1:
            early = await gather_all(fetch(n) for n in range(1, min(pages_hint, settings.max_pages) + 1))
            first = early[0]
        elif first is None:
            first = await fetch(1)
        last = last_page(first, settings.max_pages, error)
        pages = [first, *early[1:last]]
        pages += await gather_all(fetch(n) for n in range(len(pages) + 1, last + 1))
        pages = pages[: max(last, 0)]
        for page in pages:
            if page.total_pages != first.total_pages:
                raise error(f"totalNumberOfPages changed from {first.total_pages} to {page.total_pages}", page.number)
        return pages

    def _page_error(self, path: str) -> Any:
        def error(message: str, page: int) -> SchneiderResponseError:
            return SchneiderResponseError(message, conn_id=self.schneider_conn_id, method="GET", path=path, page=page)

        return error

    async def aclose(self) -> None:
        """Close the HTTP session (and the token endpoint's); the hook can be used again afterwards."""
        client, self._client = self._client, None
        if client is not None:
            await client.close()
        session, self._token_session = self._token_session, None
        if session is not None:
            session.close()
