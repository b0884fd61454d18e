"""SchneiderApiOperator: any Schneider path or catalog resource, with the provider's auth, retries and paging."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_schneider.config.settings import DEFAULT_CONN_ID
from airflow_provider_schneider.exceptions import SchneiderConfigError
from airflow_provider_schneider.operators.base import SchneiderBaseOperator
from airflow_provider_schneider.pulls.plan import Call, PullPlan, PullStats, frozen
from airflow_provider_schneider.resources import PAGE_NUMBER, PathSubstitution, Resource, get_resource

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_schneider.hooks.schneider import SchneiderHook


class SchneiderApiOperator(SchneiderBaseOperator):
    """Call a catalog ``resource`` (see ``airflow_provider_schneider.resources``) or any ``endpoint``.

    Undocumented endpoints are one argument away: ``endpoint="/v1/..."`` with ``records_field`` and
    ``paginate=True`` gets the same token cache, retries, concurrency cap and atomic output.

    :param resource: catalog name, e.g. ``"order_status"``.
    :param endpoint: explicit path relative to the API host (templated; may hold ``{placeholders}``
        filled from ``path_params``); overrides the resource's path.
    :param path_params: values for ``{placeholders}`` in the path (templated; each quoted as one segment).
    :param query: query parameters (templated); lists become repeated parameters, ``None`` is dropped.
    :param method: HTTP method (default: the resource's, else GET); non-GET calls are never retried unless
        ``retry_writes=True``.
    :param json_body: JSON body for POST/PUT (templated).
    :param records_field: field holding the record list (dotted for nested, ``data.items``); default: the
        resource's. ``"."`` stores the whole answer as one record (or each item, when it is a JSON array).
    :param paginate: page-number pagination (default: the resource's style).
    :param page_size: records per page (default: the connection's, capped by the resource's maximum).
    :param path_substitutions: how characters that cannot travel in a path segment are replaced before
        percent-encoding (templated): a rule name (``"percent"``, ``"tilde"``, ``"underscore"``), a mapping like
        ``{"/": "~2F"}``, or a callable. ``/`` and ``\\`` are never sent raw, whatever the rule.
    """

    template_fields: Sequence[str] = (
        *SchneiderBaseOperator.template_fields,
        "endpoint",
        "path_params",
        "query",
        "json_body",
        "path_substitutions",
    )
    template_fields_renderers = {"query": "json", "json_body": "json", "path_params": "json"}

    def __init__(
        self,
        *,
        resource: str | None = None,
        endpoint: str | None = None,
        path_params: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        method: str | None = None,
        json_body: Any = None,
        records_field: str | None = None,
        paginate: bool | None = None,
        page_size: int | None = None,
        path_substitutions: PathSubstitution = None,
        retry_writes: bool = False,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not resource and not endpoint:
            raise SchneiderConfigError(f"{self.task_id}: give a catalog 'resource' or an 'endpoint'")
        self.resource = resource
        self.catalog_entry: Resource | None = get_resource(resource) if resource else None
        entry = self.catalog_entry
        self.endpoint = endpoint
        self.path_params = dict(path_params or {})
        self.query = dict(query or {})
        self.method = (method or (entry.method if entry else "GET")).upper()
        self.json_body = json_body
        if records_field is None:
            records_field = entry.records_field if entry else None
        self.records_field = None if records_field in ("", ".") else records_field
        self.paginate = paginate if paginate is not None else bool(entry and entry.pagination == PAGE_NUMBER)
        self.page_size = page_size
        self.path_substitutions = path_substitutions
        self.retry_writes = retry_writes
        if self.paginate and not self.records_field:
            raise SchneiderConfigError(f"{self.task_id}: paginate=True needs records_field")
        if self.paginate and self.method != "GET":
            raise SchneiderConfigError(f"{self.task_id}: pagination is only supported for GET")
        _ = self.dataset_schema  # a schema_hints or schema_contract error fails the DAG's parse
        self.declare_default_assets()

    # -- assets (parse time: only plain, non-templated arguments scope an asset) -----------------------------

    @staticmethod
    def asset_for(
        resource: str | None,
        endpoint: Any,
        path_params: Mapping[str, Any],
        query: Mapping[str, Any],
        conn_id: str,
    ) -> Any:
        from airflow_provider_schneider import assets

        if endpoint:
            label, scope = assets.ENDPOINT_RESOURCE, assets.endpoint_segments(endpoint, path_params)
        else:
            label, scope = str(resource), assets.scope_segments(str(resource), path_params, query)
        return assets.make_asset(label, scope or assets.conn_scope(conn_id))

    @classmethod
    def default_asset_from_kwargs(cls, kwargs: Mapping[str, Any]) -> Any:
        if not kwargs.get("resource") and not kwargs.get("endpoint"):
            return None
        return cls.asset_for(
            kwargs.get("resource"),
            kwargs.get("endpoint"),
            kwargs.get("path_params") or {},
            kwargs.get("query") or {},
            kwargs.get("schneider_conn_id") or DEFAULT_CONN_ID,
        )

    def declared_resource(self) -> Resource | None:
        """The catalog entry's record schema applies to its own path, not to an explicit ``endpoint``."""
        return None if self.endpoint else self.catalog_entry

    def default_asset(self) -> Any:
        return self.asset_for(self.resource, self.endpoint, self.path_params, self.query, self.schneider_conn_id)

    # -- the plan (after templating) ----------------------------------------------------------------------

    def checked_params(self, query: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Rendered path parameters and ``query`` (default: the operator's), checked and normalised
        (subclasses add the API's rules); copies, so the arguments stay as rendered for a next ``execute``."""
        query = dict(self.query if query is None else query)
        if self.catalog_entry and not self.endpoint:
            self.catalog_entry.check_params(query)
        return dict(self.path_params), query

    def render_path(self, path_params: Mapping[str, Any]) -> str:
        if self.endpoint:
            template = Resource(self.task_id, str(self.endpoint), self.records_field)
            return template.render_path(path_params, self.path_substitutions)
        assert self.catalog_entry is not None
        return self.catalog_entry.render_path(path_params, self.path_substitutions)

    def effective_page_size(self, hook: SchneiderHook) -> int:
        size = int(self.page_size or hook.settings.page_size)
        return self.catalog_entry.page_size(size) if self.catalog_entry else size

    def plan_fields(
        self, hook: SchneiderHook, path_params: Mapping[str, Any], query: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A :class:`PullPlan`'s fields for ``path_params`` and ``query``: page-number pages, or one call."""
        path = self.render_path(path_params)
        fields: dict[str, Any] = {
            "resource": self.resource,
            "path": path,
            "query": frozen(query),
            "path_params": frozen(path_params),
            "records_field": self.records_field,
            "method": self.method,
        }
        if self.paginate:
            return {**fields, "paginate": True, "page_size": self.effective_page_size(hook)}
        retry = True if self.retry_writes else None
        return {**fields, "calls": (Call(self.method, path, fields["query"], self.json_body, retry),)}

    def prepare(self, context: Context, hook: SchneiderHook) -> PullPlan:
        path_params, query = self.checked_params()
        return PullPlan(**self.plan_fields(hook, path_params, query))

    # -- pulling ------------------------------------------------------------------------------------------

    def records_of_response(self, plan: PullPlan, call: Call, body: Any, stats: PullStats) -> list[Any]:
        """Records of a single answer: the ``records_field`` list, the answer itself, or its items."""
        from airflow_provider_schneider.client.pagination import dig

        if body is None:
            return []
        if self.records_field is None:
            return list(body) if isinstance(body, list) else [body]
        records = dig(body, self.records_field)
        if records is None:
            return []
        if not isinstance(records, list):
            raise self.response_error(f"field '{self.records_field}' is not a list", call.method, call.path)
        return records

    def manifest_facts(self, plan: PullPlan, stats: PullStats) -> dict[str, Any]:
        from airflow_provider_schneider.redaction import safe_params

        return {
            "resource": self.resource,
            "endpoint": plan.path,
            "path_params": safe_params(dict(plan.path_params)),
            "query": safe_params(dict(plan.query)),
        }
