"""Resume a paged pull where a failed try stopped: pages staged beside the target, a checkpoint per task.

While a paginated pull runs, its pages also go, in order, into staged chunks next to the target
(:mod:`airflow_provider_schneider.outputs.staging`). Each time a chunk is complete (every 5 % of the pages
but at most four times a second, at 7.5 % in any case, or after a minute and 1 %), the task instance's
checkpoint in Airflow's task state store (Airflow >= 3.3) is replaced by one that lists every chunk so far:
a few API-server round trips per pull, never one per page. Every chunk in a checkpoint is sealed with a key
derived from the connection's secret, so a checkpoint edited through the task-state API cannot make a retry
adopt a chunk the pull did not stage.

A retry of the same task instance reads page 1 again (it carries the totals). It adopts the staged pages
only when the totals, the plan, the target and the run of tries (a retry, not a later clear) are those of
the checkpoint, the checkpoint (sealed too) is younger than ``resume_max_age``, every chunk checks out
(seal, size, sha256, the plan and task instance in its first line), and the data has not moved on balance:
page 1 and the last staged page, fetched again, hold exactly the records staged for them (an order inserted
or deleted before the boundary shifts every later page and shows there). Then it reads the chunks back and
asks the API only for the pages after them; the records reach the writer in the order of an uninterrupted
pull, so the output is byte-identical. Anything else restarts from page 1 in the same try, with a WARNING
that says why, and removes every chunk the task instance staged. An API without snapshot cursors cannot
prove more: changes that cancel out before the boundary, and a record edited in place on a staged page,
keep their staged version (docs/outputs.md).

Success removes the chunks and the checkpoint; so does a failure that no retry follows; a killed try leaves
them for its retry, and a chunk nobody resumed is removed once stale (:mod:`.outputs.storage`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any, NamedTuple

from airflow_provider_schneider.exceptions import SchneiderError
from airflow_provider_schneider.outputs.staging import (
    Chunk,
    ChunkOwner,
    ChunkWriter,
    page_digest,
    problem_with,
    read_chunk,
    remove_all_chunks,
)
from airflow_provider_schneider.pulls.checkpoint import (
    CHECKPOINT_KEY,
    CLOCK_SKEW,
    Checkpoint,
    seal,
    seal_header,
)

#: A chunk is complete at each 1/CHUNK_STEPS of the pages once it is CHECKPOINT_EVERY seconds old, at 1.5 times
#: that share whatever its age (a checkpoint is a task-state API round trip and a chunk a file: a fast pull must
#: not pay twenty of each, and a retry never repeats more than 7.5 % of the pull) ...
CHUNK_STEPS = 20
CHECKPOINT_EVERY = 0.25
#: ... where an environment can set that interval (tests of the resume mechanics set 0).
CHECKPOINT_EVERY_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_CHECKPOINT_EVERY"
#: ... or after this many seconds, once it holds at least 1 % of the pages (at most ~100 chunks a pull).
CHUNK_SECONDS = 60.0
#: A checkpoint older than this is not resumed (the data behind it may have moved on): 12 hours by default,
#: the operator's ``resume_max_age``.
RESUME_MAX_AGE = 12 * 3600.0


class PageBatch(NamedTuple):
    """Records of ``pages`` consecutive pages (one fresh page, or a staged chunk read back)."""

    pages: int
    records: Iterable[Any]
    total_pages: int


def fingerprint(*parts: Any) -> str:
    """What must not change for a checkpoint to apply: connection, path, query, page size, target."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


