"""Per-product operators: one call per product (stock, availability, net price) or per bulk chunk (stock)."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_schneider.config.settings import DEFAULT_CONN_ID
from airflow_provider_schneider.exceptions import (
    SchneiderApiError,
    SchneiderBusinessError,
    SchneiderConfigError,
)
from airflow_provider_schneider.operators.base import SchneiderBaseOperator
from airflow_provider_schneider.pulls.arguments import MAX_LISTED, ItemErrorPolicy, as_items, chunks
from airflow_provider_schneider.pulls.plan import Call, PullPlan, PullStats, frozen
from airflow_provider_schneider.resources import PathSubstitution, get_resource

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_schneider.hooks.schneider import SchneiderHook
    from airflow_provider_schneider.pulls.resume import ResumablePull

__all__ = ["SchneiderNetPriceOperator", "SchneiderProductAvailabilityOperator", "SchneiderStockLevelOperator"]


@dataclass
class FanOutStats(PullStats):
    """A fan-out also notes the references not found and the answers that carried business errors."""

    not_found: list[str] = field(default_factory=list)
    business_errors: list[dict[str, Any]] = field(default_factory=list)


def _counted(stats: PullStats) -> FanOutStats:
    assert isinstance(stats, FanOutStats), stats
    return stats


class _ProductFanOutOperator(SchneiderBaseOperator):
    """One GET per product, at most ``max_concurrency`` in flight, results written in input order.

    :param product_references: references (templated; an upstream task's output works, also with
        ``.expand``). Items may be strings or dicts with ``reference`` plus per-item query fields.
    :param query: extra query parameters for every call (templated).
    :param on_not_found: ``"skip"`` (warn, list in the manifest) or ``"fail"``.
    :param path_substitutions: how ``/`` and ``\\`` in a reference are replaced before it becomes a path
        segment (templated): a rule name (``"percent"`` default, ``"tilde"``, ``"underscore"``), a mapping
        ``{"/": "~2F"}`` or a callable. Whatever the rule, they are never sent raw.
    :param on_item_error: ``"fail"`` (default): an item whose call fails (after its retries) fails the task;
        ``"collect"``: the pull goes on, the failed items (reference, status, error code) are listed in the
        manifest and in ``_<output name>.failed.json`` beside the output, and the task fails once more items
        failed than ``max_failed_items`` / ``max_failed_ratio`` allow (never all of them).
    :param max_failed_items: with ``"collect"``: the most failed items tolerated.
    :param max_failed_ratio: with ``"collect"``: the largest share of failed items tolerated (0 to 1).

    With retries, a retry fetches only the items the failed try did not answer (and those that failed):
    answers are staged beside the output like a paged pull's pages (``resumable``).
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
        on_item_error: str = "fail",
        max_failed_items: int | None = None,
        max_failed_ratio: float | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if on_not_found not in ("skip", "fail"):
            raise SchneiderConfigError(f"{self.task_id}: on_not_found must be 'skip' or 'fail'")
        self._item_policy = ItemErrorPolicy.checked(self.task_id, on_item_error, max_failed_items, max_failed_ratio)
        self.on_item_error = on_item_error
        self.max_failed_items = max_failed_items
        self.max_failed_ratio = max_failed_ratio
        self.product_references = product_references
        self.query = dict(query or {})
        self.on_not_found = on_not_found
        self.path_substitutions = path_substitutions
        _ = self.dataset_schema  # a schema_hints or schema_contract error fails the DAG's parse
        self.declare_default_assets()

    @classmethod
    def default_asset_from_kwargs(cls, kwargs: Mapping[str, Any]) -> Any:
        from airflow_provider_schneider.assets import connection_asset

        return connection_asset(cls.resource_name, kwargs.get("schneider_conn_id") or DEFAULT_CONN_ID)

    def default_asset(self) -> Any:
        """Per product would be an asset per reference: the connection scopes these pulls instead."""
        from airflow_provider_schneider.assets import connection_asset

        return connection_asset(self.resource_name, self.schneider_conn_id)

    def item_policy(self) -> ItemErrorPolicy:
        return self._item_policy

    def new_stats(self) -> FanOutStats:
        return FanOutStats()

    def reference_of(self, item: Any) -> str:
        return str(item["reference"] if isinstance(item, Mapping) else item)

    def call_for(self, item: Any) -> Call:
        """The GET for one item (a reference, or a dict with ``reference`` and per-item query fields)."""
        resource = get_resource(self.resource_name)
        extra = {k: v for k, v in item.items() if k != "reference"} if isinstance(item, Mapping) else {}
        path = resource.render_path({"product_reference": self.reference_of(item)}, self.path_substitutions)
        query = {**self.query, **extra}
        resource.check_params(query)
        return Call("GET", path, frozen(query), item=item)

    def prepare(self, context: Context, hook: SchneiderHook) -> PullPlan:
        # Every item's call is made here: a bad item fails before the first call, not half-way through.
        calls = tuple(self.call_for(item) for item in as_items(self.product_references))
        return PullPlan(self.resource_name, get_resource(self.resource_name).path, frozen(self.query), calls=calls)

    def fetch(self, hook: SchneiderHook, call: Call) -> Any:
        try:
            return super().fetch(hook, call)
        except SchneiderApiError as err:
            if err.status == 404 and self.on_not_found == "skip":
                return None
            raise

    def declared_resource(self) -> Any:
        return get_resource(self.resource_name)

    def to_record(self, item: Any, body: Any) -> dict[str, Any]:
        record = dict(body) if isinstance(body, Mapping) else {"response": body}
        record.setdefault("productReference", self.reference_of(item))
        return record

    def records_of_response(self, plan: PullPlan, call: Call, body: Any, stats: PullStats) -> list[Any]:
        if body is None:
            _counted(stats).not_found.append(self.reference_of(call.item))
            self.log.warning("Product %r not found by %s; skipped", self.reference_of(call.item), self.resource_name)
            return []
        return [self.to_record(call.item, body)]

    def manifest_facts(self, plan: PullPlan, stats: PullStats) -> dict[str, Any]:
        return {
            "resource": self.resource_name,
            "calls": stats.pages,  # one response per product (or per bulk chunk)
            "not_found": _counted(stats).not_found[:MAX_LISTED],
            "not_found_count": len(_counted(stats).not_found),
            **(
                {"failed_items": stats.failed[:MAX_LISTED], "failed_count": len(stats.failed)}
                if self._item_policy.collect
                else {}
            ),
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

    def prepare(self, context: Context, hook: SchneiderHook) -> PullPlan:
        if not self.bulk:
            return super().prepare(context, hook)
        path = get_resource("stock_levels_bulk").path
        query = frozen(self.query)
        refs = [self.reference_of(item) for item in as_items(self.product_references)]

        def call(chunk: Sequence[str]) -> Call:
            body = {"products": [{"productReference": r, "referenceType": self.reference_type} for r in chunk]}
            # A POST, but a read: retrying it cannot create anything.
            return Call("POST", path, query, json_body=body, retry=True, item=chunk)

        calls = tuple(call(chunk) for chunk in chunks(refs, self.bulk_size))
        return PullPlan(self.resource_name, path, query, calls=calls, method="POST")

    def records_of_response(self, plan: PullPlan, call: Call, body: Any, stats: PullStats) -> list[Any]:
        if not self.bulk:
            return super().records_of_response(plan, call, body, stats)
        found = []
        for entry in body if isinstance(body, list) else [body]:
            if isinstance(entry, Mapping) and entry.get("error"):
                _counted(stats).not_found.append(str(entry.get("productReference")))
                if self.on_not_found == "fail":
                    error = entry["error"]
                    detail = error if isinstance(error, Mapping) else {"userMessage": str(error)}
                    raise self.response_error(
                        f"product {entry.get('productReference')!r} came back with an error (on_not_found='fail')",
                        call.method,
                        call.path,
                        code=detail.get("code"),
                        user_message=detail.get("userMessage"),
                    )
                continue
            found.append(entry)
        return found


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

    def call_for(self, item: Any) -> Call:
        resource = get_resource(self.resource_name)
        extra = {k: v for k, v in item.items() if k != "reference"} if isinstance(item, Mapping) else {}
        query = {**self.query, **extra, "catalog-number": self.reference_of(item)}
        resource.check_params(query)
        return Call("GET", resource.render_path({}), frozen(query), item=item)

    def records_of_response(self, plan: PullPlan, call: Call, body: Any, stats: PullStats) -> list[Any]:
        if body is None:
            return super().records_of_response(plan, call, body, stats)
        reference = self.reference_of(call.item)
        record = self.to_record(call.item, body)
        record.setdefault("catalogNumber", reference)
        for message in record.get("warningMessages") or []:
            self.log.info("Net price warning for %s: %s", reference, message)
        errors = record.get("errorMessages") or []
        if not errors:
            return [record]
        codes = [e.get("code") if isinstance(e, Mapping) else str(e) for e in errors]
        _counted(stats).business_errors.append({"reference": reference, "codes": codes})
        self.log.warning("Net price for %s came back with errorMessages %s", reference, errors)
        return [] if self.on_business_error == "skip" else [record]

    def iter_records(
        self, hook: SchneiderHook, plan: PullPlan, stats: PullStats, resume: ResumablePull | None = None
    ) -> Generator[Any, None, None]:
        yield from super().iter_records(hook, plan, stats, resume)
        if self.on_business_error == "fail" and _counted(stats).business_errors:
            raise SchneiderBusinessError(
                f"{self.task_id}: {len(_counted(stats).business_errors)} product(s) came back with errorMessages "
                f"(on_business_error='fail'), e.g. {_counted(stats).business_errors[:5]}"
            )

    def manifest_facts(self, plan: PullPlan, stats: PullStats) -> dict[str, Any]:
        return {
            **super().manifest_facts(plan, stats),
            "business_errors": _counted(stats).business_errors[:MAX_LISTED],
            "business_error_count": len(_counted(stats).business_errors),
        }
