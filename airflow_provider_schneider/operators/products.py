"""Product operators: catalog (full, detail, delta) and per-product fan-outs (stock, availability, net price)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_schneider.exceptions import SchneiderApiError, SchneiderBusinessError, SchneiderConfigError
from airflow_provider_schneider.operators.api import SchneiderApiOperator
from airflow_provider_schneider.operators.base import SchneiderBaseOperator
from airflow_provider_schneider.resources import PathSubstitution, get_resource
from airflow_provider_schneider.settings import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_schneider.hooks.schneider import SchneiderHook

log = logging.getLogger(__name__)

#: Delta of the run's data interval: changes since its start (the backfill-friendly default) ...
DELTA_SINCE_INTERVAL_START = "{{ data_interval_start | ds }}"
#: ... and, with ``changed_before``, none from after its end, so each interval's file holds its own changes.
CHANGED_BEFORE_INTERVAL_END = "{{ data_interval_end | ds }}"
CHANGE_TYPES = ("new", "update", "delete", "all")
MAX_LISTED = 100  # references listed in a manifest (not found, business errors); counts are complete


def as_date(value: Any, name: str) -> dt.date:
    """A date from ``2026-11-04``, ``2026-11-04T00:00:00+00:00`` (``{{ data_interval_start }}``) or a date."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise SchneiderConfigError(f"{name} must be a date (YYYY-MM-DD), got {text!r}") from None


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def as_items(value: Any) -> list[Any]:
    """Product references as a list, accepting a list, a comma string, or nested chunks from XCom.

    Repeated string references are called once (first position kept).
    """
    if value is None:
        return []
    if isinstance(value, str):
        flat: list[Any] = [part.strip() for part in value.split(",") if part.strip()]
    else:
        flat = []
        for item in value:
            flat.extend(as_items(item) if isinstance(item, (list, tuple)) else [item])
    seen: set[str] = set()
    out = []
    for item in flat:
        if isinstance(item, str):
            if item in seen:
                continue
            seen.add(item)
        out.append(item)
    return out


