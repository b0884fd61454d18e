"""Resume a paged pull where a failed try stopped: pages staged beside the target, a checkpoint per task.

While a paginated pull runs, its pages also go, in order, into gzip JSON Lines *chunks* written next to the
target (``.<target>.resume-<ti>-<first>-<last>-<nonce>.jsonl.gz``, each committed atomically). Each time a
chunk is complete (every 5 % of the pages, or after a minute and 1 %), the task instance's checkpoint in
Airflow's task state store (Airflow >= 3.3) is replaced by one that lists every chunk so far: a few
API-server round trips per pull, never one per page. A retry of the same task instance reads page 1 again
(it carries the totals), and when the totals, the plan and the target are those of the checkpoint, reads
the chunks back, checks their checksums, and asks the API only for the pages after them. The records reach
the writer in the same order as in an uninterrupted pull, so the output is byte-identical.

Anything that does not match (other totals, a missing or altered chunk, a checkpoint older than
:data:`RESUME_MAX_AGE`, another plan) restarts from page 1 and says why. Success removes the chunks and the
checkpoint; a failure with no retry left removes them too; a killed try leaves them for its retry, and a
chunk nobody resumed is removed once stale (:mod:`airflow_provider_schneider.outputs.storage`).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import math
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from airflow_provider_schneider.exceptions import SchneiderError

CHECKPOINT_KEY = "schneider.pull.checkpoint"
#: A chunk is complete at each 1/CHUNK_STEPS of the pages ...
CHUNK_STEPS = 20
#: ... or after this many seconds, once it holds at least 1 % of the pages (at most ~100 chunks a pull).
CHUNK_SECONDS = 60.0
#: A checkpoint older than this is not resumed (the data behind it may have moved on): 12 hours.
RESUME_MAX_AGE = 12 * 3600.0
_VERSION = 1


@dataclass(frozen=True)
class Chunk:
    """Pages ``first..last`` of a pull, staged as one committed object."""

    name: str
    first: int
    last: int
    records: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Checkpoint:
    fingerprint: str
    total_pages: int
    total_records: int | None
    chunks: tuple[Chunk, ...] = ()
    saved_at: float = field(default_factory=time.time)

    @property
    def pages(self) -> int:
        """The highest contiguous page staged."""
        return self.chunks[-1].last if self.chunks else 0

    @property
    def records(self) -> int:
        return sum(c.records for c in self.chunks)

    def to_json(self) -> dict[str, Any]:
        return {"v": _VERSION, **asdict(self), "chunks": [asdict(c) for c in self.chunks]}

    @classmethod
    def from_json(cls, value: Any) -> Checkpoint | None:
        """``None`` for anything that is not a checkpoint this version wrote."""
        if not isinstance(value, Mapping) or value.get("v") != _VERSION:
            return None
        try:
            chunks = tuple(Chunk(**c) for c in value["chunks"])
            checkpoint = cls(
                str(value["fingerprint"]),
                int(value["total_pages"]),
                None if value["total_records"] is None else int(value["total_records"]),
                chunks,
                float(value["saved_at"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        expected = 1
        for chunk in chunks:  # contiguous from page 1
            if chunk.first != expected or chunk.last < chunk.first:
                return None
            expected = chunk.last + 1
        return checkpoint


class PageBatch(NamedTuple):
    """Records of ``pages`` consecutive pages (one fresh page, or a staged chunk read back)."""

    pages: int
    records: Iterable[Any]
    total_pages: int


def fingerprint(*parts: Any) -> str:
    """What must not change for a checkpoint to apply: connection, path, query, page size, target."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def task_key(context: Mapping[str, Any]) -> str:
    ti = context.get("ti")
    parts = [getattr(ti, name, None) for name in ("dag_id", "run_id", "task_id", "map_index")]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]


def resumable_pull(operator: Any, context: Mapping[str, Any], plan: Any, target: Any) -> ResumablePull | None:
    """The resume machinery for this ``execute``, or ``None``: not paginated, ``resumable=False``, no retries
    with ``resumable=None``, or no task state store (Airflow < 3.3, said once in the log)."""
    if not plan.paginate or operator.resumable is False:
        return None
    if operator.resumable is None and not (getattr(operator, "retries", 0) or 0) > 0:
        return None
    store = context.get("task_state_store")
    if store is None:
        operator.log.info(
            "Resume on retry needs Airflow >= 3.3 (the task state store): a retry of this pull starts from page 1"
        )
        return None
    query = sorted((str(k), v) for k, v in plan.query.items())
    print_ = fingerprint(operator.schneider_conn_id, plan.path, query, plan.page_size, plan.records_field, str(target))
    return ResumablePull(store, target, print_, task_key(context), operator.log)


