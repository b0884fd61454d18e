"""The incremental window rules of :mod:`airflow_provider_schneider.pulls.watermark` on a fake task context: the
asset state store and the asset events are small fakes of Airflow's accessors (``store[asset].get/set``,
``inlet_events[asset]`` newest last, or its ``ascending(False).limit(n)`` query)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
from airflow.sdk import Asset

from airflow_provider_schneider.pulls import watermark
from airflow_provider_schneider.pulls.watermark import (
    BASIS_FALLBACK,
    BASIS_RERUN,
    BASIS_WATERMARK,
    SOURCE_ASSET_EVENT,
    SOURCE_NONE,
    SOURCE_STATE_STORE,
    plan,
    read_watermark,
    state_key,
    store_watermark,
)

ASSET = Asset(name="schneider.product_catalog.S.C", uri="schneider://product_catalog/S/C")
KEY = state_key(["S", "C"], "all")


def day(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


class AssetState:
    """One asset's accessor in the state store (strings in, strings out); ``writes`` keeps every ``set``."""

    def __init__(self, values: dict[str, Any] | None = None):
        self.values = dict(values or {})
        self.writes: list[tuple[str, str]] = []

    def get(self, key: str) -> Any:
        return self.values.get(key)

    def set(self, key: str, value: str) -> None:
        self.values[key] = value
        self.writes.append((key, value))


class StateStore:
    """``context["asset_state_store"]``: subscript by asset (an asset it does not know is a ``KeyError``)."""

    def __init__(self, **per_asset: AssetState):
        self.by_name = per_asset

    def __getitem__(self, asset: Any) -> AssetState:
        return self.by_name[asset.name]


class EventQuery:
    """An inlet events accessor with Airflow's query API: what it was asked is kept."""

    def __init__(self, events: list[Any]):
        self.events, self.asked = events, []

    def ascending(self, value: bool) -> EventQuery:
        self.asked.append(("ascending", value))
        return self

    def limit(self, count: int) -> list[Any]:
        self.asked.append(("limit", count))
        return list(reversed(self.events))[:count]


def event(extra: dict, *, run_id: str = "earlier", task_id: str = "pull", map_index: int | None = -1) -> Any:
    return SimpleNamespace(
        extra=extra, source_dag_id="d", source_run_id=run_id, source_task_id=task_id, source_map_index=map_index
    )


def ours(watermark_: str, since: str | None = None, until: str | None = None, **kw: Any) -> Any:
    extra = {"watermark": watermark_, "watermark_key": KEY}
    if since and until:
        extra.update(since=since, until=until)
    return event(extra, **kw)


def ctx(
    start: str | None = "2026-11-07",
    end: str | None = "2026-11-08",
    *,
    run_id: str = "scheduled__2026-11-07",
    state: AssetState | None = None,
    events: Any = None,
    map_index: int = -1,
    **extra: Any,
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "ti": SimpleNamespace(dag_id="d", task_id="pull", map_index=map_index),
        "run_id": run_id,
        "data_interval_start": pendulum.parse(start) if start else None,
        "data_interval_end": pendulum.parse(end) if end else None,
        **extra,
    }
    if state is not None:
        context["asset_state_store"] = StateStore(**{ASSET.name: state})
    if events is not None:
        context["inlet_events"] = InletEvents(events)
    return context


class InletEvents:
    """``context["inlet_events"]`` for :data:`ASSET`: looked up by the asset, as the Task SDK's accessor is (a
    dict would hash the asset, which Airflow 3.1's ``Asset`` cannot do: its hash hashes a dict)."""

    def __init__(self, events: Any) -> None:
        self.events = events

    def __getitem__(self, asset: Any) -> Any:
        if getattr(asset, "uri", None) != ASSET.uri:
            raise KeyError(asset)
        return self.events


# -- the first pull -------------------------------------------------------------------------------------------------


def test_the_first_pull_falls_back_to_the_data_interval():
    window = plan(ctx(state=AssetState(), events=[]), ASSET, KEY)
    assert (window.since, window.until, window.basis) == (day("2026-11-07"), day("2026-11-08"), BASIS_FALLBACK)
    assert (window.previous, window.source, window.watermark) == (None, SOURCE_NONE, day("2026-11-08"))
    assert window.facts() == {
        "since": "2026-11-07",
        "until": "2026-11-08",
        "basis": "fallback",
        "previous_watermark": None,
        "watermark_source": "none",
        "watermark": "2026-11-08",
        "watermark_key": KEY,
    }


