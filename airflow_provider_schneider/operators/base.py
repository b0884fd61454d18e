"""The Airflow glue every Schneider operator shares: arguments into a plan, the hook as the pull's source,
the manifest, outlet assets, OpenLineage facets and XCom. The pull itself runs in :mod:`..pulls`.

``prepare()`` makes the plan from the rendered arguments once per ``execute``;
:func:`~airflow_provider_schneider.pulls.runner.run_plan` runs it with the hook as its source and fills a
stats object; the manifest is built from both.

Module level imports stay light (DAG files import operators on every parse loop): the hook, ``requests``,
``tenacity``, the token cache and object storage load inside ``execute``; asset naming (stdlib plus
``airflow.sdk``, which the DAG file already imported) when an operator is built; OpenLineage only when
Airflow's OpenLineage listener asks for facets.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_schneider.config.settings import DEFAULT_CONN_ID
from airflow_provider_schneider.exceptions import SchneiderResponseError
from airflow_provider_schneider.operators.pool import warn_without_pool, with_default_pool
from airflow_provider_schneider.pulls.arguments import max_age_seconds
from airflow_provider_schneider.pulls.naming import interval_key, map_index_of
from airflow_provider_schneider.pulls.plan import Call, PullPlan, PullResult, PullStats
from airflow_provider_schneider.pulls.report import end_line, log_repairs, start_line
from airflow_provider_schneider.pulls.target import checked_dataset_schema, checked_output_options, output_spec

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_schneider.client.pagination import HeldPages, Page
    from airflow_provider_schneider.hooks.schneider import SchneiderHook
    from airflow_provider_schneider.outputs.writer import OutputSpec
    from airflow_provider_schneider.pulls.arguments import ItemErrorPolicy
    from airflow_provider_schneider.pulls.resume import ResumablePull

__all__ = ["SchneiderBaseOperator"]

#: XCom rows live in the metadata database: the small-result mode refuses more than this by default.
DEFAULT_MAX_XCOM_RECORDS = 1000
DEFAULT_MAX_XCOM_BYTES = 512 * 1024


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else None


class SchneiderBaseOperator(BaseOperator):
    """Pulls records from a Schneider API and streams them to storage (JSON Lines, CSV or Parquet);
    returns a small manifest.

    :param schneider_conn_id: connection of type ``schneider``.
    :param output_path: target URI (templated; any ObjectStoragePath/fsspec scheme). A value ending in
        ``/`` is a folder that receives the default file name. Default:
        ``{output_base}/{dag_id}/{task_id}/{data interval}[/{name}={value}...]{extension}``: a mapped task
        adds one segment per mapped argument (``country=FR``), so each map instance has its own object.
    :param output_base: base URI of the default path (templated; default ``$AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE``
        or ``file://$AIRFLOW_HOME/schneider_data``).
    :param output_format: ``"jsonl"`` (default), ``"csv"`` or ``"parquet"`` (needs the ``parquet`` extra).
    :param compression: ``None`` or ``"gzip"`` for jsonl and csv (adds ``.gz``); ``None`` (snappy),
        ``"snappy"``, ``"zstd"`` or ``"none"`` for parquet.
    :param max_records_per_file: split the output into part files of at most this many records; the
        target is then a folder of ``part-00000<extension>``, ``part-00001...``.
    :param max_bytes_per_file: split once a part holds this many stored bytes (a part may overshoot by one
        record, or for parquet by one row group).
    :param output_layout: ``"default"`` (one file per interval, named as above) or ``"hive"``: a partition
        folder per interval, ``{output_base}/{dag_id}/{task_id}/dt=YYYY-MM-DD/[{name}={value}/]part-00000<ext>``,
        so one hive-partitioned read covers a whole backfill; a rerun replaces its partition atomically.
    :param schema_contract: what records that differ from the declared schema do (docs/outputs.md):
        ``"evolve"`` (default: converted where lossless, the rest kept in ``_extra``), ``"freeze"`` (any
        difference fails the pull before anything is committed) or ``"discard_value"`` (null, counted).
    :param schema_hints: field name -> type (``"double"``, ``"list<struct<sku: string>>"``...), added to (or
        replacing types of) the resource's declared schema; with an ``endpoint`` and no hints, the columns
        are inferred from each pull's records.
    :param csv_escape_formulas: CSV only: a string cell or header starting with ``=``, ``+``, ``-``, ``@``, tab
        or carriage return gets a leading ``'`` (OWASP's rule against formula injection in spreadsheets).
    :param resumable: a retry of a paginated pull continues after the pages its failed try staged (Airflow
        >= 3.3, task state store), once it has proved they still match the API. Default ``None``: on when the
        task has retries; ``False`` turns it off.
    :param resume_max_age: a checkpoint older than this (seconds or a ``timedelta``; default 12 hours) is
        not resumed: the pull starts from page 1.
    :param storage_conn_id: Airflow connection for the object store (s3, gcs, ...), if needed.
    :param return_records: return the records themselves through XCom instead of writing a file, for small
        results only: more than ``max_xcom_records`` records or ``max_xcom_bytes`` of JSON fails the task
        with a clear error (XCom lives in the metadata database).
    :param max_concurrency: parallel calls for this task (capped by Schneider's limit of 10; every process of
        a host that uses the same client shares ``client_max_in_flight`` calls, 10 by default).
    :param pool: Airflow's own argument. Default: the pool ``[schneider] pool`` names, if any (the cap across
        hosts; see :mod:`airflow_provider_schneider.operators.pool`).
    :param retry_max_attempts: per-task override of the connection's retry attempts.
    :param retry_max_total_wait: per-task override of the connection's total retry wait (seconds).
    :param outlets: Airflow's own argument. Default: one Schneider asset for the resource and scope pulled
        (see :mod:`airflow_provider_schneider.assets`), whose events carry the manifest as ``extra``; pass a
        list to replace it, ``[]`` to declare none.
    """

    template_fields: Sequence[str] = ("output_path", "output_base")
    ui_color = "#3dcd58"  # Schneider green

    def __init__(
        self,
        *,
        schneider_conn_id: str = DEFAULT_CONN_ID,
        output_path: str | None = None,
        output_base: str | None = None,
        output_format: str = "jsonl",
        compression: str | None = None,
        max_records_per_file: int | None = None,
        max_bytes_per_file: int | None = None,
        csv_escape_formulas: bool = False,
        output_layout: str = "default",
        schema_contract: str = "evolve",
        schema_hints: Mapping[str, Any] | None = None,
        resumable: bool | None = None,
        resume_max_age: float | dt.timedelta = dt.timedelta(hours=12),
        storage_conn_id: str | None = None,
        return_records: bool = False,
        max_xcom_records: int = DEFAULT_MAX_XCOM_RECORDS,
        max_xcom_bytes: int = DEFAULT_MAX_XCOM_BYTES,
        max_concurrency: int | None = None,
        retry_max_attempts: int | None = None,
        retry_max_total_wait: float | None = None,
        **kwargs: Any,
    ):
        given = {**(kwargs.get("default_args") or {}), **kwargs}
        super().__init__(**with_default_pool(kwargs))
        # An explicit ``outlets``/``inlets`` (also ``[]``, also from default_args) wins over our defaults.
        self._outlets_given = "outlets" in given
        self._inlets_given = "inlets" in given
        checked_output_options(
            self.task_id,
            output_format,
            compression,
            max_records_per_file,
            max_bytes_per_file,
            csv_escape_formulas,
            output_layout,
        )
        max_age_seconds(resume_max_age, self.task_id)
        self.schneider_conn_id = schneider_conn_id
        self.output_path = output_path
        self.output_base = output_base
        self.output_format = output_format
        self.compression = compression
        self.max_records_per_file = max_records_per_file
        self.max_bytes_per_file = max_bytes_per_file
        self.csv_escape_formulas = csv_escape_formulas
        self.output_layout = output_layout
        self.schema_contract = schema_contract
        self.schema_hints = dict(schema_hints) if schema_hints is not None else None
        self.resumable = resumable
        self.resume_max_age = resume_max_age
        self.storage_conn_id = storage_conn_id
        self.return_records = return_records
        self.max_xcom_records = max_xcom_records
        self.max_xcom_bytes = max_xcom_bytes
        self.max_concurrency = max_concurrency
        self.retry_max_attempts = retry_max_attempts
        self.retry_max_total_wait = retry_max_total_wait
        #: The last successful pull of this instance (OpenLineage reads it after ``execute``).
        self.last_pull: PullResult | None = None
        #: The template fields as written, kept when Airflow renders them (see ``_do_render_template_fields``).
        self.unrendered_fields: dict[str, Any] = {}

    # -- to implement -------------------------------------------------------------------------------------

    def prepare(self, context: Context, hook: SchneiderHook) -> PullPlan:
        """The plan of this ``execute``: rendered (templated) arguments checked and normalised, before any
        call or file is opened. The operator's own attributes stay as rendered."""
        raise NotImplementedError

    def records_of_response(self, plan: PullPlan, call: Call, body: Any, stats: PullStats) -> list[Any]:
        """The records one answer of a plan's ``calls`` holds (fan-outs also note what was missing)."""
        raise NotImplementedError

    def manifest_facts(self, plan: PullPlan, stats: PullStats) -> dict[str, Any]:
        """Secret-free facts about what was pulled, added to the manifest."""
        return {}

    def declared_resource(self) -> Any:
        """The catalog entry whose declared record schema the output follows (``None``: none)."""
        return None

    @property
    def dataset_schema(self) -> Any:
        """The declared schema of this task's output (resource + ``schema_hints``), or ``None`` (inferred)."""
        return checked_dataset_schema(self.task_id, self.declared_resource(), self.schema_hints, self.schema_contract)

    def after_pull(self, context: Context, plan: PullPlan) -> None:
        """Runs last, once the output is in place and the asset events annotated (a failed pull never gets here)."""

    # -- running a plan -----------------------------------------------------------------------------------

    def response_error(self, message: str, method: str, path: str, **details: Any) -> SchneiderResponseError:
        """Data in an answer that cannot be used: a response error (Airflow may retry), not a config error."""
        return SchneiderResponseError(
            f"{self.task_id}: {message}", conn_id=self.schneider_conn_id, method=method, path=path, **details
        )

    def fetch(self, hook: SchneiderHook, call: Call) -> Any:
        return hook.request(call.method, call.path, params=call.query, json=call.json_body, retry=call.retry)

    def item_policy(self) -> ItemErrorPolicy | None:
        """What a fan-out's failed item does (``None``: it fails the pull)."""
        return None

    def new_stats(self) -> PullStats:
        """What a run of this operator counts (fan-outs and the catalog count more)."""
        return PullStats()

    def iter_records(
        self, hook: SchneiderHook, plan: PullPlan, stats: PullStats, resume: ResumablePull | None = None
    ) -> Generator[Any, None, None]:
        """Run ``plan`` with the hook as its source (see :func:`~airflow_provider_schneider.pulls.runner.run_plan`)."""
        from airflow_provider_schneider.pulls.runner import run_plan

        def records_of(call: Call, body: Any, counted: PullStats) -> list[Any]:
            return self.records_of_response(plan, call, body, counted)

        source = _HookSource(self, hook)
        yield from run_plan(plan, stats, source, records_of, log=self.log, resume=resume, policy=self.item_policy())

    # -- assets ---------------------------------------------------------------------------------------------

    @classmethod
    def default_asset_from_kwargs(cls, kwargs: Mapping[str, Any]) -> Any:
        """The asset this class declares for these constructor arguments, as known at parse time (``None``:
        none). Used by ``.partial()``, where no instance exists yet; instances use :meth:`default_asset`."""
        return None

    def default_asset(self) -> Any:
        return None

    @classmethod
    def inlets_from_kwargs(cls, kwargs: Mapping[str, Any], asset: Any) -> list[Any]:
        """Inlets a mapped instance needs besides the user's (the incremental catalog reads its own asset)."""
        return []

    def declare_default_assets(self) -> None:
        """Declare :meth:`default_asset` as the outlet unless the DAG author chose their own outlets."""
        asset = self.default_asset()
        if asset is not None and not self._outlets_given:
            self.outlets = [asset]

    @classmethod
    def partial(cls, **kwargs: Any) -> Any:
        """``.partial()`` with the default outlet computed from the partial (parse-time) arguments: a mapped
        argument is unknown then, so the scope falls back as for templated values."""
        defaults = kwargs.get("default_args") or {}
        asset = cls.default_asset_from_kwargs(kwargs)
        if asset is not None:
            if "outlets" not in kwargs and "outlets" not in defaults:
                kwargs["outlets"] = [asset]
            extra_inlets = cls.inlets_from_kwargs(kwargs, asset)
            if extra_inlets:
                inlets = list(kwargs.get("inlets", defaults.get("inlets")) or [])
                kwargs["inlets"] = inlets + [i for i in extra_inlets if i not in inlets]
        return super().partial(**with_default_pool(kwargs))

    def asset_event_extra(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        from airflow_provider_schneider.assets import event_extra

        return event_extra(manifest)

    def _annotate_outlet_events(self, context: Context, manifest: Mapping[str, Any]) -> None:
        """Attach the (small, secret-free) manifest to this task's asset events."""
        events = context.get("outlet_events")
        if events is None or not self.outlets:
            return
        from airflow.sdk import Asset

        extra = self.asset_event_extra(manifest)
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                events[outlet].extra.update(extra)

    # -- OpenLineage ----------------------------------------------------------------------------------------

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Input: the API endpoint(s) read (namespace = API base URL); output: the file written.

        Called by Airflow's OpenLineage listener after a successful ``execute``; the OpenLineage packages
        are imported here only, so the provider works without them.
        """
        from airflow_provider_schneider.lineage import operator_lineage

        return operator_lineage(self.last_pull.lineage_facts() if self.last_pull else {})

    # -- shared -------------------------------------------------------------------------------------------

    def _do_render_template_fields(self, parent: Any, template_fields: Any, *args: Any, **kwargs: Any) -> None:
        """Keep the template fields as written before Airflow renders them in place: the default output name
        and the output root depend on which values came from a template (a run's conf is user input)."""
        if parent is self:
            self.unrendered_fields = {name: getattr(self, name, None) for name in template_fields}
        super()._do_render_template_fields(parent, template_fields, *args, **kwargs)

    def get_hook(self) -> SchneiderHook:
        from airflow_provider_schneider.hooks.schneider import SchneiderHook

        overrides = {
            "max_concurrency": self.max_concurrency,
            "retry_max_attempts": self.retry_max_attempts,
            "retry_max_total_wait": self.retry_max_total_wait,
        }
        return SchneiderHook(self.schneider_conn_id, overrides={k: v for k, v in overrides.items() if v is not None})

    def output_key(self, context: Context, plan: PullPlan) -> str:
        """Name of the default output (before the mapped values and the extension): one per data interval."""
        return interval_key(context)

    def output_spec(self, context: Context, plan: PullPlan) -> OutputSpec:
        """Where and how this ``execute`` writes (the default name carries interval and mapped values)."""
        return output_spec(self, context, self.output_key(context, plan))

    def resolve_output_path(self, context: Context, plan: PullPlan) -> str:
        return self.output_spec(context, plan).target_uri()

    def execute(self, context: Context) -> Any:
        from airflow_provider_schneider import metrics

        self.last_pull = None
        warn_without_pool(self)
        hook = self.get_hook()
        try:
            plan = self.prepare(context, hook)
            self.log.info("%s", start_line(plan))
            stats = self.new_stats()
            result: Any
            if self.return_records:
                from airflow_provider_schneider.outputs.xcom import collect_for_xcom

                with contextlib.closing(self.iter_records(hook, plan, stats)) as records:
                    result, output = collect_for_xcom(records, self.task_id, self.max_xcom_records, self.max_xcom_bytes)
                stats.finish()
                log_repairs(self.log, output)
                manifest = self.build_manifest(plan, stats, context, output)
                self.log.info("%s", end_line("Pulled", plan, stats, manifest, "; returning them through XCom"))
            else:
                result = manifest = self._write(hook, plan, stats, context)
            self.last_pull = PullResult(plan, stats, manifest, hook.settings.api_base_url)
        finally:
            hook.close()
        metrics.incr("pull.records", manifest["records"])
        metrics.incr("pull.pages", stats.pages)
        self._annotate_outlet_events(context, manifest)
        self.after_pull(context, plan)
        return result

    def build_manifest(
        self, plan: PullPlan, stats: PullStats, context: Context, output: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``output`` (the sink's facts, or the XCom mode's) plus pages, data interval, map index and the
        operator's :meth:`manifest_facts`: the one manifest shape of both modes."""
        map_index = map_index_of(context)
        return {
            **output,
            "pages": stats.pages,
            "data_interval_start": _iso(context.get("data_interval_start")),
            "data_interval_end": _iso(context.get("data_interval_end")),
            **({"map_index": map_index} if map_index >= 0 else {}),
            **self.manifest_facts(plan, stats),
        }

    def _write(self, hook: SchneiderHook, plan: PullPlan, stats: PullStats, context: Context) -> dict[str, Any]:
        from airflow_provider_schneider.operators.writing import write_output

        return write_output(self, hook, plan, stats, context)


class _HookSource:
    """The hook as a pull's source: pages of a paginated plan, and one call through the operator's ``fetch``
    (which knows, for example, that a fan-out skips a 404)."""

    def __init__(self, operator: SchneiderBaseOperator, hook: SchneiderHook):
        self._operator, self._hook = operator, hook
        self.max_concurrency = hook.settings.max_concurrency

    def pages(self, plan: PullPlan, held: HeldPages | None) -> Iterator[Page]:
        assert plan.records_field is not None
        return self._hook.iter_page_objects(
            plan.path, params=plan.query, records_field=plan.records_field, page_size=plan.page_size, held=held
        )

    def fetch(self, call: Call) -> Any:
        return self._operator.fetch(self._hook, call)
