"""A fan-out pull (one call per product, or per chunk of references): answers in input order, failed items
collected under a bound, and answers staged so that a retry fetches only what is still missing.

**Resume.** Every answer (the parsed body, or a failure) is staged in call order into the same sealed chunks
a paged pull uses (:mod:`..outputs.staging`; a "page" is one call here) and the checkpoint lists them. A retry
of the same task instance adopts the chunks when the calls are the same (the checkpoint's fingerprint covers
every call), reads the answers back and runs them through the operator's ``records_of`` again, so records,
not-found lists and business errors come out exactly as in one uninterrupted pull; it fetches the calls after
the staged ones, and again every item that failed. Unlike pages, items are independent lookups: nothing can
shift between tries, so there is nothing to re-check; the manifest's ``snapshot_at`` says how old the oldest
adopted answer is.

**Partial failure.** ``on_item_error="collect"`` keeps going past an item whose call failed (after its
retries), lists it, and fails the task as soon as more items failed than the bound allows
(``max_failed_items``, ``max_failed_ratio`` of the calls): nothing is committed then, and the staged answers
stay for the retry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

from airflow_provider_schneider.exceptions import SchneiderApiError, SchneiderError
from airflow_provider_schneider.pulls.arguments import ItemErrorPolicy
from airflow_provider_schneider.pulls.plan import Call, PullPlan, PullStats
from airflow_provider_schneider.pulls.resume import FanOutResume

#: The longest error message kept per failed item (manifest and sidecar).
_MESSAGE_CHARS = 300


class SchneiderItemErrors(SchneiderError):
    """More items of a fan-out failed than ``max_failed_items`` / ``max_failed_ratio`` allow."""


def item_label(call: Call) -> str:
    """How a failed item is named: its reference, or a bulk chunk's first and last reference."""
    item = call.item
    if isinstance(item, Mapping):
        return str(item.get("reference"))
    if isinstance(item, Sequence) and not isinstance(item, str):
        return f"{item[0]}..{item[-1]} ({len(item)} references)" if item else "(empty chunk)"
    return str(item)


def failure_entry(call: Call, error: SchneiderApiError) -> dict[str, Any]:
    """A failed item as the manifest and the sidecar list it (no query: it may carry a key)."""
    message = (error.user_message or str(error.args[0] if error.args else error))[:_MESSAGE_CHARS]
    return {"item": item_label(call), "status": error.status, "code": error.code, "message": message}


class _Answer(NamedTuple):
    number: int
    call: Call
    body: Any
    failure: dict[str, Any] | None
    fresh: bool


def run_calls(
    plan: PullPlan,
    stats: PullStats,
    fetch: Callable[[Call], Any],
    records_of: Callable[[Call, Any, PullStats], list[Any]],
    *,
    concurrency: int,
    progress: Any,
    log: Any,
    policy: ItemErrorPolicy,
    resume: FanOutResume | None = None,
) -> Iterator[Any]:
    """Yield the records of ``plan.calls`` in input order (see the module's docstring)."""
    from airflow_provider_schneider.client.concurrency import ordered_map

    total = len(plan.calls)
    held = resume.start(total) if resume is not None else 0
    most = policy.most_failures(total)
    staged = resume.staged() if resume is not None and held else iter(())

    def work() -> Iterator[tuple[int, Call, Any]]:
        for number, call in enumerate(plan.calls, 1):
            line = next(staged) if number <= held else None
            yield number, call, line

    def settle(item: tuple[int, Call, Any]) -> _Answer:
        number, call, line = item
        if isinstance(line, Mapping) and "a" in line:
            return _Answer(number, call, line["a"], None, False)
        try:
            return _Answer(number, call, fetch(call), None, True)
        except SchneiderApiError as error:
            if not policy.collect:
                raise
            return _Answer(number, call, None, failure_entry(call, error), True)

    for answer in ordered_map(settle, work(), concurrency=max(1, min(concurrency, total))):
        if resume is not None and answer.number > held:
            resume.stage(answer.number, answer.body, answer.failure)
        if answer.failure is not None:
            stats.failed.append(answer.failure)
            shown = answer.failure["status"] or answer.failure["message"]
            log.warning("Item %s failed (%s); collected (on_item_error='collect')", answer.failure["item"], shown)
            stats.add_page(0, total)
            progress.update(stats)
            if len(stats.failed) > most:
                raise SchneiderItemErrors(
                    f"{len(stats.failed)} of {total} items failed, more than the {most} allowed "
                    f"(max_failed_items / max_failed_ratio), e.g. {stats.failed[:3]}; nothing was written"
                )
            continue
        records = records_of(answer.call, answer.body, stats)
        stats.add_page(len(records), total)
        progress.update(stats)
        yield from records
