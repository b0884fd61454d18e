"""What names a pull's default output: the data interval, the task instance, mapped values and the request
values the run decided (a template, an upstream XCom).

A name depends only on the interval and the values, so ``airflow dags test`` and a scheduler run of one
interval write the same object, and reordering an ``.expand()`` list moves no data; two runs of one interval
whose conf renders another request get other names. A template that reads nothing but the data interval
(``{{ data_interval_start | ds }}``) adds nothing: the interval is already in the name. Stdlib only at import
time (Jinja, which Airflow's DAG files load anyway, when a template is inspected).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from airflow_provider_schneider.outputs.location import is_templated

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


def partition_key(key: str, context: Mapping[str, Any]) -> str:
    """The hive partition of an output named ``key`` (an :func:`interval_key`, or an operator's own range of
    the same shape): ``dt=YYYY-MM-DD`` when it covers exactly that UTC day; another range adds
    ``interval=<key>`` under the day it starts, a run without an interval ``run=<key>`` under its logical day,
    so two outputs of one day never share (and replace) a partition."""
    import datetime as dt

    try:
        start, end = (dt.datetime.strptime(side, "%Y%m%dT%H%M%S") for side in key.split("__"))
    except ValueError:
        moment = context.get("logical_date") or context.get("run_after") or dt.datetime.now(dt.timezone.utc)
        return f"dt={moment:%Y-%m-%d}/run={key}"
    day = f"dt={start:%Y-%m-%d}"
    whole_day = start.time() == dt.time(0) and end - start == dt.timedelta(days=1)
    return day if whole_day else f"{day}/interval={key}"


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
