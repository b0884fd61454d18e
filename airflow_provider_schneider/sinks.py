"""Stream records to object storage as JSON Lines: atomic, idempotent, summarised by a manifest.

Records go to a hidden temporary object next to the target and move into place only when the whole pull
succeeded: a failed pull leaves nothing half-written and the previous output intact; a rerun of the same
target replaces it, never appends. Output bytes depend only on the records (gzip without timestamp or
file name), so a rerun that pulls the same records produces the same sha256.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import IO, Any

log = logging.getLogger(__name__)

COMPRESSIONS = (None, "gzip")
PARTIAL_SUFFIX = ".partial"
_LOCAL_PROTOCOLS = ("file", "local", "")


def encode_record(record: Any) -> bytes:
    """One JSON Lines line: compact, UTF-8, keys in the order the API sent them."""
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode("utf-8")


class _CountingHasher:
    """A write-only file wrapper that counts and hashes the bytes as stored (after compression), and hands
    them to the store in blocks (a per-record write through an object-store file object is slow)."""

    block_size = 1 << 20

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.bytes = 0
        self.sha256 = hashlib.sha256()
        self._buffer = bytearray()

    def write(self, data: bytes) -> int:
        self._buffer += data
        self.bytes += len(data)
        self.sha256.update(data)
        if len(self._buffer) >= self.block_size:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._buffer:
            self.raw.write(bytes(self._buffer))
            self._buffer.clear()


def to_storage_path(uri: str, conn_id: str | None = None) -> Any:
    """An ``ObjectStoragePath`` for schemes Airflow knows (file, and s3/gs/... from installed providers);
    any other fsspec scheme (``memory://``, ``sftp://`` ...) through ``universal_pathlib`` directly."""
    from airflow.sdk import ObjectStoragePath

    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme and scheme not in _LOCAL_PROTOCOLS:
        from airflow.sdk.io.fs import has_fs

        if not has_fs(scheme):
            from upath import UPath

            return UPath(uri)
    return ObjectStoragePath(uri, conn_id=conn_id) if conn_id else ObjectStoragePath(uri)


def _is_local(path: Any) -> bool:
    return getattr(path, "protocol", "") in _LOCAL_PROTOCOLS


class JsonLinesSink:
    """``with JsonLinesSink(uri) as sink: sink.write(record)``; then ``sink.manifest``.

    Leaving the block with an exception deletes the temporary object and leaves the target untouched.
    """

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

    @property
    def temp_prefix(self) -> str:
        return f".{self.target.name}."

    def __enter__(self) -> JsonLinesSink:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.target.parent / f"{self.temp_prefix}{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}"
        self._raw = self._tmp.open("wb")
        self._counter = _CountingHasher(self._raw)
        if self.compression:
            # No file name and mtime 0 in the header: same records, same bytes, same checksum.
            self._stream = gzip.GzipFile(filename="", fileobj=self._counter, mode="wb", mtime=0)
        else:
            self._stream = self._counter
        return self

    def write(self, record: Any) -> None:
        self._stream.write(encode_record(record))
        self.records += 1

    def write_many(self, records: Iterable[Any]) -> None:
        for record in records:
            self.write(record)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self.compression:
                self._stream.close()
            assert self._raw is not None and self._counter is not None
            self._counter.flush()
            self._raw.close()
        except BaseException:
            self._discard()
            raise
        if exc_type is not None:
            self._discard()
            return
        try:
            self._commit()
        except BaseException:
            self._discard()
            raise

    def _discard(self) -> None:
        with contextlib.suppress(Exception):
            self._tmp.unlink()

    def _commit(self) -> None:
        if _is_local(self.target):
            os.replace(self._tmp.path, self.target.path)  # atomic within one filesystem
        else:
            # Object stores have no rename: copy + delete, so readers see the old or the new object only.
            self._tmp.rename(self.target)
        self._remove_stale_partials()
        assert self._counter is not None
        self.manifest = {
            "uri": str(self.target),
            "records": self.records,
            "bytes": self._counter.bytes,
            "sha256": self._counter.sha256.hexdigest(),
            "format": "jsonl.gz" if self.compression else "jsonl",
            "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    def _remove_stale_partials(self) -> None:
        """Temporary objects of this target left by a killed process (SIGKILL, OOM) are garbage now."""
        with contextlib.suppress(Exception):
            for stale in self.target.parent.glob(f"{self.temp_prefix}*{PARTIAL_SUFFIX}"):
                log.info("Removing leftover temporary object %s", stale)
                with contextlib.suppress(Exception):
                    stale.unlink()


def read_jsonl(uri: str, storage_conn_id: str | None = None) -> Iterator[Any]:
    """Iterate the records of a file written by :class:`JsonLinesSink` (for downstream tasks and tests)."""
    path = to_storage_path(uri, storage_conn_id)
    with path.open("rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if str(path).endswith(".gz") else raw
        for line in stream:
            if line.strip():
                yield json.loads(line)
