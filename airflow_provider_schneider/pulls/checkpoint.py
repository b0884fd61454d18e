"""A resumable pull's checkpoint: the chunks staged so far and the totals they belong to, sealed.

Kept in the task instance's state store (Airflow >= 3.3), which the task-state API can edit: every chunk and
the checkpoint's own fields are sealed with an HMAC keyed by a key derived from the connection's secret,
which neither that API nor the object store ever sees. A checkpoint whose seals do not check out is no
checkpoint of this pull.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from airflow_provider_schneider.outputs.staging import Chunk, ChunkOwner, chunk_from, sealed_fields

CHECKPOINT_KEY = "schneider.pull.checkpoint"
#: Seconds a checkpoint's ``saved_at`` may lie ahead of this host's clock (another host saved it).
CLOCK_SKEW = 300.0
_VERSION = 4
_SEAL_CONTEXT = b"airflow-provider-schneider resume chunk seal v1"


def seal_key(secret: str) -> bytes:
    """The key chunks are sealed with: derived from the connection's secret, which the task-state API and the
    object store never see (a rotated secret makes every earlier checkpoint unusable, as it should)."""
    return hmac.new(secret.encode("utf-8", "surrogatepass"), _SEAL_CONTEXT, hashlib.sha256).digest()


def seal(key: bytes, owner: ChunkOwner, chunk: Chunk) -> str:
    message = json.dumps([owner.fingerprint, owner.task, owner.generation]).encode() + sealed_fields(chunk)
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def seal_header(key: bytes, owner: ChunkOwner, checkpoint: Checkpoint) -> str:
    """The seal over what a checkpoint says besides its chunks: totals, when it was saved, when the pull began."""
    fields = [checkpoint.total_pages, checkpoint.total_records, checkpoint.saved_at, checkpoint.started_at]
    message = json.dumps([owner.fingerprint, owner.task, owner.generation, *fields]).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True)
class Checkpoint:
    fingerprint: str
    #: Which run of tries wrote it: ``max_tries - retries`` (a clear of the task starts a new one).
    generation: int
    total_pages: int
    total_records: int | None
    chunks: tuple[Chunk, ...] = ()
    saved_at: float = field(default_factory=time.time)
    #: When the try that staged the first chunk began: the moment its pages describe.
    started_at: float = field(default_factory=time.time)
    #: :func:`seal_header` of the fields above (the chunks carry seals of their own).
    seal: str = ""

    @property
    def pages(self) -> int:
        """The highest contiguous page staged."""
        return self.chunks[-1].last if self.chunks else 0

    @property
    def records(self) -> int:
        return sum(c.records for c in self.chunks)

    def with_chunk(self, chunk: Chunk) -> Checkpoint:
        return replace(self, chunks=(*self.chunks, chunk))

    def to_json(self) -> dict[str, Any]:
        return {"v": _VERSION, **asdict(self), "chunks": [asdict(c) for c in self.chunks]}

    @classmethod
    def from_json(cls, value: Any, owner: ChunkOwner, target: Any) -> Checkpoint | None:
        """``None`` for anything that is not a checkpoint this version wrote for this task instance."""
        if not isinstance(value, Mapping) or value.get("v") != _VERSION:
            return None
        try:
            chunks = tuple(chunk_from(c, owner, target) for c in value["chunks"])
            total_records = value["total_records"]
            checkpoint = cls(
                str(value["fingerprint"]),
                int(value["generation"]),
                int(value["total_pages"]),
                None if total_records is None else int(total_records),
                chunks,
                float(value["saved_at"]),
                float(value["started_at"]),
                str(value["seal"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        expected = 1
        for chunk in chunks:  # contiguous from page 1
            if chunk.first != expected or chunk.last < chunk.first:
                return None
            expected = chunk.last + 1
        return checkpoint