class ResumablePull:
    """The staging and checkpoint of one paginated pull into ``target`` (an ``ObjectStoragePath``)."""

    def __init__(
        self,
        store: Any,
        target: Any,
        owner: ChunkOwner,
        key: bytes,
        log: Any,
        *,
        max_age: float = RESUME_MAX_AGE,
        try_number: int = 0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        checkpoint_every: float = CHECKPOINT_EVERY,
    ):
        from airflow_provider_schneider.outputs.storage import TaskTry, WriterTag

        self.store, self.target, self.folder = store, target, target.parent
        self.owner, self._key = owner, key
        self.log, self.clock, self.wall_clock, self.max_age = log, clock, wall_clock, max_age
        self.checkpoint_every = checkpoint_every
        self.tag = WriterTag.new(TaskTry(owner.task, try_number))
        self.started_at = wall_clock()
        #: When the pages this try adopted were fetched (the failed try's start), once adopted.
        self.staged_since: float | None = None
        self.previous = self._load()
        #: What this try holds (adopted chunks first, then its own); ``None`` until page 1 is in.
        self.checkpoint: Checkpoint | None = None
        self.adopted: tuple[Chunk, ...] = ()
        self.pages_fetched = 0
        self.checkpoints_saved = 0
        #: Why the staged pages were not adopted (``None``: adopted, or there were none).
        self.restart_reason: str | None = None
        self._open: ChunkWriter | None = None

    # -- the checkpoint ---------------------------------------------------------------------------------------

    def _load(self) -> Checkpoint | None:
        try:
            raw = self.store.get(CHECKPOINT_KEY)
        except Exception as exc:  # noqa: BLE001 - a store that cannot be read means "start from page 1"
            self.log.warning("Resume: could not read the checkpoint (%s); pulling from page 1", type(exc).__name__)
            return None
        checkpoint = Checkpoint.from_json(raw, self.owner, self.target) if raw is not None else None
        why = None
        if raw is not None and checkpoint is None:
            why = "it is not a checkpoint of this task instance's pull"
        elif checkpoint is None:
            return None
        elif checkpoint.fingerprint != self.owner.fingerprint:
            why = "it was made for another query, page size or target"
        elif checkpoint.generation != self.owner.generation:
            why = "it was made before the task was cleared"
        elif not hmac.compare_digest(checkpoint.seal, seal_header(self._key, self.owner, checkpoint)):
            why = "it does not carry this pull's seal (edited, or another connection secret)"
        elif not -CLOCK_SKEW <= self.wall_clock() - checkpoint.saved_at <= self.max_age:
            why = f"it is older than resume_max_age ({self.max_age:.0f} s), or dated in the future"
        elif any(not hmac.compare_digest(c.seal, seal(self._key, self.owner, c)) for c in checkpoint.chunks):
            why = "a chunk it lists does not carry this pull's seal (edited, or another connection secret)"
        if why:
            self.log.warning("Resume: not using the checkpoint of an earlier try (%s); pulling from page 1", why)
            self._drop()
            return None
        return checkpoint

    def _save(self, checkpoint: Checkpoint) -> None:
        checkpoint = replace(checkpoint, saved_at=self.wall_clock())
        checkpoint = replace(checkpoint, seal=seal_header(self._key, self.owner, checkpoint))
        self.checkpoint = checkpoint
        try:
            self.store.set(CHECKPOINT_KEY, checkpoint.to_json())
            self.checkpoints_saved += 1
        except Exception as exc:  # noqa: BLE001 - a checkpoint is an optimisation; the pull goes on
            self.log.warning("Resume: could not save the checkpoint (%s)", type(exc).__name__)

    def _drop(self, keep: Iterable[Chunk] = ()) -> None:
        """Forget the checkpoint and remove every chunk this task instance staged (but ``keep``)."""
        remove_all_chunks(self.target, self.owner, keep)
        with contextlib.suppress(Exception):
            self.store.delete(CHECKPOINT_KEY)

    # -- page 1 decides -----------------------------------------------------------------------------------------

    def held(self, first: Any, fetch: Callable[[int], Any]) -> int:
        """Pages this try already holds, given page 1 (``iter_pages``'s ``held``): the checkpoint's, when the
        totals match, every chunk checks out and page 1 and the last staged page (fetched again) hold what was
        staged for them; else 0: every chunk goes, and the pull restarts from page 1 in this try."""
        previous, self.previous = self.previous, None
        self.checkpoint = Checkpoint(
            self.owner.fingerprint,
            self.owner.generation,
            first.total_pages,
            first.total_records,
            started_at=self.started_at,
        )
        if previous is None or not previous.chunks:
            self._drop()  # what earlier tries staged without a checkpoint to show for it
            return 0
        why = self._why_not(previous, first, fetch)
        if why:
            self.restart_reason = why
            self.log.warning("Resume: restarting from page 1 in this try: %s", why)
            self._drop()
            return 0
        self.adopted = previous.chunks
        self.staged_since = previous.started_at
        self.checkpoint = replace(self.checkpoint, chunks=previous.chunks, started_at=previous.started_at)
        self._drop(keep=previous.chunks)  # a chunk staged after the checkpoint was saved: nobody adopts it
        self.log.info(
            "Resume: pages 1-%d (%s records) are staged by an earlier try and pages 1 and %d still hold the same "
            "records; fetching pages %d-%d",
            previous.pages,
            f"{previous.records:,}",
            previous.pages,
            previous.pages + 1,
            first.total_pages,
        )
        return previous.pages

    def _why_not(self, previous: Checkpoint, first: Any, fetch: Callable[[int], Any]) -> str | None:
        """Why the staged pages cannot continue this pull, or ``None``."""
        if (previous.total_pages, previous.total_records) != (first.total_pages, first.total_records):
            return (
                f"the totals changed from {previous.total_pages} pages / {previous.total_records} records to "
                f"{first.total_pages} / {first.total_records}"
            )
        if previous.pages > first.total_pages:
            return "it holds more pages than the API announces"
        problem = next(filter(None, (problem_with(self.folder, c, self.owner) for c in previous.chunks)), None)
        if problem:
            return problem
        boundary = previous.chunks[-1]
        checks = [(1, first, previous.chunks[0].first_page)]
        if boundary.last > 1:
            checks.append((boundary.last, fetch(boundary.last), boundary.last_page))
        for number, page, staged in checks:
            now = page_digest(page.records or [])
            if now != staged:
                then_count, now_count = staged.split(":", 1)[0], now.split(":", 1)[0]
                return (
                    f"page {number} no longer holds the records the failed try staged for it ({then_count} records "
                    f"then, {now_count} now, other content): the data moved between the tries (records inserted, "
                    "deleted or changed), so the staged pages may miss or repeat records"
                )
        return None

    # -- pages in, batches out -------------------------------------------------------------------------------

    def batches(self, pages: Iterator[Any]) -> Iterator[PageBatch]:
        """The pull's records in page order: staged chunks read back first, then fresh pages (staged too)."""
        source = iter(pages)
        fresh = next(source, None)  # fetches page 1: ``held`` has decided once this returns
        total = self.checkpoint.total_pages if self.checkpoint else 0
        for chunk in self.adopted:
            yield PageBatch(chunk.last - chunk.first + 1, self._read_back(chunk), total)
        while fresh is not None:
            self._stage(fresh)
            self.pages_fetched += 1
            yield PageBatch(1, fresh.records or [], total)
            fresh = next(source, None)

    def _read_back(self, chunk: Chunk) -> Iterator[Any]:
        try:
            yield from read_chunk(self.folder, chunk)
        except (OSError, EOFError, ValueError) as exc:  # checked a moment ago: changed or removed since
            self._drop()
            self.checkpoint = None
            raise SchneiderError(
                f"Resume: staged chunk {chunk.name} (pages {chunk.first}-{chunk.last}) could not be read back "
                f"({type(exc).__name__}: {exc}); the checkpoint is dropped and the next try pulls from page 1"
            ) from exc

    def _stage(self, page: Any) -> None:
        assert self.checkpoint is not None
        if self._open is None:
            self._open = ChunkWriter(self.target, self.owner, page.number, self.tag, self.clock)
        self._open.write(page.number, page.records or [])
        total = max(self.checkpoint.total_pages, 1)
        held = self._open.last - self._open.first + 1
        step = max(1, math.ceil(total / CHUNK_STEPS))
        minimum = max(1, math.ceil(total / 100))
        age = self._open.age()
        if page.number < total and (
            (held >= step and (age >= self.checkpoint_every or 2 * held >= 3 * step))
            or (held >= minimum and age >= CHUNK_SECONDS)
        ):
            chunk = self._open.commit()
            self._open = None
            self._save(self.checkpoint.with_chunk(replace(chunk, seal=seal(self._key, self.owner, chunk))))

    # -- the end ----------------------------------------------------------------------------------------------

    def close(self, *, keep: bool) -> None:
        """Once the pull is over: keep the staged chunks and the checkpoint for a retry, or remove both."""
        if self._open is not None:
            self._open.discard()
            self._open = None
        if not keep:
            self._drop()
            return
        staged = self.checkpoint.chunks if self.checkpoint else ()
        if staged:
            self.log.info(
                "Resume: pages 1-%d staged in %d chunk%s (%d checkpoint%s this try); a retry continues at page %d",
                staged[-1].last,
                len(staged),
                "" if len(staged) == 1 else "s",
                self.checkpoints_saved,
                "" if self.checkpoints_saved == 1 else "s",
                staged[-1].last + 1,
            )
