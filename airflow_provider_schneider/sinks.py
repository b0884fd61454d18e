"""Stream records to an ObjectStoragePath as JSON Lines: atomic, idempotent, summarised by a manifest.

Records are written to a hidden temporary object next to the target and moved into place only when the
whole pull succeeded: a failed pull leaves nothing half-written and the previous output intact; a rerun
of the same target replaces it, never appends.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import uuid
from datetime import datetime, timezone
from typing import IO, Any

COMPRESSIONS = (None, "gzip")


class _CountingHasher:
    """A write-only file wrapper that counts and hashes the bytes as stored."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.bytes = 0
        self.sha256 = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.bytes += len(data)
        self.sha256.update(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


def to_storage_path(uri: str, conn_id: str | None = None) -> Any:
    from airflow.sdk import ObjectStoragePath

    return ObjectStoragePath(uri, conn_id=conn_id) if conn_id else ObjectStoragePath(uri)


class JsonLinesSink:
    """Context manager: ``with JsonLinesSink(uri) as sink: sink.write(record)``; ``sink.manifest`` after."""

    def __init__(self, uri: str, *, compression: str | None = None, storage_conn_id: str | None = None):
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        if compression == "gzip" and not uri.endswith(".gz"):
            uri += ".gz"
        self.target = to_storage_path(uri, storage_conn_id)
        self.compression = compression
        self.records = 0
        self.manifest: dict[str, Any] = {}
        self._tmp: Any = None
        self._raw: IO[bytes] | None = None
        self._counter: _CountingHasher | None = None
        self._stream: Any = None

    def __enter__(self) -> JsonLinesSink:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.target.parent / f".{self.target.name}.{uuid.uuid4().hex[:12]}.partial"
        self._raw = self._tmp.open("wb")
        self._counter = _CountingHasher(self._raw)
        self._stream = gzip.GzipFile(fileobj=self._counter, mode="wb", mtime=0) if self.compression else self._counter
        return self

    def write(self, record: Any) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        self._stream.write(line.encode("utf-8"))
        self.records += 1

    def write_many(self, records: Any) -> None:
        for record in records:
            self.write(record)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self.compression:
                self._stream.close()
            assert self._raw is not None
            self._raw.close()
        except Exception:
            self._discard()
            raise
        if exc_type is not None:
            self._discard()
            return
        self._commit()

    def _discard(self) -> None:
        with contextlib.suppress(Exception):
            self._tmp.unlink()

    def _commit(self) -> None:
        if self.target.protocol in ("file", "local", ""):
            os.replace(self._tmp.path, self.target.path)  # atomic on one filesystem
        else:
            # Object stores have no rename: copy + delete, so readers see the old or the new object only.
            self._tmp.rename(self.target)
        assert self._counter is not None
        self.manifest = {
            "uri": str(self.target),
            "records": self.records,
            "bytes": self._counter.bytes,
            "sha256": self._counter.sha256.hexdigest(),
            "format": "jsonl.gz" if self.compression else "jsonl",
            "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }


def read_jsonl(uri: str, storage_conn_id: str | None = None) -> Any:
    """Iterate the records of a file written by :class:`JsonLinesSink` (for downstream tasks and tests)."""
    path = to_storage_path(uri, storage_conn_id)
    with path.open("rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if str(path).endswith(".gz") else raw
        for line in stream:
            if line.strip():
                yield json.loads(line)
