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
from dataclasses import replace
from typing import Any, NamedTuple

from airflow_provider_schneider.exceptions import SchneiderApiError, SchneiderError
from airflow_provider_schneider.outputs.staging import problem_with
from airflow_provider_schneider.pulls.arguments import ItemErrorPolicy
from airflow_provider_schneider.pulls.checkpoint import Checkpoint
from airflow_provider_schneider.pulls.plan import Call, PullPlan, PullStats
from airflow_provider_schneider.pulls.resume import ResumablePull

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


class FanOutResume(ResumablePull):
    """The staging of a fan-out (:mod:`.fanout`): one staged "page" per call, ``{"a": body}`` or
    ``{"failed": entry}``; nothing to re-check against the API (items are independent lookups)."""

    def start(self, calls: int) -> int:
        """How many leading calls earlier tries staged answers for (0: none usable; every chunk goes)."""
        previous, self.previous = self.previous, None
        owner = self.owner
        self.checkpoint = Checkpoint(owner.fingerprint, owner.generation, calls, None, started_at=self.started_at)
        if previous is None or not previous.chunks:
            self._drop()
            return 0
        why: str | None = None
        if previous.total_pages != calls or previous.pages > calls:
            why = f"it was staged for {previous.total_pages} calls, this pull makes {calls}"
        else:
            why = next(filter(None, (problem_with(self.folder, c, self.owner) for c in previous.chunks)), None)
        if why:
            self.restart_reason = why
            self.log.warning("Resume: fetching every item again in this try: %s", why)
            self._drop()
            return 0
        self.adopted, self.staged_since = previous.chunks, previous.started_at
        self.checkpoint = replace(self.checkpoint, chunks=previous.chunks, started_at=previous.started_at)
        self._drop(keep=previous.chunks)
        self.log.info(
            "Resume: the answers to calls 1-%d are staged by an earlier try; fetching calls %d-%d and any item "
            "that failed",
            previous.pages,
            previous.pages + 1,
            calls,
        )
        return previous.pages

    def staged(self) -> Iterator[Any]:
        """The staged lines, in call order (one per call)."""
        for chunk in self.adopted:
            yield from self._read_back(chunk)

    def stage(self, number: int, body: Any, failure: dict[str, Any] | None) -> None:
        """Stage the answer to call ``number`` (or its failure: a retry fetches that item again)."""
        line = {"failed": failure} if failure is not None else {"a": body}
        self._stage(_StagedCall(number, [line]))
        self.pages_fetched += 1


class _StagedCall(NamedTuple):
    number: int
    records: list[Any]


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
            return _Answer(number, call, line["a"], None)
        try:
            return _Answer(number, call, fetch(call), None)
        except SchneiderApiError as error:
            if not policy.collect:
                raise
            return _Answer(number, call, None, failure_entry(call, error))

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
