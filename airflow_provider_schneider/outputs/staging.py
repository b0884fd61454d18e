"""Staged chunks of a resumable pull: pages, in order, as gzip JSON Lines objects next to the target.

A chunk is written under its writer's tagged temporary name and committed (atomically) under
``.<target name>.resume-<task>-<first page>-<last page>-<random>.jsonl.gz``; its size, sha256 and record
count are what a checkpoint records, and what a retry checks before it trusts the chunk.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_schneider.outputs import storage
from airflow_provider_schneider.outputs.encoders import CountingHasher, JsonLinesEncoder


@dataclass(frozen=True)
class Chunk:
    """Pages ``first..last`` of a pull, staged as one committed object beside the target."""

    name: str
    first: int
    last: int
    records: int
    bytes: int
    sha256: str


class ChunkWriter:
    """A chunk being written: gzip (level 1: staging wants speed) into a writer-tagged temporary."""

    def __init__(self, target: Any, key: str, first: int, tag: storage.WriterTag, clock: Any):
        self.target, self.key, self.first, self.last, self.clock = target, key, first, first, clock
        self.records = 0
        self.started = clock()
        self.temporary = target.parent / f".{target.name}{storage.RESUME_INFIX}{key}-{first:06d}{tag.suffix}"
        self._raw = self.temporary.open("wb")
        self._counter = CountingHasher(self._raw)
        self._encoder = JsonLinesEncoder(self._counter, "gzip", level=1)

    def age(self) -> float:
        return float(self.clock() - self.started)

    def write(self, number: int, records: list[Any]) -> None:
        for record in records:
            self._encoder.write(record)
        self.records += len(records)
        self.last = number

    def commit(self) -> Chunk:
        self._encoder.close()
        self._counter.close()
        storage.sync_file(self._raw)
        self._raw.close()
        pages = f"{self.first:06d}-{self.last:06d}"
        name = f".{self.target.name}{storage.RESUME_INFIX}{self.key}-{pages}-{secrets.token_hex(4)}.jsonl.gz"
        storage.commit_file(self.temporary, self.target.parent / name)
        return Chunk(name, self.first, self.last, self.records, self._counter.bytes, self._counter.sha256.hexdigest())

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()
        with contextlib.suppress(Exception):
            storage.remove_tree(self.temporary)


def problem_with(folder: Any, chunk: Chunk) -> str | None:
    """Why ``chunk`` cannot be trusted (missing, another size, another sha256), or ``None``: one streaming
    read, before a single record of it is used."""
    try:
        digest, size = hashlib.sha256(), 0
        with (folder / chunk.name).open("rb") as raw:
            while block := raw.read(1 << 20):
                digest.update(block)
                size += len(block)
    except Exception as exc:  # noqa: BLE001 - a chunk that cannot be read is a reason, not a crash
        return f"{chunk.name} cannot be read ({type(exc).__name__})"
    if size != chunk.bytes or digest.hexdigest() != chunk.sha256:
        return f"{chunk.name} is not what was staged ({size} bytes)"
    return None


def read_chunk(folder: Any, chunk: Chunk) -> Iterator[Any]:
    """The records of a (checked) chunk; ``ValueError`` if they are not the number staged."""
    count = 0
    with (folder / chunk.name).open("rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as lines:
        for line in lines:
            count += 1
            yield json.loads(line)
    if count != chunk.records:
        raise ValueError(f"{chunk.name} holds {count} records, {chunk.records} were staged")


def remove_chunks(folder: Any, chunks: Iterable[Chunk]) -> None:
    for chunk in chunks:
        with contextlib.suppress(Exception):
            storage.remove_tree(folder / chunk.name)


def chunk_from(value: Mapping[str, Any]) -> Chunk:
    """A chunk as a checkpoint recorded it; ``ValueError`` for anything else (a name that is not a staged
    chunk's is refused: removing it could touch another object)."""
    name = str(value["name"])
    if "/" in name or "\\" in name or not name.startswith(".") or storage.RESUME_INFIX not in name:
        raise ValueError(f"not a staged chunk name: {name!r}")
    return Chunk(
        name,
        int(value["first"]),
        int(value["last"]),
        int(value["records"]),
        int(value["bytes"]),
        str(value["sha256"]),
    )