def test_date_of_reference_starts_the_first_pull_and_changed_before_ends_it():
    window = plan(ctx(), ASSET, KEY, date_of_reference="2026-11-01", changed_before="2026-11-06T00:00:00+00:00")
    assert (window.since, window.until, window.watermark) == (day("2026-11-01"), day("2026-11-06"), day("2026-11-06"))


def test_without_an_interval_the_run_date_ends_the_range_and_the_day_before_starts_it():
    manual = ctx(None, None, dag_run=SimpleNamespace(run_after=pendulum.parse("2026-11-12T09:30:00+00:00")))
    window = plan(manual, ASSET, KEY)
    assert (window.since, window.until) == (day("2026-11-11"), day("2026-11-12"))
    logical = ctx(None, None, logical_date=pendulum.parse("2026-11-03T00:00:00+00:00"))
    assert plan(logical, ASSET, KEY).until == day("2026-11-03")


def test_an_interval_shorter_than_a_day_pulls_the_day_before_its_end():
    window = plan(ctx("2026-11-08T06:00:00", "2026-11-08T12:00:00"), ASSET, KEY)
    assert (window.since, window.until) == (day("2026-11-07"), day("2026-11-08"))


# -- a watermark found ----------------------------------------------------------------------------------------------


def test_the_state_store_watermark_starts_the_range():
    window = plan(ctx(state=AssetState({KEY: "2026-11-03"})), ASSET, KEY)
    assert (window.since, window.until, window.basis) == (day("2026-11-03"), day("2026-11-08"), BASIS_WATERMARK)
    assert (window.previous, window.source, window.watermark) == (
        day("2026-11-03"),
        SOURCE_STATE_STORE,
        day("2026-11-08"),
    )


def test_the_watermark_wins_over_date_of_reference():
    window = plan(ctx(state=AssetState({KEY: "2026-11-03"})), ASSET, KEY, date_of_reference="2026-10-01")
    assert window.since == day("2026-11-03")


def test_without_a_state_entry_the_newest_event_of_this_key_is_read():
    other_type = event({"watermark": "2026-11-09", "watermark_key": state_key(["S", "C"], "new")})
    other_producer = event({"uri": "file:///x", "records": 3})
    not_a_date = event({"watermark": "soon", "watermark_key": KEY})
    events = [ours("2026-11-02"), ours("2026-11-04"), other_type, other_producer, not_a_date]  # newest last
    window = plan(ctx(state=AssetState(), events=events), ASSET, KEY)
    assert (window.since, window.source, window.basis) == (day("2026-11-04"), SOURCE_ASSET_EVENT, BASIS_WATERMARK)


def test_a_state_entry_that_is_no_date_falls_back_to_the_events():
    found = read_watermark(ctx(state=AssetState({KEY: "garbage"}), events=[ours("2026-11-05")]), ASSET, KEY)
    assert found == (day("2026-11-05"), SOURCE_ASSET_EVENT)
    assert read_watermark(ctx(state=AssetState({KEY: "garbage"})), ASSET, KEY) == (None, SOURCE_NONE)


def test_an_asset_the_stores_do_not_know_is_no_watermark():
    context = ctx(state=AssetState({KEY: "2026-11-03"}), events=[ours("2026-11-03")])
    stranger = Asset(name="other", uri="x://other")
    assert read_watermark(context, stranger, KEY) == (None, SOURCE_NONE)


def test_events_are_queried_newest_first_and_bounded():
    query = EventQuery([ours("2026-11-01"), ours("2026-11-05")])
    window = plan(ctx(events=query), ASSET, KEY)
    assert window.since == day("2026-11-05")
    assert ("ascending", False) in query.asked and ("limit", watermark.EVENT_SEARCH_LIMIT) in query.asked


def test_only_the_newest_events_are_searched():
    events = [ours("2026-11-05")] + [event({"uri": f"file:///{i}"}) for i in range(watermark.EVENT_SEARCH_LIMIT)]
    assert plan(ctx(events=events), ASSET, KEY).source == SOURCE_NONE  # ours is beyond the search window


# -- already delivered, rerun ---------------------------------------------------------------------------------------