class SchneiderProductCatalogOperator(SchneiderApiOperator):
    """Pull Product Catalog v2: full scope, detail (``product_references``) or delta (``date_of_reference``).

    For backfills pass ``date_of_reference=DELTA_SINCE_INTERVAL_START`` (``{{ data_interval_start | ds }}``)
    and ``changed_before=CHANGED_BEFORE_INTERVAL_END``: one DAG definition then serves daily schedules and
    any backfill range, each interval's file holding that interval's changes. When a date and references
    are both given the API applies the delta and ignores the references.

    :param date_of_reference: delta start (templated); ``YYYY-MM-DD`` or any ISO timestamp.
    :param change_type: ``new``, ``update``, ``delete`` or ``all`` (templated).
    :param changed_before: drop records whose ``change_date_field`` is on or after this date (templated);
        the API only takes a start date, so this bounds the delta to the data interval client-side.
    :param product_references: detail mode (templated; a list, comma string or upstream XCom). Sent as
        repeated ``product-reference`` parameters, ``references_per_call`` per request, requests in order.
    :param incremental: delta since the last successful run of the same scope and change type (the
        watermark, kept in Airflow's asset state store and in the asset events), so a manual or late run pulls
        exactly what changed since then; see :mod:`airflow_provider_schneider.operators.watermark`.
        ``date_of_reference`` is then only the start of the very first pull (default: the data interval
        start) and ``changed_before`` the end of every pull (default: the data interval end, or the run's
        date); both may be omitted.

    Declares the asset ``schneider://product_catalog/<supplier>/<customer>`` when both ids are plain values
    (else ``schneider://product_catalog/conn:<conn id>``); with ``incremental=True`` it is an inlet too.
    """

    template_fields: Sequence[str] = (*SchneiderApiOperator.template_fields, "changed_before")

    def __init__(
        self,
        *,
        supplier_id: str,
        customer_id: str,
        supplier_id_type: str = "specific",
        customer_id_type: str = "specific",
        product_references: Sequence[str] | str | None = None,
        product_identifier: str = "commercialReference",
        date_of_reference: str | None = None,
        change_type: str = "all",
        changed_before: str | None = None,
        change_date_field: str = "changeDate",
        references_per_call: int = 50,
        etim_version: str | None = None,
        english_descriptions: bool | None = None,
        data_filtering: str | None = None,
        mime_filtering: str | None = None,
        api_version: str = "v2",
        incremental: bool = False,
        **kwargs: Any,
    ):
        if api_version not in ("v1", "v2"):
            raise SchneiderConfigError(f"api_version must be 'v1' or 'v2', got {api_version!r}")
        if references_per_call < 1:
            raise SchneiderConfigError("references_per_call must be >= 1")
        query: dict[str, Any] = {
            "supplierid": supplier_id,
            "supplierid-type": supplier_id_type,
            "customerid": customer_id,
            "customerid-type": customer_id_type,
            "etim-version": etim_version,
            "english-descriptions": english_descriptions,
            "data-filtering": data_filtering,
            "mime-filtering": mime_filtering,
        }
        if incremental and product_references:
            raise SchneiderConfigError("incremental=True pulls a delta; it cannot be combined with product_references")
        if date_of_reference or incremental:
            query.update({"date-of-reference": date_of_reference, "change-type": change_type})
        elif product_references:
            query.update({"product-reference": product_references, "product-identifier": product_identifier})
        super().__init__(
            resource="product_catalog" if api_version == "v2" else "product_catalog_v1",
            query={k: v for k, v in query.items() if v is not None},
            **kwargs,
        )
        self.changed_before = changed_before
        self.change_date_field = change_date_field
        self.references_per_call = references_per_call
        self.filtered_out = 0
        self.incremental = incremental
        self.window: Any = None
        if incremental:
            self._declare_watermark_asset()

    # -- assets and watermark ---------------------------------------------------------------------------------

    @classmethod
    def default_asset_from_kwargs(cls, kwargs: Mapping[str, Any]) -> Any:
        ids = {
            "supplierid": kwargs.get("supplier_id"),
            "supplierid-type": kwargs.get("supplier_id_type", "specific"),
            "customerid": kwargs.get("customer_id"),
            "customerid-type": kwargs.get("customer_id_type", "specific"),
        }
        resource = "product_catalog_v1" if kwargs.get("api_version") == "v1" else "product_catalog"
        return super().default_asset_from_kwargs({**kwargs, "resource": resource, "query": ids})

    @classmethod
    def inlets_from_kwargs(cls, kwargs: Mapping[str, Any], asset: Any) -> list[Any]:
        return [asset] if kwargs.get("incremental") else []

    def _declare_watermark_asset(self) -> None:
        """The scope asset carries the watermark: it must be an outlet (events) and an inlet (reading them)."""
        asset = self.default_asset()
        if self._outlets_given and not self.outlets:
            raise SchneiderConfigError(
                f"{self.task_id}: incremental=True keeps its watermark on the asset {asset.uri}; outlets=[] "
                "would drop it (pass other outlets in addition, or incremental=False)"
            )
        if asset not in self.outlets:
            self.outlets = [*self.outlets, asset]
        if asset not in self.inlets:
            self.inlets = [*self.inlets, asset]

    def _watermark_key(self) -> str:
        from airflow_provider_schneider import assets
        from airflow_provider_schneider.operators.watermark import state_key

        assert self.catalog_entry is not None
        self.catalog_entry.check_params(self.query)  # the ids, rendered: they scope the watermark
        scope = assets.scope_segments("product_catalog", {}, {k: str(v) for k, v in self.query.items()})
        change_type = str(self.query.get("change-type") or "all").strip().lower()
        if change_type not in CHANGE_TYPES:
            raise SchneiderConfigError(
                f"{self.task_id}: change_type must be one of {CHANGE_TYPES}, got {change_type!r}"
            )
        return state_key(scope or [], change_type)

    def output_key(self, context: Context) -> str:
        """Incremental pulls are named after the range they cover, so different ranges never share a file."""
        if self.incremental and self.window is not None:
            return f"{self.window.since:%Y%m%d}T000000__{self.window.until:%Y%m%d}T000000"
        return super().output_key(context)

    def execute(self, context: Context) -> Any:
        if not self.incremental:
            return super().execute(context)
        from airflow_provider_schneider.operators import watermark

        asset = self.default_asset()
        fallback, before = self.query.get("date-of-reference"), self.changed_before
        self.window = watermark.plan(
            context, asset, self._watermark_key(), date_of_reference=fallback or None, changed_before=before or None
        )
        log.info(
            "Incremental delta [%s, %s) (since from the %s); last watermark %s (%s)",
            self.window.since,
            self.window.until,
            self.window.basis,
            self.window.previous,
            self.window.source,
        )
        self.query["date-of-reference"] = self.window.since.isoformat()
        self.changed_before = self.window.until.isoformat()
        try:
            result = super().execute(context)
        finally:  # leave the arguments as rendered (a second execute plans again from them)
            self.changed_before = before
            if fallback is None:
                self.query.pop("date-of-reference", None)
            else:
                self.query["date-of-reference"] = fallback
        watermark.store_watermark(context, asset, self.window)  # last: a failed pull never moves it
        return result

    def prepare(self) -> None:
        super().prepare()
        date = self.query.get("date-of-reference")
        if date in (None, ""):
            self.query.pop("date-of-reference", None)
            self.query.pop("change-type", None)
        else:
            self.query["date-of-reference"] = as_date(date, f"{self.task_id}: date_of_reference").isoformat()
            change_type = str(self.query.get("change-type") or "all").strip().lower()
            if change_type not in CHANGE_TYPES:
                raise SchneiderConfigError(
                    f"{self.task_id}: change_type must be one of {CHANGE_TYPES}, got {change_type!r}"
                )
            self.query["change-type"] = change_type
        if "product-reference" in self.query:
            self.query["product-reference"] = [str(r) for r in as_items(self.query["product-reference"])]

    def iter_records(self, hook: SchneiderHook, context: Context) -> Iterator[Any]:
        self.filtered_out = 0
        before = as_date(self.changed_before, f"{self.task_id}: changed_before") if self.changed_before else None
        for record in self._iter_unfiltered(hook, context):
            if before is not None and isinstance(record, Mapping):
                changed = record.get(self.change_date_field)
                if changed and as_date(changed, self.change_date_field) >= before:
                    self.filtered_out += 1
                    continue
            yield record

    def _iter_unfiltered(self, hook: SchneiderHook, context: Context) -> Iterator[Any]:
        self.prepare()
        refs = self.query.get("product-reference")
        if "date-of-reference" in self.query or not refs or len(refs) <= self.references_per_call:
            yield from super().iter_records(hook, context)
            return
        # Detail mode over many references: several requests (a URL has a length limit), results in order.
        from airflow_provider_schneider.concurrency import ordered_map

        path = self.resolved_path()

        def call(chunk: Sequence[str]) -> Any:
            return hook.request("GET", path, params={**self.query, "product-reference": list(chunk)})

        batches = _chunks(refs, self.references_per_call)
        for body in ordered_map(call, batches, concurrency=hook.settings.max_concurrency):
            self.pages += 1
            yield from self.records_from_body(body)

    def describe(self) -> dict[str, Any]:
        facts = super().describe()
        refs = facts["query"].pop("product-reference", None)
        if refs is not None:
            facts["product_references"] = len(refs)
        if self.changed_before:
            facts["changed_before"] = str(self.changed_before)
            facts["filtered_out"] = self.filtered_out
        if "date-of-reference" in self.query:
            facts["since"] = self.query["date-of-reference"]
            facts["change_type"] = self.query.get("change-type")
            if self.changed_before:
                facts["until"] = as_date(self.changed_before, "changed_before").isoformat()
        if self.incremental and self.window is not None:
            facts.update(self.window.facts())
        return facts


