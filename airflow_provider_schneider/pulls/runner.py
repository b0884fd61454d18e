"""Running a pull, apart from Airflow: a plan's records in a stable order, every response counted into the
stats, progress logged, pages staged for a retry; and the whole pull written into a record writer.

What the runner needs of the outside world is one :class:`PullSource` (the hook, in production; a fake in
the unit tests): the pages of a paginated plan, and the answer to one call of the others. What it needs of
an operator is how to read records out of an answer (``records_of``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_schneider.pulls.arguments import ItemErrorPolicy
from airflow_provider_schneider.pulls.plan import Call, PullPlan, PullStats
from airflow_provider_schneider.pulls.report import ProgressLog

if TYPE_CHECKING:
    from airflow_provider_schneider.client.pagination import HeldPages, Page
    from airflow_provider_schneider.outputs.writer import RecordWriter
    from airflow_provider_schneider.pulls.resume import ResumablePull

#: The records one answer of a plan's ``calls`` holds (a fan-out also notes what was missing in the stats).
RecordsOf = Callable[[Call, Any, PullStats], list[Any]]


class PullSource(Protocol):
    """Where a pull's answers come from."""

    #: Calls of a fan-out in flight at once (capped by the plan's number of calls).
    max_concurrency: int

    def pages(self, plan: PullPlan, held: HeldPages | None) -> Iterator[Page]:
        """Every page of a paginated plan, in order (``held``: a resume's leading pages, not fetched again)."""

    def fetch(self, call: Call) -> Any:
        """The parsed answer to one call."""


def run_plan(
    plan: PullPlan,
    stats: PullStats,
    source: PullSource,
    records_of: RecordsOf,
    *,
    log: Any,
    resume: ResumablePull | None = None,
    policy: ItemErrorPolicy | None = None,
) -> Iterator[Any]:
    """Yield ``plan``'s records in a stable order (page order; a fan-out's calls in input order), count every
    response into ``stats`` and log progress as they arrive. ``resume`` stages pages (answers, for a fan-out)
    for a retry and skips those an earlier try staged; ``policy`` says what a fan-out's failed item does."""
    progress = ProgressLog(log, plan.unit)
    if plan.paginate:
        from airflow_provider_schneider.pulls.resume import PageBatch

        pages = source.pages(plan, resume.held if resume else None)
        batches = resume.batches(pages) if resume else (PageBatch(1, p.records or [], p.total_pages) for p in pages)
        for batch in batches:
            count = 0
            for record in batch.records:
                count += 1
                yield record
            stats.add_page(count, batch.total_pages, pages=batch.pages)
            progress.update(stats)
        return
    from airflow_provider_schneider.pulls.fanout import FanOutResume, run_calls

    assert resume is None or isinstance(resume, FanOutResume), resume
    yield from run_calls(
        plan,
        stats,
        source.fetch,
        records_of,
        concurrency=source.max_concurrency,
        progress=progress,
        log=log,
        policy=policy or ItemErrorPolicy(),
        resume=resume,
    )


def write_pull(
    records: Callable[[], Generator[Any, None, None]],
    writer: RecordWriter,
    resume: ResumablePull | None,
    retry_follows: Callable[[BaseException], bool],
) -> dict[str, Any]:
    """Stream ``records()`` into ``writer`` and return the output's facts for the manifest. A failure leaves
    the target as it was; the staged pages stay only when a retry will follow."""
    try:
        with contextlib.closing(records()) as stream, writer:
            for record in stream:
                writer.write(record)
    except BaseException as exc:
        if resume is not None:
            resume.close(keep=retry_follows(exc))
        raise
    output = dict(writer.manifest)
    if resume is not None:
        resume.close(keep=False)
        if resume.adopted:
            output["resumed"] = {"pages_staged": resume.adopted[-1].last, "pages_fetched": resume.pages_fetched}
    return output