def test_a_range_already_delivered_pulls_its_own_interval_and_leaves_the_watermark():
    window = plan(ctx("2026-11-01", "2026-11-02", state=AssetState({KEY: "2026-11-05"})), ASSET, KEY)
    assert (window.since, window.until, window.basis) == (day("2026-11-01"), day("2026-11-02"), BASIS_FALLBACK)
    assert (window.previous, window.watermark) == (day("2026-11-05"), day("2026-11-05"))  # never backwards


def test_a_watermark_equal_to_until_is_already_delivered():
    window = plan(ctx(state=AssetState({KEY: "2026-11-08"})), ASSET, KEY)
    assert (window.since, window.basis, window.watermark) == (day("2026-11-07"), BASIS_FALLBACK, day("2026-11-08"))


def test_a_rerun_of_a_successful_task_instance_pulls_the_same_range_again():
    earlier = ours("2026-11-04", "2026-11-01", "2026-11-04", run_id="scheduled__2026-11-07")
    later = ours("2026-11-06", "2026-11-04", "2026-11-06", run_id="manual__later")
    context = ctx(state=AssetState({KEY: "2026-11-06"}), events=[earlier, later])

    window = plan(context, ASSET, KEY)

    assert (window.since, window.until, window.basis) == (day("2026-11-01"), day("2026-11-04"), BASIS_RERUN)
    assert (window.previous, window.watermark) == (day("2026-11-06"), day("2026-11-06"))  # not moved back


def test_only_this_very_task_instance_makes_a_rerun():
    same_run = dict(run_id="scheduled__2026-11-07")
    for other in (
        ours("2026-11-04", "2026-11-01", "2026-11-04", **same_run, task_id="other_task"),
        ours("2026-11-04", "2026-11-01", "2026-11-04", **same_run, map_index=2),
        ours("2026-11-04", "2026-11-01", "2026-11-04", run_id="scheduled__2026-11-06"),
        ours("2026-11-04", **same_run),  # no range recorded: nothing to repeat
    ):
        window = plan(ctx(events=[other]), ASSET, KEY)
        assert window.basis == BASIS_WATERMARK and window.since == day("2026-11-04"), other


def test_a_mapped_task_instance_reruns_its_own_map_index():
    mine = ours("2026-11-04", "2026-11-02", "2026-11-04", run_id="r", map_index=2)
    window = plan(ctx(run_id="r", map_index=2, events=[mine]), ASSET, KEY)
    assert (window.basis, window.since) == (BASIS_RERUN, day("2026-11-02"))
    none_index = ours("2026-11-04", "2026-11-02", "2026-11-04", run_id="r", map_index=None)
    assert plan(ctx(run_id="r", events=[none_index]), ASSET, KEY).basis == BASIS_RERUN  # None is -1


# -- storing the watermark ------------------------------------------------------------------------------------------


def test_store_watermark_moves_forward():
    state = AssetState({KEY: "2026-11-03"})
    context = ctx(state=state)
    store_watermark(context, ASSET, plan(context, ASSET, KEY))
    assert state.writes == [(KEY, "2026-11-08")]


def test_store_watermark_never_moves_backwards_even_when_another_run_moved_it_meanwhile():
    state = AssetState({KEY: "2026-11-03"})
    context = ctx(state=state)
    window = plan(context, ASSET, KEY)  # until 2026-11-08
    state.values[KEY] = "2026-11-20"  # a later run finished first
    store_watermark(context, ASSET, window)
    assert state.values[KEY] == "2026-11-20"


def test_store_watermark_of_a_first_pull_writes_an_iso_date():
    state = AssetState()
    context = ctx(state=state)
    store_watermark(context, ASSET, plan(context, ASSET, KEY))
    assert state.values == {KEY: "2026-11-08"}


def test_store_watermark_without_a_state_store_is_a_no_op():
    context = ctx(events=[])
    store_watermark(context, ASSET, plan(context, ASSET, KEY))  # Airflow < 3.3: the asset event carries it
    assert "asset_state_store" not in context


@pytest.mark.parametrize(("scope", "change_type"), [(["S", "C"], "all"), (["S"], "new")])
def test_state_keys_are_per_scope_and_change_type(scope, change_type):
    assert state_key(scope, change_type) == "/".join(["delta_watermark", *scope, change_type])
    assert state_key(scope, change_type) != state_key(scope, "delete")
