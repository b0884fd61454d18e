"""What names a default output: the interval key, mapped and run-decided segments, and where a rendered
location may go (``output_spec`` on a real operator, rendered by hand as Airflow would). What
``test_output_integrity`` already checks (forged hashed names, run ids ``a:b``/``a+b``, the DAG's own folder
for a run-decided path, the provider's reserved names) is not repeated here."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from types import SimpleNamespace
from typing import Any

import jinja2
import pendulum
import pytest

from airflow_provider_schneider.outputs.location import OutputLocationError
from airflow_provider_schneider.pulls.naming import (
    MAX_SEGMENT_VALUE,
    interval_key,
    map_index_of,
    mapped_segments,
    task_key,
    templated_arguments,
    try_number_of,
)
from tests.support.operators import context as task_context

KEY = "20261104T000000__20261105T000000"
_HASHED = re.compile(r"^h[0-9a-f]{12}$")


def hashed(value: Any) -> str:
    """The name a hashed value gets (sha256 of its canonical JSON)."""
    canonical = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return "h" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


# -- interval_key ------------------------------------------------------------------------------------------------


def test_the_interval_names_the_output_to_the_second():
    ctx = {
        "data_interval_start": pendulum.datetime(2026, 11, 4, tz="UTC"),
        "data_interval_end": pendulum.datetime(2026, 11, 5, 12, 30, 15, tz="UTC"),
        "run_id": "scheduled__2026-11-04",
    }
    assert interval_key(ctx) == "20261104T000000__20261105T123015"
    assert interval_key({**ctx, "run_id": "manual__other"}) == interval_key(ctx)  # the run does not matter


@pytest.mark.parametrize("missing", ["data_interval_start", "data_interval_end"])
def test_without_a_whole_interval_the_run_id_names_the_output(missing):
    ctx = {**task_context(), "run_id": "manual_run.1-x"}
    ctx[missing] = None
    assert interval_key(ctx) == "manual_run.1-x"  # already readable: kept as it is


def test_without_interval_or_run_id_the_name_is_manual():
    assert interval_key({}) == "manual"
    assert interval_key({"run_id": ""}) == "manual"


def test_a_run_id_with_other_characters_is_made_readable_and_keeps_a_hash_of_itself():
    run_id = "scheduled__2026-11-04T00:00:00+00:00"
    key = interval_key({"run_id": run_id})
    assert key == f"scheduled__2026-11-04T00_00_00_00_00-{hashed(run_id)}"
    assert interval_key({"run_id": run_id}) == key  # stable across processes
    assert "/" not in interval_key({"run_id": "a/../../b"}) and ".." in interval_key({"run_id": "a/../../b"})


def test_a_readable_run_id_never_takes_the_name_of_a_hashed_one():
    hashed_name = interval_key({"run_id": "a:b"})
    assert interval_key({"run_id": hashed_name}) != hashed_name


# -- task_key, map index, try number ---------------------------------------------------------------------------


def test_the_task_key_names_the_task_instance_not_the_try():
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=-1, try_number=1)
    key = task_key({"ti": ti})
    assert re.fullmatch(r"[0-9a-f]{12}", key)
    assert task_key({"ti": SimpleNamespace(**{**vars(ti), "try_number": 3})}) == key
    for field, other in (("dag_id", "e"), ("run_id", "s"), ("task_id", "u"), ("map_index", 0)):
        assert task_key({"ti": SimpleNamespace(**{**vars(ti), field: other})}) != key


def test_map_index_and_try_number_read_safely():
    assert map_index_of({}) == -1 and map_index_of({"ti": SimpleNamespace(map_index=None)}) == -1
    assert map_index_of({"ti": SimpleNamespace(map_index=3)}) == 3
    assert try_number_of({}) == 0 and try_number_of({"ti": SimpleNamespace(try_number="2")}) == 0
    assert try_number_of({"ti": SimpleNamespace(try_number=2)}) == 2


# -- mapped_segments ------------------------------------------------------------------------------------------------


def test_plain_values_are_readable_segments_sorted_by_name():
    assert mapped_segments({"order_status": "open", "country": "FR", "page_size": 50, "ratio": 1.5}) == [
        "country=FR",
        "order_status=open",
        "page_size=50",
        "ratio=1.5",
    ]


def test_booleans_and_none_read_as_json():
    assert mapped_segments({"legacy": True, "x": None, "y": False}) == ["legacy=true", "x=null", "y=false"]


def test_a_flat_mapping_contributes_its_items_and_is_qualified_only_when_ambiguous():
    assert mapped_segments({"path_params": {"country": "DE", "site": 7}}) == ["country=DE", "site=7"]
    assert mapped_segments({"country": "FR", "path_params": {"country": "DE"}}) == [
        "country=FR",
        "path_params.country=DE",
    ]
    assert mapped_segments({"path_params": {"country": "DE"}, "query": {"country": "X", "n": 1}}) == [
        "n=1",
        "path_params.country=DE",
        "query.country=X",
    ]


@pytest.mark.parametrize(
    "value",
    [
        ["ABC1", "ABC2"],  # a list
        {"nested": {"a": 1}},  # a mapping that is not flat
        {},  # an empty mapping
        "",  # nothing readable
        "x" * (MAX_SEGMENT_VALUE + 1),  # too long
        "{{ params.country }}",  # an unrendered template
        dt.date(2026, 11, 4),  # not a plain value
    ],
    ids=["list", "nested", "empty-mapping", "empty", "long", "template", "date"],
)
def test_anything_but_a_short_plain_value_is_named_by_a_hash(value):
    [segment] = mapped_segments({"v": value})
    assert segment == f"v={hashed(value)}"


def test_a_value_of_the_longest_readable_length_stays_readable():
    assert mapped_segments({"v": "x" * MAX_SEGMENT_VALUE}) == [f"v={'x' * MAX_SEGMENT_VALUE}"]


def test_a_value_is_one_path_segment_and_a_name_is_quoted_too():
    assert mapped_segments({"q": "a/b c?#"}) == ["q=a%2Fb%20c%3F%23"]
    assert mapped_segments({"a b/c": "x"}) == ["a%20b%2Fc=x"]
    assert mapped_segments({"q": "..", "r": "."}) == ["q=..", "r=."]  # quoted as they are: confinement refuses them


@pytest.mark.parametrize("name", ["apikey", "api_key", "token", "access_token", "client_secret", "password", "Secret"])
def test_values_of_secret_names_are_always_hashed(name):
    [segment] = mapped_segments({name: "FR"})
    assert segment == f"{name}={hashed('FR')}" and "FR" not in segment
    segments = mapped_segments({"query": {name: "s3cr3t", "country": "FR"}, "path_params": {name: "x"}})
    assert segments == sorted(["country=FR", f"path_params.{name}={hashed('x')}", f"query.{name}={hashed('s3cr3t')}"])


@pytest.mark.parametrize("value", ["h0123456789ab", "hffffffffffff"])
def test_a_readable_value_shaped_like_a_hash_is_escaped(value):
    [segment] = mapped_segments({"ref": value})
    assert segment == f"ref=%68{value[1:]}"
    assert not _HASHED.match(segment.split("=", 1)[1])


@pytest.mark.parametrize("value", ["H0123456789AB", "h0123456789abc", "h0123456789a", "hxyz456789abc"])
def test_values_only_resembling_a_hash_are_left_alone(value):
    assert mapped_segments({"ref": value}) == [f"ref={value}"]


def test_a_hashed_name_is_stable_and_tells_values_apart():
    first = mapped_segments({"refs": ["A", "B"]})
    assert mapped_segments({"refs": ["A", "B"]}) == first
    assert mapped_segments({"refs": ["B", "A"]}) != first
    assert mapped_segments({"refs": {"b": [1], "a": [2]}}) == mapped_segments({"refs": {"a": [2], "b": [1]}})


# -- templated_arguments --------------------------------------------------------------------------------------------


class StubTask:
    """What ``templated_arguments`` reads of an operator: the fields as written, as rendered, and the task's
    Jinja environment (Airflow's, with its ``ds`` filter)."""

    def __init__(self, unrendered: dict[str, Any], env: Any = None, **rendered: Any):
        self.unrendered_fields = unrendered
        self._env = env
        for name, value in rendered.items():
            setattr(self, name, value)

    def get_template_env(self) -> Any:
        if self._env is not None:
            return self._env
        from airflow.sdk.definitions._internal.templater import SandboxedEnvironment

        env = SandboxedEnvironment()
        env.filters["ds"] = lambda value: value.strftime("%Y-%m-%d")
        return env


def test_nothing_rendered_is_nothing_decided():
    assert templated_arguments(StubTask({})) == {}
    assert templated_arguments(SimpleNamespace()) == {}


def test_a_template_reading_more_than_the_interval_is_decided_by_the_run():
    task = StubTask(
        {"order_status": "{{ params.status }}", "order_number": "{{ dag_run.conf['n'] }}"},
        order_status="open",
        order_number="FR123",
    )
    assert templated_arguments(task) == {"order_status": "open", "order_number": "FR123"}


@pytest.mark.parametrize(
    "template",
    [
        "{{ data_interval_start | ds }}",
        "{{ data_interval_end.strftime('%Y%m%d') }}",
        "{% if data_interval_start %}x{% endif %}",
        "{# a comment #}",
    ],
)
def test_a_template_of_the_interval_alone_adds_nothing(template):
    assert templated_arguments(StubTask({"since": template}, since="2026-11-04")) == {}


@pytest.mark.parametrize("template", ["{{ ds }}", "{{ macros.ds_add(ds, 1) }}", "{{ ti.xcom_pull('up') }}"])
def test_other_context_variables_are_decided_by_the_run(template):
    assert templated_arguments(StubTask({"since": template}, since="2026-11-04")) == {"since": "2026-11-04"}


def test_a_template_the_environment_cannot_parse_counts_as_decided():
    assert templated_arguments(StubTask({"q": "{{ broken"}, q="x")) == {"q": "x"}


def test_the_dags_own_delimiters_are_parsed_with_the_tasks_environment():
    env = jinja2.Environment(variable_start_string="[[", variable_end_string="]]")
    task = StubTask({"country": "[[ params.country ]]"}, env=env, country="DE")
    assert templated_arguments(task) == {"country": "DE"}


def test_plain_values_and_location_fields_are_never_request_values():
    task = StubTask(
        {"country": "FR", "output_path": "{{ params.x }}", "output_base": object(), "path_substitutions": {"a": 1}},
        country="FR",
        output_path="file:///x",
        output_base="file:///y",
        path_substitutions={"a": 2},
    )
    assert templated_arguments(task) == {}


def test_a_value_that_is_not_text_was_decided_upstream():
    xcom = object()  # an XComArg, a callable: resolved by the run
    assert templated_arguments(StubTask({"refs": xcom}, refs=["A", "B"])) == {"refs": ["A", "B"]}
    nested = ["FIXED", "{{ params.ref }}"]
    assert templated_arguments(StubTask({"refs": nested}, refs=["FIXED", "B"])) == {"refs": ["FIXED", "B"]}


def test_a_mapping_keeps_only_its_items_the_run_decided():
    task = StubTask(
        {"query": {"country": "FR", "status": "{{ params.s }}", "since": "{{ data_interval_start | ds }}"}},
        query={"country": "FR", "status": "open", "since": "2026-11-04", "added": 1},
    )
    assert templated_arguments(task) == {"query": {"status": "open", "added": 1}}
    same = StubTask({"query": {"country": "FR"}}, query={"country": "FR"})
    assert templated_arguments(same) == {}


# -- output_spec on a real operator --------------------------------------------------------------------------------


def order_op(*, in_dag: bool = False, **kwargs: Any):
    """The operator as a DAG file makes it (``in_dag``: inside ``DAG("naming")``, as a mapped task always is)."""
    from airflow.sdk import DAG

    from airflow_provider_schneider.operators import SchneiderOrderStatusOperator

    if not in_dag:
        return SchneiderOrderStatusOperator(task_id="pull", country="FR", **kwargs)
    with DAG("naming", schedule=None):
        return SchneiderOrderStatusOperator(task_id="pull", country="FR", **kwargs)


def spec_of(op, unrendered: dict, context: dict | None = None):
    """``output_spec`` as it runs once Airflow rendered ``op``: ``unrendered`` is what the DAG file said."""
    from airflow_provider_schneider.pulls.target import output_spec

    op.unrendered_fields = {name: getattr(op, name) for name in op.template_fields} | unrendered
    return output_spec(op, context or task_context(), KEY)


def test_the_default_location_is_base_dag_task_interval(tmp_path):
    op = order_op(output_base=f"file://{tmp_path}/data/")
    assert spec_of(op, {}).uri == f"file://{tmp_path}/data/adhoc_airflow/pull/{KEY}.jsonl"
    gz = order_op(output_base=f"file://{tmp_path}/data", compression="gzip")
    assert spec_of(gz, {}).uri.endswith(f"/pull/{KEY}.jsonl.gz")
    parts = order_op(output_base=f"file://{tmp_path}/data", max_records_per_file=10)
    assert spec_of(parts, {}).uri.endswith(f"/pull/{KEY}")  # a set is a folder: no extension


def test_the_default_base_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE", f"file://{tmp_path}/env-base/")
    assert spec_of(order_op(), {}).uri == f"file://{tmp_path}/env-base/adhoc_airflow/pull/{KEY}.jsonl"


def test_an_output_path_ending_in_a_slash_is_a_folder_for_the_default_name(tmp_path):
    op = order_op(output_path=f"file://{tmp_path}/exports/", output_format="csv")
    assert spec_of(op, {}).uri == f"file://{tmp_path}/exports/{KEY}.csv"


def test_run_decided_values_and_the_map_index_join_the_default_name(tmp_path):
    op = order_op(output_base=f"file://{tmp_path}/data", in_dag=True)
    op.query = {"order-status": "open"}
    ctx = task_context(map_index=3)  # its mapped arguments cannot be read here: named by the map index
    spec = spec_of(op, {"query": {"order-status": "{{ params.status }}"}}, ctx)
    assert spec.uri == f"file://{tmp_path}/data/naming/pull/{KEY}/map_3/order-status=open.jsonl"


def test_a_secret_decided_by_the_run_never_reaches_the_name(tmp_path):
    op = order_op(output_base=f"file://{tmp_path}/data")
    op.query = {"apikey": "Sup3rS3cret"}
    spec = spec_of(op, {"query": {"apikey": "{{ var.value.key }}"}})
    assert "Sup3rS3cret" not in spec.uri and spec.uri.endswith(f"/apikey={hashed('Sup3rS3cret')}.jsonl")


def test_a_mapped_task_with_an_explicit_file_path_is_warned_about(tmp_path, monkeypatch):
    from tests.support.fakes import LineLog

    op = order_op(output_path=f"file://{tmp_path}/exports/orders.jsonl", in_dag=True)
    log = LineLog()
    monkeypatch.setattr(type(op), "log", log)  # the operator's structlog logger, as a list
    spec = spec_of(op, {}, task_context(map_index=2))
    assert spec.uri == f"file://{tmp_path}/exports/orders.jsonl"
    [warning] = log.lines("warning")
    assert warning.startswith("pull is mapped and writes to the explicit output_path file://")
    assert spec_of(order_op(output_path=f"file://{tmp_path}/exports/orders.jsonl"), {}).uri.endswith("orders.jsonl")
    assert log.lines("warning") == [warning]  # not mapped: no warning


@pytest.mark.parametrize(
    ("rendered", "allowed"),
    [("EU/orders.jsonl", True), ("../orders.jsonl", False), ("EU/%2e%2e/%2e%2e/x.jsonl", False)],
)
def test_a_partly_templated_output_path_stays_under_its_fixed_part(tmp_path, rendered, allowed):
    op = order_op(output_path=f"file://{tmp_path}/exports/{rendered}")
    unrendered = {"output_path": f"file://{tmp_path}/exports/{{{{ params.region }}}}/orders.jsonl"}
    if allowed:
        assert spec_of(op, unrendered).uri == f"file://{tmp_path}/exports/{rendered}"
    else:
        with pytest.raises(OutputLocationError, match="pull: output_path"):
            spec_of(op, unrendered)


def test_a_templated_output_base_stays_under_its_fixed_part(tmp_path):
    unrendered = {"output_base": f"file://{tmp_path}/data/{{{{ params.team }}}}"}
    ok = order_op(output_base=f"file://{tmp_path}/data/team-a")
    assert spec_of(ok, unrendered).uri == f"file://{tmp_path}/data/team-a/adhoc_airflow/pull/{KEY}.jsonl"
    escaped = order_op(output_base=f"file://{tmp_path}/elsewhere")
    with pytest.raises(OutputLocationError, match="pull: output_base"):
        spec_of(escaped, unrendered)


def test_a_run_decided_output_path_must_also_stay_under_a_given_base(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE", f"file://{tmp_path}/data")
    inside_both = order_op(
        output_base=f"file://{tmp_path}/data/adhoc_airflow/team",
        output_path=f"file://{tmp_path}/data/adhoc_airflow/team/x.jsonl",
    )
    assert spec_of(inside_both, {"output_path": "{{ params.target }}"}).uri.endswith("/team/x.jsonl")
    outside_base = order_op(
        output_base=f"file://{tmp_path}/data/adhoc_airflow/team",
        output_path=f"file://{tmp_path}/data/adhoc_airflow/other/x.jsonl",
    )
    with pytest.raises(OutputLocationError, match="is not inside"):
        spec_of(outside_base, {"output_path": "{{ params.target }}"})


def test_a_base_rendered_by_the_dags_own_delimiters_stays_in_the_dags_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE", f"file://{tmp_path}/data")
    op = order_op(output_base=f"file://{tmp_path}/somewhere")
    with pytest.raises(OutputLocationError, match="pull: output_base"):
        spec_of(op, {"output_base": "[[ params.base ]]"})  # rendered, yet no ``{{``: the whole value was decided
