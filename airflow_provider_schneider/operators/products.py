"""Product operators: catalog (full, detail, delta) and per-product fan-outs (stock, availability, net price)."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_schneider.exceptions import SchneiderApiError, SchneiderBusinessError, SchneiderConfigError
from airflow_provider_schneider.operators.api import SchneiderApiOperator
from airflow_provider_schneider.operators.base import SchneiderBaseOperator
from airflow_provider_schneider.resources import get_resource

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_schneider.hooks.schneider import SchneiderHook

log = logging.getLogger(__name__)

#: Template for a delta pull of exactly the run's data interval start (the backfill-friendly default).
DELTA_SINCE_INTERVAL_START = "{{ data_interval_start | ds }}"
CHANGE_TYPES = ("new", "update", "delete", "all")


class SchneiderProductCatalogOperator(SchneiderApiOperator):
    """Pull Product Catalog v2: full scope, detail (``product_references``) or delta (``date_of_reference``).

    For backfills pass ``date_of_reference=DELTA_SINCE_INTERVAL_START`` (``{{ data_interval_start | ds }}``):
    one DAG definition then serves daily schedules and any backfill range. When a date and references are
    both given the API applies the delta and ignores the references.
    """

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
        etim_version: str | None = None,
        english_descriptions: bool | None = None,
        data_filtering: str | None = None,
        mime_filtering: str | None = None,
        api_version: str = "v2",
        **kwargs: Any,
    ):
        if change_type not in CHANGE_TYPES:
            raise SchneiderConfigError(f"change_type must be one of {CHANGE_TYPES}, got {change_type!r}")
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
        if date_of_reference:
            query.update({"date-of-reference": date_of_reference, "change-type": change_type})
        elif product_references:
            query.update({"product-reference": product_references, "product-identifier": product_identifier})
        super().__init__(
            resource="product_catalog" if api_version == "v2" else "product_catalog_v1",
            query={k: v for k, v in query.items() if v is not None},
            **kwargs,
        )


def _as_items(value: Any) -> list[Any]:
    """Product references as a list, accepting a list, a comma string, or nested chunks from XCom."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    items: list[Any] = []
    for item in value:
        items.extend(_as_items(item) if isinstance(item, (list, tuple)) else [item])
    return items


class _ProductFanOutOperator(SchneiderBaseOperator):
    """One GET per product, ``max_concurrency`` in flight, results written in input order.

    :param product_references: references (templated; an upstream task's output works, also with
        ``.expand``). Items may be strings or dicts with ``reference`` plus per-item fields.
    :param on_not_found: ``"skip"`` (warn, list in the manifest) or ``"fail"``.
    :param path_substitutions: replacements for characters that cannot travel in a path segment; without
        one, ``/`` and ``\\`` are percent-encoded (never sent raw).
    """

    resource_name: str = ""
    template_fields: Sequence[str] = (*SchneiderBaseOperator.template_fields, "product_references", "query")

    def __init__(
        self,
        *,
        product_references: Any,
        query: Mapping[str, Any] | None = None,
        on_not_found: str = "skip",
        path_substitutions: Mapping[str, str] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if on_not_found not in ("skip", "fail"):
            raise SchneiderConfigError(f"{self.task_id}: on_not_found must be 'skip' or 'fail'")
        self.product_references = product_references
        self.query = dict(query or {})
        self.on_not_found = on_not_found
        self.path_substitutions = dict(path_substitutions or {})
        self.not_found: list[str] = []

    def reference_of(self, item: Any) -> str:
        return str(item["reference"] if isinstance(item, Mapping) else item)

    def request_for(self, item: Any) -> tuple[str, dict[str, Any]]:
        """(path, query) for one item."""
        resource = get_resource(self.resource_name)
        extra = {k: v for k, v in item.items() if k != "reference"} if isinstance(item, Mapping) else {}
        path = resource.render_path({"product_reference": self.reference_of(item)}, self.path_substitutions)
        return path, {**self.query, **extra}

    def to_record(self, item: Any, body: Any) -> Any:
        record = dict(body) if isinstance(body, Mapping) else {"response": body}
        record.setdefault("productReference", self.reference_of(item))
        return record

    def iter_records(self, hook: SchneiderHook, context: Context) -> Iterator[Any]:
        from airflow_provider_schneider.concurrency import ordered_map

        items = _as_items(self.product_references)
        self.not_found = []

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
            yield self.to_record(item, body)

    def describe(self) -> dict[str, Any]:
        return {
            "resource": self.resource_name,
            "calls": self.pages,
            "not_found": self.not_found[:100],
            "not_found_count": len(self.not_found),
        }


class SchneiderStockLevelOperator(_ProductFanOutOperator):
    """Stock levels (Stock Level Checker v1.1) for each product reference; optional ``shipTo``/``purchaserID``."""

    resource_name = "stock_level"

    def __init__(self, *, ship_to: str | None = None, purchaser_id: str | None = None, **kwargs: Any):
        query = {"shipTo": ship_to, "purchaserID": purchaser_id, **(kwargs.pop("query", None) or {})}
        super().__init__(query={k: v for k, v in query.items() if v is not None}, **kwargs)


class SchneiderProductAvailabilityOperator(_ProductFanOutOperator):
    """Delivery date, shortage flag and lead time (Product Availability v2) for each product reference."""

    resource_name = "product_availability"

    def __init__(self, *, quantity: int = 1, ship_to: str | None = None, **kwargs: Any):
        query = {"quantity": quantity, "shipTo": ship_to, **(kwargs.pop("query", None) or {})}
        super().__init__(query={k: v for k, v in query.items() if v is not None}, **kwargs)


class SchneiderNetPriceOperator(_ProductFanOutOperator):
    """Net prices (Product Net Price v1.0) per catalog number; business errors arrive inside a 200.

    Each record's ``errorMessages`` are logged as warnings; ``fail_on_business_errors=True`` fails the task
    (and writes nothing) when any record carries one.
    """

    resource_name = "net_price"

    def __init__(
        self,
        *,
        quantity: int = 1,
        currency_code: str | None = None,
        fail_on_business_errors: bool = False,
        **kwargs: Any,
    ):
        query = {"quantity": quantity, "currencyCode": currency_code, **(kwargs.pop("query", None) or {})}
        super().__init__(query={k: v for k, v in query.items() if v is not None}, **kwargs)
        self.fail_on_business_errors = fail_on_business_errors
        self.business_errors = 0

    def request_for(self, item: Any) -> tuple[str, dict[str, Any]]:
        extra = {k: v for k, v in item.items() if k != "reference"} if isinstance(item, Mapping) else {}
        path = get_resource(self.resource_name).render_path({})
        return path, {**self.query, **extra, "catalog-number": self.reference_of(item)}

    def to_record(self, item: Any, body: Any) -> Any:
        record = super().to_record(item, body)
        record.setdefault("catalogNumber", self.reference_of(item))
        errors = record.get("errorMessages") or []
        for message in errors:
            log.warning("Net price for %s: %s", self.reference_of(item), message)
        for message in record.get("warningMessages") or []:
            log.info("Net price warning for %s: %s", self.reference_of(item), message)
        if errors:
            self.business_errors += 1
        return record

    def iter_records(self, hook: SchneiderHook, context: Context) -> Iterator[Any]:
        self.business_errors = 0
        yield from super().iter_records(hook, context)
        if self.fail_on_business_errors and self.business_errors:
            raise SchneiderBusinessError(
                f"{self.task_id}: {self.business_errors} product(s) came back with errorMessages "
                "(fail_on_business_errors=True); see the warnings above"
            )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "business_errors": self.business_errors}
