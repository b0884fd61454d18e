"""Product Catalog pulls: full scope, detail (``product_references``), delta (``date_of_reference``) and the
incremental delta that keeps a watermark (see :mod:`airflow_provider_schneider.pulls.watermark`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_schneider.exceptions import SchneiderConfigError
from airflow_provider_schneider.operators.api import SchneiderApiOperator
from airflow_provider_schneider.pulls.arguments import as_date, as_items, chunks, parse_date
from airflow_provider_schneider.pulls.plan import Call, PullPlan, PullStats, frozen

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_schneider.hooks.schneider import SchneiderHook
    from airflow_provider_schneider.pulls.resume import ResumablePull
    from airflow_provider_schneider.pulls.watermark import Window

#: Delta of the run's data interval: changes since its start (the backfill-friendly default) ...
DELTA_SINCE_INTERVAL_START = "{{ data_interval_start | ds }}"
#: ... and, with ``changed_before``, none from after its end, so each interval's file holds its own changes.
CHANGED_BEFORE_INTERVAL_END = "{{ data_interval_end | ds }}"
CHANGE_TYPES = ("new", "update", "delete", "all")


@dataclass
class CatalogStats(PullStats):
    """A catalog run also counts the records dropped for changing on or after ``changed_before``."""

    filtered_out: int = 0


@dataclass(frozen=True)
class CatalogPlan(PullPlan):
    """A catalog pull: the plan of any pull, plus the client-side end of the delta and the incremental window.

    :param changed_before: the end as rendered (or the window's end), for the manifest.
    :param before: records whose change date is on or after this date are dropped.
    """

    changed_before: str | None = None
    before: dt.date | None = None
    window: Window | None = None


def _catalog(plan: PullPlan) -> CatalogPlan:
    assert isinstance(plan, CatalogPlan), plan
    return plan


def _counted(stats: PullStats) -> CatalogStats:
    assert isinstance(stats, CatalogStats), stats
    return stats


class SchneiderProductCatalogOperator(SchneiderApiOperator):
    """Pull Product Catalog v2: full scope, detail (``product_references``) or delta (``date_of_reference``).

    For backfills pass ``date_of_reference=DELTA_SINCE_INTERVAL_START`` (``{{ data_interval_start | ds }}``)
    and ``changed_before=CHANGED_BEFORE_INTERVAL_END``: one DAG definition then serves daily schedules and
    any backfill range, each interval's file holding that interval's changes (see ``docs/backfills.md``).
    When a date and references are both given the API applies the delta and ignores the references.

    :param date_of_reference: delta start (templated); ``YYYY-MM-DD`` or any ISO timestamp.
    :param change_type: ``new``, ``update``, ``delete`` or ``all`` (templated).
    :param changed_before: drop records whose ``change_date_field`` is on or after this date (templated);
        the API only takes a start date, so this bounds the delta to the data interval client-side.
    :param product_references: detail mode (templated; a list, comma string or upstream XCom). Sent as
        repeated ``product-reference`` parameters, ``references_per_call`` per request, requests in order.
    :param incremental: delta since the last successful run of the same scope and change type (the
        watermark, kept in Airflow's asset state store and in the asset events), so a manual or late run pulls
        exactly what changed since then; see :mod:`airflow_provider_schneider.pulls.watermark`.
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
        self.incremental = incremental
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

    def _change_type(self, query: Mapping[str, Any]) -> str:
        change_type = str(query.get("change-type") or "all").strip().lower()
        if change_type not in CHANGE_TYPES:
            raise SchneiderConfigError(
                f"{self.task_id}: change_type must be one of {CHANGE_TYPES}, got {change_type!r}"
            )
        return change_type

    def _window(self, context: Context) -> Window:
        """The range this incremental run pulls (see :func:`.watermark.plan`)."""
        from airflow_provider_schneider import assets
        from airflow_provider_schneider.pulls import watermark

        assert self.catalog_entry is not None
        self.catalog_entry.check_params(self.query)  # the ids, rendered: they scope the watermark
        scope = assets.scope_segments("product_catalog", {}, {k: str(v) for k, v in self.query.items()})
        key = watermark.state_key(scope or [], self._change_type(self.query))
        window = watermark.plan(
            context,
            self.default_asset(),
            key,
            date_of_reference=self.query.get("date-of-reference") or None,
            changed_before=self.changed_before or None,
        )
        self.log.info(
            "Incremental delta [%s, %s) (since from the %s); last watermark %s (%s)",
            window.since,
            window.until,
            window.basis,
            window.previous,
            window.source,
        )
        return window

    def output_key(self, context: Context, plan: PullPlan) -> str:
        """Incremental pulls are named after the range they cover, so different ranges never share a file."""
        window = _catalog(plan).window
        if window is not None:
            return f"{window.since:%Y%m%d}T000000__{window.until:%Y%m%d}T000000"
        return super().output_key(context, plan)

    def after_pull(self, context: Context, plan: PullPlan) -> None:
        window = _catalog(plan).window
        if window is not None:
            from airflow_provider_schneider.pulls import watermark

            watermark.store_watermark(context, self.default_asset(), window)  # last: a failed pull never moves it

    # -- the plan -------------------------------------------------------------------------------------------

    def checked_params(self, query: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        path_params, query = super().checked_params(query)
        date = query.get("date-of-reference")
        if date in (None, ""):
            query.pop("date-of-reference", None)
            query.pop("change-type", None)
        else:
            query["date-of-reference"] = as_date(date, f"{self.task_id}: date_of_reference").isoformat()
            query["change-type"] = self._change_type(query)
        if "product-reference" in query:
            query["product-reference"] = [str(r) for r in as_items(query["product-reference"])]
        return path_params, query

    def prepare(self, context: Context, hook: SchneiderHook) -> CatalogPlan:
        window = self._window(context) if self.incremental else None
        query = dict(self.query)
        changed_before = self.changed_before
        if window is not None:
            query["date-of-reference"] = window.since.isoformat()
            changed_before = window.until.isoformat()
        path_params, query = self.checked_params(query)
        fields = self.plan_fields(hook, path_params, query)
        path = fields["path"]
        refs = query.get("product-reference")
        if "date-of-reference" not in query and refs and len(refs) > self.references_per_call:
            # Detail mode over many references: several requests (a URL has a length limit), results in order.
            batches = chunks(refs, self.references_per_call)
            fields["paginate"] = False
            fields["calls"] = tuple(
                Call("GET", path, frozen({**query, "product-reference": list(batch)}), item=batch) for batch in batches
            )
        before = as_date(changed_before, f"{self.task_id}: changed_before") if changed_before else None
        self._refuse_empty_window(query.get("date-of-reference"), before, context, window is not None)
        changed = str(changed_before) if changed_before else None
        return CatalogPlan(**fields, changed_before=changed, before=before, window=window)

    def _refuse_empty_window(
        self, since: str | None, before: dt.date | None, context: Context, incremental: bool
    ) -> None:
        """A delta ``[since, before)`` with no day in it would succeed with 0 records: fail before any call."""
        if since is None or before is None or dt.date.fromisoformat(since) < before:
            return
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if incremental:
            why = (
                "date_of_reference (the start of the first incremental pull) must be before changed_before or "
                "the end of the data interval"
            )
        elif start is not None and start == end:
            why = (
                f"this run's data interval has zero length ({start} to {end}): Airflow 3 gives cron schedules such "
                "as '@daily' zero-length intervals. Schedule the DAG with a timetable that has real intervals "
                "(CronDataIntervalTimetable('@daily', timezone='UTC') or a timedelta), or use incremental=True, "
                "which derives the range from the last successful pull"
            )
        elif start is not None and end is not None and start.date() == end.date():
            why = (
                f"the delta works in whole days (date-of-reference is a date) and this run's interval {start} to "
                f"{end} lies within one day: schedule the pull daily, or use incremental=True"
            )
        else:
            why = "check date_of_reference and changed_before"
        raise SchneiderConfigError(
            f"{self.task_id}: the catalog delta [{since}, {before.isoformat()}) is empty: date_of_reference must be "
            f"before changed_before, or the pull succeeds with nothing in it; {why}"
        )

    # -- pulling ----------------------------------------------------------------------------------------------

    def new_stats(self) -> CatalogStats:
        return CatalogStats()

    def iter_records(
        self, hook: SchneiderHook, plan: PullPlan, stats: PullStats, resume: ResumablePull | None = None
    ) -> Generator[Any, None, None]:
        before = _catalog(plan).before
        for record in super().iter_records(hook, plan, stats, resume):
            if before is not None and isinstance(record, Mapping):
                changed = record.get(self.change_date_field)
                if changed and self._change_date(plan, record, changed) >= before:
                    _counted(stats).filtered_out += 1
                    continue
            yield record

    def _change_date(self, plan: PullPlan, record: Mapping[str, Any], value: Any) -> dt.date:
        date = parse_date(value)
        if date is None:
            reference = record.get("commercialReference", "no reference")
            message = f"a record's '{self.change_date_field}' is {value!r}, not a date ({reference!r})"
            raise self.response_error(message, plan.method, plan.path)
        return date

    def manifest_facts(self, plan: PullPlan, stats: PullStats) -> dict[str, Any]:
        catalog = _catalog(plan)
        facts = super().manifest_facts(plan, stats)
        refs = facts["query"].pop("product-reference", None)
        if refs is not None:
            facts["product_references"] = len(refs)
        if catalog.changed_before:
            facts["changed_before"] = catalog.changed_before
            facts["filtered_out"] = _counted(stats).filtered_out
        if "date-of-reference" in plan.query:
            facts["since"] = plan.query["date-of-reference"]
            facts["change_type"] = plan.query.get("change-type")
            if catalog.before is not None:
                facts["until"] = catalog.before.isoformat()
        if catalog.window is not None:
            facts.update(catalog.window.facts())
        return facts