def retry_follows(context: Mapping[str, Any], error: BaseException) -> bool:
    """Whether Airflow will run this task instance again after ``error`` (then the staged pages stay)."""
    from airflow_provider_schneider.exceptions import AirflowFailException

    if isinstance(error, AirflowFailException):
        return False
    ti = context.get("ti")
    try_number, max_tries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    return isinstance(try_number, int) and isinstance(max_tries, int) and try_number <= max_tries


class ResumablePull:
    """The staging and checkpoint of one paginated pull into ``target`` (an ``ObjectStoragePath``)."""

    def __init__(self, store: Any, target: Any, print_: str, key: str, log: Any, *, clock: Any = time.monotonic):
        from airflow_provider_schneider.outputs.storage import WriterTag

        self.store = store
        self.target = target
        self.fingerprint = print_
        self.key = key
        self.log = log
        self.clock = clock
        self.tag = WriterTag.new()
        self.previous = self._load()
        #: What this try holds (adopted chunks first, then its own); ``None`` until page 1 is in.
        self.checkpoint: Checkpoint | None = None
        self.adopted: tuple[Chunk, ...] = ()
        self.pages_fetched = 0
        self.checkpoints_saved = 0
        self._open: _OpenChunk | None = None

    # -- the checkpoint ---------------------------------------------------------------------------------------

    def _load(self) -> Checkpoint | None:
        try:
            checkpoint = Checkpoint.from_json(self.store.get(CHECKPOINT_KEY))
        except Exception as exc:  # noqa: BLE001 - a store that cannot be read means "start from page 1"
            self.log.warning("Resume: could not read the checkpoint (%s); pulling from page 1", type(exc).__name__)
            return None
        if checkpoint is None:
            return None
        why = None
        if checkpoint.fingerprint != self.fingerprint:
            why = "it was made for another query, page size or target"
        elif time.time() - checkpoint.saved_at > RESUME_MAX_AGE:
            why = f"it is older than {RESUME_MAX_AGE / 3600:.0f} h"
        if why:
            self.log.info("Resume: ignoring the checkpoint of an earlier try (%s); pulling from page 1", why)
            self._drop(checkpoint)
            return None
        return checkpoint

    def _save(self, checkpoint: Checkpoint) -> None:
        self.checkpoint = checkpoint
        try:
            self.store.set(CHECKPOINT_KEY, checkpoint.to_json())
            self.checkpoints_saved += 1
        except Exception as exc:  # noqa: BLE001 - a checkpoint is an optimisation; the pull goes on
            self.log.warning("Resume: could not save the checkpoint (%s)", type(exc).__name__)

    def _drop(self, checkpoint: Checkpoint | None, *, keep: Iterable[Chunk] = ()) -> None:
        """Forget ``checkpoint`` and remove its chunks (except ``keep``)."""
        from airflow_provider_schneider.outputs.storage import remove_tree

        kept = {c.name for c in keep}
        for chunk in checkpoint.chunks if checkpoint else ():
            if chunk.name not in kept:
                with contextlib.suppress(Exception):
                    remove_tree(self.target.parent / chunk.name)
        with contextlib.suppress(Exception):
            self.store.delete(CHECKPOINT_KEY)

    # -- page 1 decides -----------------------------------------------------------------------------------------

    def held(self, first: Any) -> int:
        """Pages this try already holds, given page 1 (``iter_pages``'s ``held``): the checkpoint's, when its
        totals and chunks check out, else 0 (and the earlier try's chunks are removed)."""
        previous, self.previous = self.previous, None
        self.checkpoint = Checkpoint(self.fingerprint, first.total_pages, first.total_records)
        if previous is None or not previous.chunks:
            return 0
        why = None
        if (previous.total_pages, previous.total_records) != (first.total_pages, first.total_records):
            why = (
                f"the totals changed from {previous.total_pages} pages / {previous.total_records} records to "
                f"{first.total_pages} / {first.total_records}"
            )
        elif previous.pages > first.total_pages:
            why = "it holds more pages than the API announces"
        else:
            missing = [c.name for c in previous.chunks if _size(self.target.parent / c.name) != c.bytes]
            if missing:
                why = f"{len(missing)} staged chunk(s) are missing or changed (e.g. {missing[0]})"
        if why:
            self.log.warning("Resume: restarting from page 1: %s", why)
            self._drop(previous)
            return 0
        self.adopted = previous.chunks
        self.checkpoint = Checkpoint(self.fingerprint, first.total_pages, first.total_records, previous.chunks)
        self.log.info(
            "Resume: pages 1-%d (%s records) are staged by an earlier try; fetching pages %d-%d",
            previous.pages,
            f"{previous.records:,}",
            previous.pages + 1,
            first.total_pages,
        )
        return previous.pages

    # -- pages in, batches out -------------------------------------------------------------------------------

    def batches(self, pages: Iterator[Any]) -> Iterator[PageBatch]:
        """The pull's records in page order: staged chunks read back first, then fresh pages (staged too)."""
        source = iter(pages)
        fresh = next(source, None)  # fetches page 1: ``held`` has decided once this returns
        assert self.checkpoint is not None or fresh is None
        total = self.checkpoint.total_pages if self.checkpoint else 0
        for chunk in self.adopted:
            yield PageBatch(chunk.last - chunk.first + 1, self._read_back(chunk), total)
        while fresh is not None:
            self._stage(fresh)
            self.pages_fetched += 1
            yield PageBatch(1, fresh.records or [], total)
            fresh = next(source, None)

    def _read_back(self, chunk: Chunk) -> Iterator[Any]:
        path = self.target.parent / chunk.name
        with path.open("rb") as raw:
            hashed = _HashingReader(raw)
            count = 0
            with gzip.GzipFile(fileobj=hashed, mode="rb") as lines:
                for line in lines:
                    count += 1
                    yield json.loads(line)
            hashed.drain()
        if hashed.sha256.hexdigest() != chunk.sha256 or count != chunk.records:
            self._drop(self.checkpoint)
            raise SchneiderError(
                f"Resume: staged chunk {chunk.name} (pages {chunk.first}-{chunk.last}) does not match its "
                "checkpoint; the checkpoint is dropped and the next try pulls from page 1"
            )

    def _stage(self, page: Any) -> None:
        assert self.checkpoint is not None
        if self._open is None:
            self._open = _OpenChunk(self.target, self.key, page.number, self.tag, self.clock)
        self._open.write(page.number, page.records or [])
        total = max(self.checkpoint.total_pages, 1)
        held = self._open.last - self._open.first + 1
        step = max(1, math.ceil(total / CHUNK_STEPS))
        minimum = max(1, math.ceil(total / 100))
        if page.number < total and (held >= step or (held >= minimum and self._open.age() >= CHUNK_SECONDS)):
            chunk = self._open.commit()
            self._open = None
            self._save(
                Checkpoint(
                    self.fingerprint,
                    self.checkpoint.total_pages,
                    self.checkpoint.total_records,
                    (*self.checkpoint.chunks, chunk),
                )
            )

    # -- the end ----------------------------------------------------------------------------------------------

    def close(self, *, keep: bool) -> None:
        """Once the pull is over: keep the staged chunks and the checkpoint for a retry, or remove both."""
        if self._open is not None:
            self._open.discard()
            self._open = None
        if not keep:
            self._drop(self.checkpoint or self.previous)
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


