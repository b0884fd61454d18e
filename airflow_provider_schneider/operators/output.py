"""Where an operator's records go: output options, the default location named by what a pull holds, and the
one function that streams a pull into a :class:`~airflow_provider_schneider.outputs.writer.RecordWriter`.

Default location: ``{output_base}/{dag_id}/{task_id}/{data interval}`` plus, for a mapped task, one
``name=value`` segment per mapped argument (``.../country=FR.jsonl``; ``map_<i>`` only when the mapped values
cannot be read). A name depends only on the interval and the values, so ``airflow dags test`` and a scheduler
run of one interval write the same object, and reordering an ``.expand()`` list moves no data.

Stdlib only at import time: DAG files import the operators, which import this module.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_provider_schneider.exceptions import SchneiderConfigError
from airflow_provider_schneider.outputs.formats import check_output_options

if TYPE_CHECKING:
    from airflow_provider_schneider.outputs.writer import OutputSpec

OUTPUT_BASE_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE"
#: A mapped value longer than this (as text) is named by a short hash of its JSON instead.
MAX_SEGMENT_VALUE = 64


def checked_output_options(
    task_id: str, output_format: str, compression: str | None, max_records: Any, max_bytes: Any
) -> None:
    """The operator's output arguments, checked when the DAG is parsed (the error names the task)."""
    try:
        check_output_options(output_format, compression, max_records, max_bytes)
    except ValueError as exc:
        raise SchneiderConfigError(f"{task_id}: {exc}") from None


def default_output_base() -> str:
    """``$AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE``, else ``file://$AIRFLOW_HOME/schneider_data``."""
    base = os.environ.get(OUTPUT_BASE_ENV)
    if base:
        return base.rstrip("/")
    home = os.environ.get("AIRFLOW_HOME") or os.path.join(os.path.expanduser("~"), "airflow")
    return f"file://{os.path.abspath(home)}/schneider_data"


def interval_key(context: Mapping[str, Any]) -> str:
    """One name per data interval (so a rerun replaces its own output); run id when there is no interval."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is not None and end is not None:
        return f"{start:%Y%m%dT%H%M%S}__{end:%Y%m%dT%H%M%S}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(context.get("run_id") or "manual"))


def map_index_of(context: Mapping[str, Any]) -> int:
    index = getattr(context.get("ti"), "map_index", -1)
    return -1 if index is None else int(index)


def mapped_arguments(context: Mapping[str, Any], task: Any) -> dict[str, Any] | None:
    """The arguments ``.expand()`` gave this map instance (``None`` when not mapped, or not readable).

    Airflow keeps them on the DAG's mapped operator; the running task is the unmapped copy. Resolving them
    again reads the same upstream XCom the rendering read, in the same order.
    """
    dag = getattr(task, "dag", None)
    mapped = getattr(dag, "task_dict", {}).get(getattr(task, "task_id", None)) if dag is not None else None
    expand = getattr(mapped, "_expand_mapped_kwargs", None)
    if expand is None:
        return None
    try:
        values, _ = expand(context)
        return dict(values)
    except Exception:  # noqa: BLE001 - a private Airflow API: any failure means "name by map index"
        return None


def _segment_value(value: Any) -> str:
    if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        text = str(value)
    elif isinstance(value, bool) or value is None:
        text = json.dumps(value)
    else:
        text = ""
    if not text or len(text) > MAX_SEGMENT_VALUE or "{{" in text:
        return _hashed(value)
    return quote(text, safe="-_.~@+")


def _hashed(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return "h" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _is_flat(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(v, (str, int, float, bool)) or v is None for v in value.values())
    )


def mapped_segments(arguments: Mapping[str, Any]) -> list[str]:
    """``{"country": "FR"}`` -> ``["country=FR"]``; a mapping of plain values (``path_params={"country":
    "FR"}``) contributes its own items, named ``path_params.country`` where the bare name would be ambiguous;
    anything else one ``name=h<hash>`` segment. Values of secret-looking names (``apikey``, ``token``) are
    always hashed. Sorted by name: stable."""
    from airflow_provider_schneider.redaction import is_secret_name

    seen = [str(k) for name, value in arguments.items() for k in (value if _is_flat(value) else [name])]
    pairs: dict[str, Any] = {}
    for name, value in arguments.items():
        if _is_flat(value):
            for key, item in value.items():
                pairs[str(key) if seen.count(str(key)) == 1 else f"{name}.{key}"] = item
        else:
            pairs[str(name)] = value
    segments = []
    for name, value in sorted(pairs.items()):
        shown = _hashed(value) if is_secret_name(name.rsplit(".", 1)[-1]) else _segment_value(value)
        segments.append(f"{quote(name, safe='-_.')}={shown}")
    return segments


def output_spec(task: Any, context: Mapping[str, Any], key: str) -> OutputSpec:
    """Where and how ``task`` (a Schneider operator) writes in this ``execute``: its ``output_path`` (a
    folder when it ends in ``/``), else the default location; ``key`` names the interval."""
    import dataclasses

    from airflow_provider_schneider.outputs.writer import OutputSpec

    how = OutputSpec(
        "",
        task.output_format,
        task.compression,
        task.max_records_per_file,
        task.max_bytes_per_file,
        task.storage_conn_id,
    )
    map_index = map_index_of(context)
    segments: list[str] = []
    if map_index >= 0:
        arguments = mapped_arguments(context, task)
        segments = mapped_segments(arguments) if arguments else [f"map_{map_index}"]
    name = "/".join([key, *segments]) + ("" if how.split else how.extension)
    if task.output_path:
        uri = str(task.output_path)
        if uri.endswith("/"):
            uri += name
        elif map_index >= 0:
            task.log.warning(
                "%s is mapped and writes to the explicit output_path %s: make sure it differs per map index "
                "({{ ti.map_index }}), or map instances overwrite each other",
                task.task_id,
                uri,
            )
    else:
        base = str(task.output_base or default_output_base()).rstrip("/")
        uri = f"{base}/{task.dag_id}/{task.task_id}/{name}"
    return dataclasses.replace(how, uri=uri)


def collect_for_xcom(records: Iterator[Any], task_id: str, max_records: int, max_bytes: int) -> list[Any]:
    """The small-result mode: every record in a list, refused beyond ``max_records`` or ``max_bytes`` of JSON
    (XCom lives in the metadata database)."""
    from airflow_provider_schneider.outputs.encoders import encode_record

    collected: list[Any] = []
    size = 0
    for record in records:
        size += len(encode_record(record))
        if len(collected) >= max_records:
            limit = f"max_xcom_records={max_records} records"
        elif size > max_bytes:
            limit = f"max_xcom_bytes={max_bytes} bytes of JSON"
        else:
            collected.append(record)
            continue
        raise SchneiderConfigError(
            f"{task_id}: return_records=True but the result exceeds {limit} (stopped at record "
            f"{len(collected) + 1}). XCom lives in the metadata database: write the records to storage "
            "(return_records=False, the default) and pass the manifest, or raise the limit deliberately"
        )
    return collected
