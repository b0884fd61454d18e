"""Fan-out pulls without Airflow: the item-error policy, its bounds, and answers staged for a retry that then
fetches only what is missing (a dict task-state store, a real target folder, a fake lookup)."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from airflow_provider_schneider.exceptions import SchneiderApiError, SchneiderConfigError
from airflow_provider_schneider.outputs.staging import ChunkOwner
from airflow_provider_schneider.outputs.storage import to_storage_path
from airflow_provider_schneider.pulls.arguments import ItemErrorPolicy
from airflow_provider_schneider.pulls.checkpoint import seal_key
from airflow_provider_schneider.pulls.fanout import FanOutResume, SchneiderItemErrors, run_calls
from airflow_provider_schneider.pulls.plan import Call, PullPlan, PullStats, frozen
from tests.support.fakes import DictStore, LineLog

REFERENCES = [f"REF{i:04d}" for i in range(1, 201)]


class NoProgress:
    def update(self, stats: PullStats) -> None:
        pass


class Lookup:
    """A stock lookup per reference; ``bad`` references answer HTTP 400, ``down_at`` fails the whole try."""

    def __init__(self, bad: set[str] = frozenset(), down_at: str | None = None):  # type: ignore[assignment]
        self.bad, self.down_at, self.asked = set(bad), down_at, []

    def __call__(self, call: Call) -> Any:
        self.asked.append(call.item)
        if call.item == self.down_at:
            raise RuntimeError("the gateway went away")
        if call.item in self.bad:
            raise SchneiderApiError(
                "bad reference",
                conn_id="schneider_default",
                method="GET",
                path=call.path,
                status=400,
                code="INVALID_REFERENCE",
                user_message="no such item",
            )
        return {"stock": int(call.item[3:]) * 3}


def plan_of(references: list[str]) -> PullPlan:
    calls = tuple(Call("GET", f"/stock/{r}", frozen(None), item=r) for r in references)
    return PullPlan("stock_level", "/stock/{product_reference}", frozen(None), calls=calls)


def records_of(call: Call, body: Any, stats: PullStats) -> list[Any]:
    return [{"productReference": call.item, **body}]


def pull(lookup: Lookup, policy: ItemErrorPolicy = ItemErrorPolicy(), resume: FanOutResume | None = None, refs=None):
    stats = PullStats()
    plan = plan_of(REFERENCES if refs is None else refs)
    records = run_calls(
        plan,
        stats,
        lookup,
        records_of,
        concurrency=4,
        progress=NoProgress(),
        log=LineLog(),
        policy=policy,
        resume=resume,
    )
    return records, stats


@pytest.mark.parametrize(
    ("mode", "items", "ratio", "problem"),
    [
        ("ignore", None, None, "on_item_error must be one of"),
        ("collect", -1, None, "max_failed_items must be an integer >= 0"),
        ("collect", 2.5, None, "max_failed_items must be an integer >= 0"),
        ("collect", True, None, "max_failed_items must be an integer >= 0"),
        ("collect", None, -0.1, "max_failed_ratio must be a number in [0, 1]"),
        ("collect", None, 1.5, "max_failed_ratio must be a number in [0, 1]"),
        ("collect", None, math.nan, "max_failed_ratio must be a number in [0, 1]"),
        ("collect", None, "10%", "max_failed_ratio must be a number in [0, 1]"),
        ("fail", 3, None, "need on_item_error='collect'"),
    ],
)
def test_bad_policy_arguments_are_clear_errors_naming_the_task(mode, items, ratio, problem):
    with pytest.raises(SchneiderConfigError, match="stock_task: .*" + problem.replace("[", r"\[").replace("]", r"\]")):
        ItemErrorPolicy.checked("stock_task", mode, items, ratio)


def test_the_bound_is_the_tightest_given_and_never_every_item():
    assert ItemErrorPolicy.checked("t", "collect", None, None).most_failures(200) == 199
    assert ItemErrorPolicy.checked("t", "collect", 5, None).most_failures(200) == 5
    assert ItemErrorPolicy.checked("t", "collect", None, 0.1).most_failures(200) == 20
    assert ItemErrorPolicy.checked("t", "collect", 50, 0.1).most_failures(200) == 20
    assert ItemErrorPolicy.checked("t", "collect", None, 1.0).most_failures(3) == 2
    assert ItemErrorPolicy.checked("t", "fail", None, None).most_failures(200) == 0


def test_with_fail_the_first_failed_item_fails_the_pull():
    records, _ = pull(Lookup(bad={"REF0050"}))
    with pytest.raises(SchneiderApiError, match="bad reference"):
        list(records)


def test_collect_keeps_going_lists_each_failure_and_keeps_input_order():
    bad = {"REF0007", "REF0150"}
    records, stats = pull(Lookup(bad=bad), ItemErrorPolicy.checked("t", "collect", 5, None))
    got = list(records)
    assert [r["productReference"] for r in got] == [r for r in REFERENCES if r not in bad]
    assert stats.failed == [
        {"item": "REF0007", "status": 400, "code": "INVALID_REFERENCE", "message": "no such item"},
        {"item": "REF0150", "status": 400, "code": "INVALID_REFERENCE", "message": "no such item"},
    ]
    assert stats.pages == 200  # every call answered or failed


def test_collect_fails_as_soon_as_the_bound_is_passed():
    bad = {f"REF{i:04d}" for i in (3, 9, 12, 100)}
    lookup = Lookup(bad=bad)
    records, stats = pull(lookup, ItemErrorPolicy.checked("t", "collect", None, 0.01))  # 2 of 200 tolerated
    with pytest.raises(SchneiderItemErrors, match="3 of 200 items failed, more than the 2 allowed"):
        list(records)
    assert len(lookup.asked) < 200, "the pull stops once the bound is passed"


def test_every_item_failing_is_never_a_success():
    records, _ = pull(
        Lookup(bad=set(REFERENCES[:3])), ItemErrorPolicy.checked("t", "collect", None, None), refs=REFERENCES[:3]
    )
    with pytest.raises(SchneiderItemErrors, match="3 of 3 items failed"):
        list(records)


class Tries:
    def __init__(self, tmp_path):
        self.target = to_storage_path(f"file://{tmp_path}/stock.jsonl")
        self.store, self.owner, self.key = DictStore(), ChunkOwner("fp-stock", "abcdef012345", 1), seal_key("secret")

    def resume(self) -> FanOutResume:
        return FanOutResume(self.store, self.target, self.owner, self.key, LineLog(), checkpoint_every=0)


def test_a_retry_fetches_only_the_items_the_failed_try_did_not_answer(tmp_path):
    tries = Tries(tmp_path)
    uninterrupted = list(pull(Lookup())[0])
    first = Lookup(down_at="REF0160")
    resume = tries.resume()
    records, _ = pull(first, resume=resume)
    with pytest.raises(RuntimeError):
        list(records)
    resume.close(keep=True)
    second, resume = Lookup(), tries.resume()
    records, stats = pull(second, resume=resume)
    got = list(records)
    resume.close(keep=False)
    assert got == uninterrupted, "the same records, in input order"
    assert stats.pages == 200
    assert len(second.asked) <= 200 - 150, f"the retry asked {len(second.asked)} items"
    assert second.asked[0] > "REF0140" and "REF0160" in second.asked
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "success removes every staged chunk"


def test_a_retry_fetches_collected_failures_again(tmp_path):
    tries = Tries(tmp_path)
    policy = ItemErrorPolicy.checked("t", "collect", 2, None)
    first, resume = Lookup(bad={"REF0002", "REF0003", "REF0004"}), tries.resume()
    records, _ = pull(first, policy, resume=resume)
    with pytest.raises(SchneiderItemErrors):
        list(records)
    resume.close(keep=True)
    second, resume = Lookup(), tries.resume()  # the items are fine again
    records, stats = pull(second, policy, resume=resume)
    assert len(list(records)) == 200 and stats.failed == []
    resume.close(keep=False)
    assert {"REF0002", "REF0003", "REF0004"} <= set(second.asked)


def test_other_calls_never_adopt_the_staged_answers(tmp_path):
    tries = Tries(tmp_path)
    resume = tries.resume()
    records, _ = pull(Lookup(down_at="REF0160"), resume=resume)
    with pytest.raises(RuntimeError):
        list(records)
    resume.close(keep=True)
    lookup, resume = Lookup(), tries.resume()
    records, _ = pull(lookup, resume=resume, refs=REFERENCES[:150])  # another item list, same owner
    assert len(list(records)) == 150 and len(lookup.asked) == 150
    assert any("fetching every item again" in message for _, message in resume.log.records)


def test_the_sidecar_lists_the_failures_and_a_rerun_without_any_removes_it(tmp_path):
    from airflow_provider_schneider.outputs.sidecar import sidecar_of, write_failed_items
    from airflow_provider_schneider.outputs.storage import WriterTag

    target = to_storage_path(f"file://{tmp_path}/stock.jsonl")
    failed = [{"item": "REF0007", "status": 400, "code": "INVALID_REFERENCE", "message": "no such item"}]
    uri = write_failed_items(target, failed, WriterTag.new())
    assert uri == f"file://{tmp_path}/_stock.jsonl.failed.json"
    assert json.loads(sidecar_of(target).read_text()) == {"failed_items": failed, "count": 1}
    assert write_failed_items(target, [], WriterTag.new()) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "no stale list, no temporary"
