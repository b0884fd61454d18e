"""Where an operator's records go: output options, the default location named by what a pull holds, and the
checks that keep a rendered location inside its root.

Default location: ``{output_base}/{dag_id}/{task_id}/{data interval}`` plus one ``name=value`` segment per
mapped argument (``.../country=FR.jsonl``; ``map_<i>`` only when the mapped values cannot be read) and per
request value that came from a template (``country="{{ params.country }}"`` rendered as ``DE`` adds
``country=DE``), so two different requests never share a default target. A template that reads nothing but
the data interval (``{{ data_interval_start | ds }}``) adds nothing: the interval is already in the name. A
name depends only on the interval and the values, so ``airflow dags test`` and a scheduler run of one
interval write the same object, and reordering an ``.expand()`` list moves no data.

Stdlib only at import time (Jinja, which Airflow's DAG files load anyway, when a template is inspected): DAG
files import the operators, which import this module.
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
from airflow_provider_schneider.outputs.location import check_confined, is_templated, shown_uri, static_root

if TYPE_CHECKING:
    from airflow_provider_schneider.outputs.writer import OutputSpec

OUTPUT_BASE_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE"
#: A mapped value longer than this (as text) is named by a short hash of its JSON instead.
MAX_SEGMENT_VALUE = 64
#: Template fields that say where the output goes, not what is pulled.
LOCATION_FIELDS = ("output_path", "output_base", "path_substitutions")
#: Template variables fixed by the data interval, which the default name already holds (not ``macros``: it
#: holds ``uuid``, ``random`` and ``datetime.now`` too).
INTERVAL_VARIABLES = frozenset({"data_interval_start", "data_interval_end"})
#: A readable segment value never looks like a hash (``h`` + 12 hex): such a value gets its ``h`` escaped.
_HASH_SHAPE = re.compile(r"^h[0-9a-f]{12}$")
_HASHED_RUN_ID = re.compile(r"-h[0-9a-f]{12}$")


def checked_output_options(
    task_id: str,
    output_format: str,
    compression: str | None,
    max_records: Any,
    max_bytes: Any,
    csv_escape_formulas: Any = False,
) -> None:
    """The operator's output arguments, checked when the DAG is parsed (the error names the task)."""
    try:
        check_output_options(output_format, compression, max_records, max_bytes, csv_escape_formulas)
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
    run_id = str(context.get("run_id") or "manual")
    readable = re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    # Two run ids that read alike (``a:b``, ``a+b``) must not share a name: then a short hash of the real one;
    # and a run id that already ends like such a hash gets one too, so it cannot take another's name.
    if readable == run_id and not _HASHED_RUN_ID.search(run_id):
        return run_id
    return f"{readable}-{_hashed(run_id)}"


def task_key(context: Mapping[str, Any]) -> str:
    """A short hash of the task instance (dag, run, task, map index): the same for all its tries."""
    ti = context.get("ti")
    parts = [getattr(ti, name, None) for name in ("dag_id", "run_id", "task_id", "map_index")]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]


def try_number_of(context: Mapping[str, Any]) -> int:
    number = getattr(context.get("ti"), "try_number", None)
    return number if isinstance(number, int) else 0


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
    quoted = quote(text, safe="-_.~@+")
    return "%68" + quoted[1:] if _HASH_SHAPE.match(quoted) else quoted


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


def _decided_at_run_time(value: Any, env: Any, *, changed: bool = True) -> bool:
    """Whether an unrendered argument (that rendering ``changed``) can differ between runs of one interval: a
    template that reads more than the data interval (or does not compile in the task's Jinja environment), a
    string that rendering changed without a ``{{`` (the DAG's own delimiters), or anything that is not a plain
    value (an upstream XCom, a callable). Containers: any item (items not known to have changed)."""
    if isinstance(value, Mapping):
        return any(_decided_at_run_time(v, env, changed=False) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_decided_at_run_time(v, env, changed=False) for v in value)
    if value is None or isinstance(value, (int, float, bool)):
        return False
    if not isinstance(value, str):
        return True
    if not is_templated(value):
        return changed
    import jinja2
    from jinja2 import meta

    try:
        variables = meta.find_undeclared_variables(env.parse(value))
    except jinja2.TemplateError:
        return True
    return not variables <= INTERVAL_VARIABLES


def templated_arguments(task: Any) -> dict[str, Any]:
    """The request values of ``task`` decided in this run (a template, an upstream XCom): template field ->
    rendered value (for a mapping, only its items so decided). Empty when nothing was rendered."""
    unrendered: Mapping[str, Any] = getattr(task, "unrendered_fields", None) or {}
    if not unrendered:
        return {}
    env = task.get_template_env()  # Airflow's filters (``ds``...) and the DAG's own macros
    out: dict[str, Any] = {}
    for name, before in unrendered.items():
        if name in LOCATION_FIELDS:
            continue
        after = getattr(task, name, None)
        if isinstance(before, Mapping) and isinstance(after, Mapping):
            changed = {
                key: value
                for key, value in after.items()
                if key not in before or (before[key] != value and _decided_at_run_time(before[key], env))
            }
            if changed:
                out[name] = changed
        elif before != after and _decided_at_run_time(before, env):
            out[name] = after
    return out


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


def collect_for_xcom(
    records: Iterator[Any], task_id: str, max_records: int, max_bytes: int
) -> tuple[list[Any], dict[str, Any]]:
    """The small-result mode: every record in a list, refused beyond ``max_records`` or ``max_bytes`` of JSON
    (XCom lives in the metadata database), and the facts of the output for the manifest. Records are
    repaired as a file's would be (a lone surrogate as U+FFFD, ``NaN``/``Infinity`` as null, counted in
    ``data_fixes``): XCom is strict JSON."""
    from datetime import datetime, timezone

    from airflow_provider_schneider.outputs.encoders import DataFixes, encode_line

    fixes = DataFixes()
    collected: list[Any] = []
    size = 0
    for received in records:
        line, record = encode_line(received, fixes)
        size += len(line)
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
    fetched_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    output: dict[str, Any] = {"records": len(collected), "format": "xcom", "fetched_at": fetched_at}
    if fixes:
        output["data_fixes"] = fixes.as_dict()
    return collected, output


def log_repairs(log: Any, manifest: Mapping[str, Any]) -> None:
    """One WARNING when the output is not the records verbatim (docs/outputs.md, "Encodings")."""
    fixes, folded = manifest.get("data_fixes"), manifest.get("overflow_keys")
    if fixes:
        log.warning(
            "Repaired %s lone surrogate(s) (now U+FFFD) and %s NaN/Infinity value(s) (now null) so the output is "
            "valid UTF-8 and strict JSON; counted in the manifest's data_fixes",
            fixes.get("lone_surrogates", 0),
            fixes.get("non_finite_numbers", 0),
        )
    if folded:
        log.warning(
            "The records have more distinct top-level fields than the column cap: %s rare field value(s) went, as "
            "JSON text, into the column %r (manifest: overflow_keys)",
            folded,
            manifest.get("overflow_column"),
        )