class _ProductFanOutOperator(SchneiderBaseOperator):
    """One GET per product, at most ``max_concurrency`` in flight, results written in input order.

    :param product_references: references (templated; an upstream task's output works, also with
        ``.expand``). Items may be strings or dicts with ``reference`` plus per-item query fields.
    :param query: extra query parameters for every call (templated).
    :param on_not_found: ``"skip"`` (warn, list in the manifest) or ``"fail"``.
    :param path_substitutions: how ``/`` and ``\\`` in a reference are replaced before it becomes a path
        segment (templated): a rule name (``"percent"`` default, ``"tilde"``, ``"underscore"``), a mapping
        ``{"/": "~2F"}`` or a callable. Whatever the rule, they are never sent raw.
    """

    resource_name: str = ""
    template_fields: Sequence[str] = (
        *SchneiderBaseOperator.template_fields,
        "product_references",
        "query",
        "path_substitutions",
    )
    template_fields_renderers = {"query": "json", "product_references": "json"}

    def __init__(
        self,
        *,
        product_references: Any,
        query: Mapping[str, Any] | None = None,
        on_not_found: str = "skip",
        path_substitutions: PathSubstitution = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if on_not_found not in ("skip", "fail"):
            raise SchneiderConfigError(f"{self.task_id}: on_not_found must be 'skip' or 'fail'")
        self.product_references = product_references
        self.query = dict(query or {})
        self.on_not_found = on_not_found
        self.path_substitutions = path_substitutions
        self.not_found: list[str] = []
        self.declare_default_assets()

    @classmethod
    def default_asset_from_kwargs(cls, kwargs: Mapping[str, Any]) -> Any:
        from airflow_provider_schneider.assets import connection_asset

        return connection_asset(cls.resource_name, kwargs.get("schneider_conn_id") or DEFAULT_CONN_ID)

    def default_asset(self) -> Any:
        """Per product would be an asset per reference: the connection scopes these pulls instead."""
        from airflow_provider_schneider.assets import connection_asset

        return connection_asset(self.resource_name, self.schneider_conn_id)

    def lineage_input_paths(self) -> list[str]:
        return [get_resource(self.resource_name).path]

    def reference_of(self, item: Any) -> str:
        return str(item["reference"] if isinstance(item, Mapping) else item)

    def request_for(self, item: Any) -> tuple[str, dict[str, Any]]:
        """(path, query) for one item."""
        resource = get_resource(self.resource_name)
        extra = {k: v for k, v in item.items() if k != "reference"} if isinstance(item, Mapping) else {}
        path = resource.render_path({"product_reference": self.reference_of(item)}, self.path_substitutions)
        query = {**self.query, **extra}
        resource.check_params(query)
        return path, query

    def to_record(self, item: Any, body: Any) -> Any:
        record = dict(body) if isinstance(body, Mapping) else {"response": body}
        record.setdefault("productReference", self.reference_of(item))
        return record

    def iter_records(self, hook: SchneiderHook, context: Context) -> Iterator[Any]:
        from airflow_provider_schneider.concurrency import ordered_map

        items = as_items(self.product_references)
        self.not_found = []
        for item in items:  # fail on a bad item before the first call, not half-way through
            self.request_for(item)

        def call(item: Any) -> tuple[Any, Any]:
            path, query = self.request_for(item)
            try:
                return item, hook.request("GET", path, params=query)
            except SchneiderApiError as err:
                if err.status == 404 and self.on_not_found == "skip":
                    return item, None
                raise

        for item, body in ordered_map(call, items, concurrency=hook.settings.max_concurrency):
            self.pages += 1
            if body is None:
                self.not_found.append(self.reference_of(item))
                log.warning("Product %r not found by %s; skipped", self.reference_of(item), self.resource_name)
                continue
            record = self.to_record(item, body)
            if record is not None:
                yield record

    @property
    def calls(self) -> int:
        """API calls made: one response per product (or per bulk chunk), counted as pages by the base."""
        return self.pages

    def describe(self) -> dict[str, Any]:
        return {
            "resource": self.resource_name,
            "calls": self.calls,
            "not_found": self.not_found[:MAX_LISTED],
            "not_found_count": len(self.not_found),
        }


class SchneiderStockLevelOperator(_ProductFanOutOperator):
    """Stock levels (Stock Level Checker v1.1) for each product reference; optional ``shipTo``/``purchaserID``.

    ``bulk=True`` uses the ``POST /products/stock-levels`` variant (Brazil, Finland, Sweden), ``bulk_size``
    references per call; unknown references come back inline (``error``) rather than as 404s.
    """

    resource_name = "stock_level"

    def __init__(
        self,
        *,
        ship_to: str | None = None,
        purchaser_id: str | None = None,
        bulk: bool = False,
        bulk_size: int = 50,
        reference_type: str = "4",
        **kwargs: Any,
    ):
        query = {"shipTo": ship_to, "purchaserID": purchaser_id, **(kwargs.pop("query", None) or {})}
        super().__init__(query={k: v for k, v in query.items() if v is not None}, **kwargs)
        if bulk_size < 1:
            raise SchneiderConfigError(f"{self.task_id}: bulk_size must be >= 1")
        self.bulk = bulk
        self.bulk_size = bulk_size
        self.reference_type = reference_type

    def lineage_input_paths(self) -> list[str]:
        return [get_resource("stock_levels_bulk" if self.bulk else self.resource_name).path]

    def iter_records(self, hook: SchneiderHook, context: Context) -> Iterator[Any]:
        if not self.bulk:
            yield from super().iter_records(hook, context)
            return
        from airflow_provider_schneider.concurrency import ordered_map

        path = get_resource("stock_levels_bulk").path
        refs = [self.reference_of(item) for item in as_items(self.product_references)]
        self.not_found = []

        def call(chunk: Sequence[str]) -> Any:
            body = {"products": [{"productReference": r, "referenceType": self.reference_type} for r in chunk]}
            # A POST, but a read: retrying it cannot create anything.
            return hook.request("POST", path, params=self.query, json=body, retry=True)

        for answer in ordered_map(call, _chunks(refs, self.bulk_size), concurrency=hook.settings.max_concurrency):
            self.pages += 1
            for entry in answer if isinstance(answer, list) else [answer]:
                if isinstance(entry, Mapping) and entry.get("error"):
                    self.not_found.append(str(entry.get("productReference")))
                    if self.on_not_found == "fail":
                        raise SchneiderConfigError(f"{self.task_id}: {entry['error']}")
                    continue
                yield entry


class SchneiderProductAvailabilityOperator(_ProductFanOutOperator):
    """Delivery date, shortage flag and lead time (Product Availability v2) for each product reference.

    ``quantity`` applies to every product; a dict item ``{"reference": ..., "quantity": 7}`` overrides it.
    """

    resource_name = "product_availability"

    def __init__(self, *, quantity: int = 1, ship_to: str | None = None, **kwargs: Any):
        query = {"quantity": quantity, "shipTo": ship_to, **(kwargs.pop("query", None) or {})}
        super().__init__(query={k: v for k, v in query.items() if v is not None}, **kwargs)


BUSINESS_ERROR_MODES = ("keep", "skip", "fail")


class SchneiderNetPriceOperator(_ProductFanOutOperator):
    """Net prices (Product Net Price v1.0) per catalog number; business errors arrive inside a 200.

    :param on_business_error: what to do with a record whose ``errorMessages`` is not empty (unknown
        material, no price): ``"keep"`` it (default; counted and listed in the manifest), ``"skip"`` it
        (counted and listed, not written), or ``"fail"`` the task (nothing written; lists the first ones).
    """

    resource_name = "net_price"

    def __init__(
        self,
        *,
        quantity: int = 1,
        currency_code: str | None = None,
        on_business_error: str = "keep",
        **kwargs: Any,
    ):
        query = {"quantity": quantity, "currencyCode": currency_code, **(kwargs.pop("query", None) or {})}
        super().__init__(query={k: v for k, v in query.items() if v is not None}, **kwargs)
        if on_business_error not in BUSINESS_ERROR_MODES:
            raise SchneiderConfigError(f"{self.task_id}: on_business_error must be one of {BUSINESS_ERROR_MODES}")
        self.on_business_error = on_business_error
        self.business_errors: list[dict[str, Any]] = []

    def request_for(self, item: Any) -> tuple[str, dict[str, Any]]:
        resource = get_resource(self.resource_name)
        extra = {k: v for k, v in item.items() if k != "reference"} if isinstance(item, Mapping) else {}
        query = {**self.query, **extra, "catalog-number": self.reference_of(item)}
        resource.check_params(query)
        return resource.render_path({}), query

    def to_record(self, item: Any, body: Any) -> Any:
        record = super().to_record(item, body)
        record.setdefault("catalogNumber", self.reference_of(item))
        for message in record.get("warningMessages") or []:
            log.info("Net price warning for %s: %s", self.reference_of(item), message)
        errors = record.get("errorMessages") or []
        if not errors:
            return record
        codes = [e.get("code") if isinstance(e, Mapping) else str(e) for e in errors]
        self.business_errors.append({"reference": self.reference_of(item), "codes": codes})
        log.warning("Net price for %s came back with errorMessages %s", self.reference_of(item), errors)
        return None if self.on_business_error == "skip" else record

    def iter_records(self, hook: SchneiderHook, context: Context) -> Iterator[Any]:
        self.business_errors = []
        yield from super().iter_records(hook, context)
        if self.on_business_error == "fail" and self.business_errors:
            raise SchneiderBusinessError(
                f"{self.task_id}: {len(self.business_errors)} product(s) came back with errorMessages "
                f"(on_business_error='fail'), e.g. {self.business_errors[:5]}"
            )

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "business_errors": self.business_errors[:MAX_LISTED],
            "business_error_count": len(self.business_errors),
        }
