"""Staged chunks of a resumable pull: pages, in order, one JSON line per page, in objects beside the target.

A chunk is written under its writer's tagged temporary name and committed (atomically) under
``.<target name>.resume-<task>-<first page>-<last page>-<random>.jsonl``. Its first line says what it
belongs to (the plan's fingerprint, the task instance, the run of tries, its first page, the format); then one
line per page: the page's records as one JSON array (one encoder call per page), encoded losslessly (a lone
surrogate or a ``NaN`` reads back as it arrived: the output's own encoding decides what to do with them). Its
size, sha256, record count and the digests of its first and last pages are what a checkpoint records, and what
a retry checks before it trusts the chunk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_schneider.outputs import commit, storage
from airflow_provider_schneider.outputs.encoders import CountingHasher, decode_lossless, encode_lossless

#: The first line of a chunk names it so: ``{"schneider_chunk": 1, "fingerprint": ..., "task": ...}``.
_HEADER_KEY = "schneider_chunk"


#: The chunk format: 3 = one line per page (a JSON array of its records), uncompressed.
_FORMAT = 3
SUFFIX = ".jsonl"


def _digest(line: bytes, records: int) -> str:
    return f"{records}:{hashlib.sha256(line).hexdigest()[:32]}"


def page_digest(records: Iterable[Any]) -> str:
    """What a page held: its record count and a digest of its records as staged (identity and content)."""
    page = list(records)
    return _digest(encode_lossless(page), len(page))


@dataclass(frozen=True)
class ChunkOwner:
    """What a chunk belongs to: the plan (its fingerprint), the task instance and its run of tries."""

    fingerprint: str
    task: str
    generation: int

    def header(self, first: int) -> bytes:
        fields = {
            _HEADER_KEY: _FORMAT,
            "fingerprint": self.fingerprint,
            "task": self.task,
            "generation": self.generation,
        }
        return (json.dumps({**fields, "first": first}, sort_keys=True) + "\n").encode()

    def prefix(self, target: Any) -> str:
        """The name every chunk of this task instance starts with (beside ``target``)."""
        return f".{target.name}{storage.RESUME_INFIX}{self.task}-"


@dataclass(frozen=True)
class Chunk:
    """Pages ``first..last`` of a pull, staged as one committed object beside the target."""

    name: str
    first: int
    last: int
    records: int
    bytes: int
    sha256: str
    #: :func:`page_digest` of the chunk's first and of its last page.
    first_page: str = ""
    last_page: str = ""
    #: The checkpoint's seal over every field above (see :mod:`airflow_provider_schneider.pulls.resume`).
    seal: str = ""


def sealed_fields(chunk: Chunk) -> bytes:
    """Every field of ``chunk`` but its seal, as the seal covers them."""
    fields = (chunk.name, chunk.first, chunk.last, chunk.records, chunk.bytes, chunk.sha256)
    return json.dumps([*fields, chunk.first_page, chunk.last_page]).encode()


class ChunkWriter:
    """A chunk being written, uncompressed: staging is on the pull's path, and gzip (even at level 0, its CRC
    and framing) cost more than everything else staging does (a plain pull's time x 1.3 at 0 ms latency)."""

    def __init__(self, target: Any, owner: ChunkOwner, first: int, tag: storage.WriterTag, clock: Any):
        self.target, self.owner, self.first, self.last, self.clock = target, owner, first, first, clock
        self.records = 0
        self.first_page = self.last_page = ""
        self._last_line: tuple[bytes, int] = (b"", 0)
        self.started = clock()
        self.temporary = target.parent / f"{owner.prefix(target)}{first:06d}{tag.suffix}"
        self._raw = _open(self.temporary, "wb")
        self._counter = CountingHasher(self._raw)
        self._counter.write(owner.header(first))

    def age(self) -> float:
        return float(self.clock() - self.started)

    def write(self, number: int, records: list[Any]) -> None:
        line = encode_lossless(list(records))  # one C-encoder call per page, not one per record
        self._counter.write(line)
        self._last_line = (line, len(records))  # its digest only if it stays the last page (at commit)
        if number == self.first:
            self.first_page = _digest(line, len(records))
        self.records += len(records)
        self.last = number

    def commit(self) -> Chunk:
        self.last_page = _digest(*self._last_line)
        self._counter.close()
        # No fsync: a chunk lost or torn by a host crash fails its size and sha256 check, and the retry
        # pulls from page 1. Only what a pull publishes must be durable before it is committed.
        self._raw.close()
        name = f"{self.owner.prefix(self.target)}{self.first:06d}-{self.last:06d}-{secrets.token_hex(4)}{SUFFIX}"
        commit.commit_file(self.temporary, self.target.parent / name)
        digest = self._counter.sha256.hexdigest()
        return Chunk(
            name, self.first, self.last, self.records, self._counter.bytes, digest, self.first_page, self.last_page
        )

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()
        with contextlib.suppress(Exception):
            storage.remove_tree(self.temporary)


def problem_with(folder: Any, chunk: Chunk, owner: ChunkOwner) -> str | None:
    """Why ``chunk`` cannot be trusted (missing, another size or sha256, made for another plan or task
    instance), or ``None``: one streaming read of its bytes, checked before anything in it is unpacked."""
    try:
        digest, size = hashlib.sha256(), 0
        with _open(folder / chunk.name, "rb") as raw:
            while block := raw.read(1 << 20):
                digest.update(block)
                size += len(block)
    except Exception as exc:  # noqa: BLE001 - a chunk that cannot be read is a reason, not a crash
        return f"{chunk.name} cannot be read ({type(exc).__name__})"
    if size != chunk.bytes or digest.hexdigest() != chunk.sha256:
        return f"{chunk.name} is not what was staged ({size} bytes)"
    try:
        header = _header(folder, chunk)
    except Exception as exc:  # noqa: BLE001 - the bytes staged, but no chunk of ours
        return f"{chunk.name} cannot be read ({type(exc).__name__})"
    if header != json.loads(owner.header(chunk.first)):
        return f"{chunk.name} was staged for another pull or task instance"
    return None


def _open(path: Any, mode: str) -> Any:
    """A chunk's file: a local one through the builtin file (fsspec's local file costs more per write than
    the whole encoding of a page; an object store goes through its own upload buffer anyway)."""
    return open(path.path, mode) if storage.is_local(path) else path.open(mode)


def _header(folder: Any, chunk: Chunk) -> Any:
    with _open(folder / chunk.name, "rb") as raw:
        return json.loads(raw.readline())


def read_chunk(folder: Any, chunk: Chunk) -> Iterator[Any]:
    """The records of a (checked) chunk; ``ValueError`` at its end if what was read back is not what was
    staged (another size, sha256 or record count): a chunk swapped after :func:`problem_with` read it
    fails the pull before the writer commits, never lands in the output."""
    count, size, digest = 0, 0, hashlib.sha256()
    with _open(folder / chunk.name, "rb") as raw:
        first = raw.readline()
        size += len(first)
        digest.update(first)
        header = json.loads(first)
        if not isinstance(header, dict) or header.get(_HEADER_KEY) != _FORMAT:
            raise ValueError(f"{chunk.name} has no chunk header")
        for line in raw:
            size += len(line)
            digest.update(line)
            page = decode_lossless(line)
            if not isinstance(page, list):
                raise ValueError(f"{chunk.name} holds a line that is not a page")
            count += len(page)
            yield from page
    if (size, digest.hexdigest()) != (chunk.bytes, chunk.sha256):
        raise ValueError(f"{chunk.name} changed since it was checked ({size} bytes read back)")
    if count != chunk.records:
        raise ValueError(f"{chunk.name} holds {count} records, {chunk.records} were staged")


def remove_chunks(folder: Any, chunks: Iterable[Chunk]) -> None:
    for chunk in chunks:
        with contextlib.suppress(Exception):
            storage.remove_tree(folder / chunk.name)


def remove_all_chunks(target: Any, owner: ChunkOwner, keep: Iterable[Chunk] = ()) -> int:
    """Remove every chunk (and chunk temporary) this task instance staged beside ``target``, but ``keep``:
    what earlier tries left and no checkpoint will adopt."""
    prefix, kept = owner.prefix(target), {chunk.name for chunk in keep}
    removed = 0
    for path in list(storage.hidden_siblings(target)):
        if path.name.startswith(prefix) and path.name not in kept:
            with contextlib.suppress(Exception):
                storage.remove_tree(path)
                removed += 1
    return removed


def chunk_from(value: Mapping[str, Any], owner: ChunkOwner, target: Any) -> Chunk:
    """A chunk as a checkpoint recorded it; ``ValueError`` for anything else: a name that is not one of this
    task instance's chunks beside ``target`` is refused (removing it could touch another object)."""
    name = str(value["name"])
    if "/" in name or "\\" in name or not name.startswith(owner.prefix(target)) or not name.endswith(SUFFIX):
        raise ValueError(f"not a staged chunk name of this task: {name!r}")
    return Chunk(
        name,
        int(value["first"]),
        int(value["last"]),
        int(value["records"]),
        int(value["bytes"]),
        str(value["sha256"]),
        str(value["first_page"]),
        str(value["last_page"]),
        str(value["seal"]),
    )
