"""Where a pull's records go: output options, the default location (named by :mod:`.naming`), and the
checks that keep a rendered location inside its root.

Default location: ``{output_base}/{dag_id}/{task_id}/{data interval}`` plus one ``name=value`` segment per
mapped argument and per request value the run decided (``country="{{ params.country }}"`` rendered as ``DE``
adds ``country=DE``), so two different requests never share a default target.

Stdlib only at import time: DAG files import the operators, which import this module.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_schneider.exceptions import SchneiderConfigError
from airflow_provider_schneider.outputs.formats import check_output_options
from airflow_provider_schneider.outputs.location import check_confined, is_templated, shown_uri, static_root
from airflow_provider_schneider.pulls.naming import (
    LOCATION_FIELDS,
    map_index_of,
    mapped_arguments,
    mapped_segments,
    partition_key,
    templated_arguments,
)

if TYPE_CHECKING:
    from airflow_provider_schneider.outputs.declared import DatasetSchema
    from airflow_provider_schneider.outputs.writer import OutputSpec

OUTPUT_BASE_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE"


def checked_output_options(
    task_id: str,
    output_format: str,
    compression: str | None,
    max_records: Any,
    max_bytes: Any,
    csv_escape_formulas: Any = False,
    output_layout: Any = "default",
) -> None:
    """The operator's output arguments, checked when the DAG is parsed (the error names the task)."""
    try:
        check_output_options(output_format, compression, max_records, max_bytes, csv_escape_formulas, output_layout)
    except ValueError as exc:
        raise SchneiderConfigError(f"{task_id}: {exc}") from None


def checked_dataset_schema(
    task_id: str, resource: Any, hints: Mapping[str, Any] | None, contract: Any
) -> DatasetSchema | None:
    """The declared schema a task writes (its resource's, with the DAG author's ``schema_hints``), checked when
    the DAG is parsed; ``None``: nothing declared, columns inferred per pull."""
    from airflow_provider_schneider.outputs.declared import dataset_schema

    declared = getattr(resource, "record_schema", None)
    try:
        return dataset_schema(
            getattr(resource, "name", None), declared, getattr(resource, "schema_version", 1), hints, contract, task_id
        )
    except ValueError as exc:
        raise SchneiderConfigError(str(exc)) from None


def default_output_base() -> str:
    """``$AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE``, else ``file://$AIRFLOW_HOME/schneider_data``."""
    base = os.environ.get(OUTPUT_BASE_ENV)
    if base:
        return base.rstrip("/")
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return f"file://{os.path.abspath(home)}/schneider_data"


def _root(task: Any, field: str, rendered: str, mapped: Mapping[str, Any]) -> str | None:
    """Where ``field`` must stay once rendered: the fixed part of its template; the task's own folder under the
    default base when the run decides the whole location (a template from the first character, a mapped or
    upstream value, a template in other delimiters); ``None`` for a literal the DAG author wrote."""
    unrendered = (getattr(task, "unrendered_fields", None) or {}).get(field, rendered)
    if field in mapped or not isinstance(unrendered, str):
        root: str | None = ""
    elif unrendered != rendered and not is_templated(unrendered):
        root = ""  # rendered by delimiters of the DAG's own Jinja environment
    else:
        root = static_root(unrendered)
    if root == "":
        return f"{default_output_base()}/{task.dag_id}/"
    return root


def output_spec(task: Any, context: Mapping[str, Any], key: str) -> OutputSpec:
    """Where and how ``task`` (a Schneider operator) writes in this ``execute``: its ``output_path`` (a
    folder when it ends in ``/``), else the default location; ``key`` names the interval. A location that
    leaves its root is an :class:`~airflow_provider_schneider.outputs.location.OutputLocationError` here,
    before any call."""
    import dataclasses

    from airflow_provider_schneider.outputs.writer import OutputSpec

    how = OutputSpec(
        "",
        task.output_format,
        task.compression,
        task.max_records_per_file,
        task.max_bytes_per_file,
        task.storage_conn_id,
        csv_escape_formulas=task.csv_escape_formulas,
        layout=task.output_layout,
        schema=task.dataset_schema,
    )
    map_index = map_index_of(context)
    arguments: dict[str, Any] = {}
    segments: list[str] = []
    mapped: dict[str, Any] = {}
    if map_index >= 0:
        mapped = mapped_arguments(context, task) or {}
        if mapped:
            arguments.update({k: v for k, v in mapped.items() if k not in LOCATION_FIELDS})
        else:
            segments = [f"map_{map_index}"]
    arguments.update(templated_arguments(task))
    segments += mapped_segments(arguments) if arguments else []
    if how.layout == "hive":  # a partition folder per interval: .../dt=2026-01-05/[country=FR/]part-00000...
        key = partition_key(key, context)
    name = "/".join([key, *segments]) + ("" if how.split else how.extension)
    base = str(task.output_base or default_output_base()).rstrip("/")
    if task.output_base:
        check_confined(base, _root(task, "output_base", str(task.output_base), mapped), f"{task.task_id}: output_base")
    if task.output_path:
        uri = str(task.output_path)
        if uri.endswith("/"):
            uri += name
        elif map_index >= 0:
            task.log.warning(
                "%s is mapped and writes to the explicit output_path %s: make sure it differs per map index "
                "({{ ti.map_index }}), or map instances overwrite each other",
                task.task_id,
                shown_uri(uri),
            )
        root = _root(task, "output_path", str(task.output_path), mapped)
        # A run-decided path also stays under a base the author gave.
        roots = [root, base + "/"] if root is not None and task.output_base else [root]
        field = "output_path"
    else:
        uri, roots, field = f"{base}/{task.dag_id}/{task.task_id}/{name}", [base + "/"], "output_base"
    spec = dataclasses.replace(how, uri=uri)
    for root in roots:
        check_confined(spec.target_uri(), root, f"{task.task_id}: {field}")
    return spec
