"""SchneiderHook: the public entry point. Thin: reads the connection once and wires the pieces together."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from typing import Any

import requests
from airflow.sdk import BaseHook

from airflow_provider_schneider.client.auth import ApiAuth, ApiKeyAuth
from airflow_provider_schneider.client.http import SchneiderHttpClient
from airflow_provider_schneider.client.pagination import HeldPages, Page, PageCounters, iter_pages, records_of
from airflow_provider_schneider.client.transport import build_session
from airflow_provider_schneider.config.fields import MAX_CONCURRENCY_CAP
from airflow_provider_schneider.config.settings import (
    CONN_TYPE,
    DEFAULT_CONN_ID,
    SchneiderSettings,
    settings_from_connection,
)
from airflow_provider_schneider.exceptions import SchneiderError, SchneiderResponseError
from airflow_provider_schneider.redaction import redact, register_secret
from airflow_provider_schneider.tokens.bearer import BearerTokenAuth, FixedToken, TokenSource
from airflow_provider_schneider.tokens.endpoint import request_token
from airflow_provider_schneider.tokens.manager import TokenManager


class SchneiderHook(BaseHook):
    """Calls Schneider Electric partner APIs with OAuth2 client credentials (or an API key).

    Tokens are reused across task runs, processes and workers (see :mod:`..tokens.manager`); calls are
    retried on 429/5xx/transport errors, capped at the connection's ``max_concurrency``, and errors surface
    as :class:`~airflow_provider_schneider.exceptions.SchneiderApiError`.

    :param schneider_conn_id: Airflow connection id (type ``schneider``).
    :param overrides: connection extras to override for this hook (e.g. ``{"retry_max_attempts": 2}``).
    """

    conn_name_attr = "schneider_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Schneider Electric"

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

    # -- connection form for Airflow < 3.2 (3.2+ reads conn-fields from get_provider_info) ---------------

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        from airflow_provider_schneider.get_provider_info import UI_FIELD_BEHAVIOUR

        return {key.replace("-", "_"): value for key, value in UI_FIELD_BEHAVIOUR.items()}

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """WTForms widgets built from the same field declarations (needs Flask-AppBuilder). Only a switch has a
        default (an unset switch shows *off*); any other empty field keeps meaning "the provider's default", and
        a boolean with an environment fallback is a true/false choice that may stay empty."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, IntegerField, PasswordField, StringField
        from wtforms.validators import Optional, any_of

        from airflow_provider_schneider.config.fields import FIELDS

        widgets: dict[str, Any] = {}
        for spec in FIELDS:
            label, description = lazy_gettext(spec.label), spec.description()
            if spec.secret:
                widgets[spec.name] = PasswordField(label, widget=BS3PasswordFieldWidget(), description=description)
            elif spec.three_way:
                widgets[spec.name] = StringField(
                    label,
                    widget=BS3TextFieldWidget(),
                    validators=[Optional(), any_of(["true", "false"])],
                    description=description,
                )
            elif spec.kind == "boolean":
                widgets[spec.name] = BooleanField(label, description=description, default=spec.form_default())
            elif spec.kind == "integer":
                widgets[spec.name] = IntegerField(label, widget=BS3TextFieldWidget(), description=description)
            else:
                widgets[spec.name] = StringField(label, widget=BS3TextFieldWidget(), description=description)
        return widgets

    # -- wiring -------------------------------------------------------------------------------------------

    @cached_property
    def settings(self) -> SchneiderSettings:
        conn = self.get_connection(self.schneider_conn_id)
        settings = settings_from_connection(conn, overrides=self.overrides)
        register_secret(*settings.secrets)
        return settings

    @cached_property
    def _session(self) -> requests.Session:
        return build_session(self.settings.max_concurrency)

    @cached_property
    def token_manager(self) -> TokenManager | None:
        """``None`` for API-key connections, which never request a token."""
        if self.settings.uses_api_key:
            return None
        return TokenManager(self.settings, fetch=lambda: request_token(self.settings, self._session))

    def _auth(self, source: TokenSource | None = None) -> ApiAuth:
        if self.settings.api_key:
            return ApiKeyAuth(self.settings.api_key)
        source = source or self.token_manager
        assert source is not None
        return BearerTokenAuth(source)

    @cached_property
    def client(self) -> SchneiderHttpClient:
        return SchneiderHttpClient(self.settings, auth=self._auth(), session=self._session)

    # -- public API ---------------------------------------------------------------------------------------

    def get_conn(self) -> SchneiderHttpClient:
        """Airflow's conventional accessor: the configured HTTP client."""
        return self.client

    def get_token(self) -> str:
        """A bearer token valid for at least the leeway, from the cheapest cache tier that has one."""
        if self.token_manager is None:
            raise SchneiderError(
                f"Schneider connection '{self.schneider_conn_id}' uses an API key; it has no bearer token"
            )
        return self.token_manager.get_token().access_token

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        retry: bool | None = None,
    ) -> Any:
        """Call ``path`` (relative to the API host) and return parsed JSON.

        GETs are retried on transient failures; writes only when ``retry=True`` is passed explicitly.
        """
        return self.client.request(method, path, params=params, json=json, retry=retry)

    def _page_error(self, path: str) -> Any:
        def error(message: str, page: int) -> SchneiderResponseError:
            return SchneiderResponseError(message, conn_id=self.schneider_conn_id, method="GET", path=path, page=page)

        return error

    def iter_page_objects(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        records_field: str | None = None,
        page_size: int | None = None,
        max_concurrency: int | None = None,
        page_param: str = "page",
        page_size_param: str = "page-size",
        held: HeldPages | None = None,
    ) -> Iterator[Page]:
        """Every page of a page-number paginated GET, in order, stopping on ``totalNumberOfPages`` after
        checking it against ``totalNumberOfRecords`` (given ``records_field``, the records are counted too).
        ``held``: a resumed pull's answer to "how many leading pages do you have" (see ``iter_pages``)."""
        size = page_size or self.settings.page_size
        concurrency = min(max_concurrency or self.settings.max_concurrency, MAX_CONCURRENCY_CAP)
        base = {k: v for k, v in (params or {}).items() if k not in (page_param, page_size_param)}

        def fetch(number: int) -> Any:
            query = {**base, page_param: number, page_size_param: size}
            return self.client.request("GET", path, params=query, page=number)

        return iter_pages(
            fetch,
            counters=PageCounters(self._page_error(path), records_field),
            max_concurrency=concurrency,
            max_pages=self.settings.max_pages,
            held=held,
        )

    def iter_records(
        self,
        path: str,
        *,
        records_field: str,
        params: Mapping[str, Any] | None = None,
        on_page: Callable[[Page], None] | None = None,
        **kwargs: Any,
    ) -> Iterator[dict]:
        """Every record of a paginated GET (e.g. ``records_field="orderList"``), in a stable order.

        ``on_page`` is called once per page as it arrives (operators count pages with it).
        """
        error = self._page_error(path)
        for page in self.iter_page_objects(path, params=params, records_field=records_field, **kwargs):
            if on_page is not None:
                on_page(page)
            yield from records_of(page, records_field, error)

    def test_connection(self) -> tuple[bool, str]:
        """Request a real token (bypassing the cache), then call ``test_path`` with it if one is configured."""
        try:
            settings = self.settings
            client = self.client
            if self.token_manager is not None:
                token = request_token(settings, self._session)
                message = f"Token endpoint {settings.token_url} issued a token valid for {token.lifetime:.0f}s"
                client = SchneiderHttpClient(settings, auth=self._auth(FixedToken(token)), session=self._session)
            else:
                message = "API key configured (no token endpoint in API-key mode)"
            test_path = settings.test_path
            if test_path:
                client.request("GET", test_path)
                message += f"; GET {test_path} succeeded"
            return True, message
        except Exception as exc:  # noqa: BLE001 - the UI shows the message, whatever failed
            return False, redact(str(exc), self.settings.secrets if "settings" in self.__dict__ else ())

    def close(self) -> None:
        if "_session" in self.__dict__:
            self._session.close()