class _OpenChunk:
    """A chunk being written: gzip JSON Lines into a writer-tagged temporary, committed under its final name."""

    def __init__(self, target: Any, key: str, first: int, tag: Any, clock: Any):
        from airflow_provider_schneider.outputs.encoders import CountingHasher, JsonLinesEncoder
        from airflow_provider_schneider.outputs.storage import RESUME_INFIX

        self.target, self.key, self.first, self.last, self.clock = target, key, first, first, clock
        self.records = 0
        self.started = clock()
        self.temporary = target.parent / f".{target.name}{RESUME_INFIX}{key}-{first:06d}{tag.suffix}"
        self._raw = self.temporary.open("wb")
        self._counter = CountingHasher(self._raw)
        self._encoder = JsonLinesEncoder(self._counter, "gzip", level=1)  # staging: speed over size

    def age(self) -> float:
        return float(self.clock() - self.started)

    def write(self, number: int, records: list[Any]) -> None:
        for record in records:
            self._encoder.write(record)
        self.records += len(records)
        self.last = number

    def commit(self) -> Chunk:
        from airflow_provider_schneider.outputs.storage import RESUME_INFIX, commit_file, sync_file

        self._encoder.close()
        self._counter.close()
        sync_file(self._raw)
        self._raw.close()
        pages = f"{self.first:06d}-{self.last:06d}"
        name = f".{self.target.name}{RESUME_INFIX}{self.key}-{pages}-{secrets.token_hex(4)}.jsonl.gz"
        commit_file(self.temporary, self.target.parent / name)
        return Chunk(name, self.first, self.last, self.records, self._counter.bytes, self._counter.sha256.hexdigest())

    def discard(self) -> None:
        from airflow_provider_schneider.outputs.storage import remove_tree

        with contextlib.suppress(Exception):
            self._raw.close()
        with contextlib.suppress(Exception):
            remove_tree(self.temporary)


class _HashingReader:
    """Reads through to ``raw`` and hashes every byte read (the chunk's checksum is of the stored bytes)."""

    def __init__(self, raw: Any):
        self.raw = raw
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.sha256.update(data)
        return bytes(data)

    def seek(self, offset: int, /) -> int:
        raise io.UnsupportedOperation("a staged chunk is read once, front to back")

    def drain(self) -> None:
        while self.read(1 << 20):
            pass


def _size(path: Any) -> int | None:
    with contextlib.suppress(Exception):
        info = path.stat()
        size = getattr(info, "st_size", None)
        if size is None and isinstance(info, Mapping):
            size = info.get("size")
        return None if size is None else int(size)
    return None
