"""Record encoders of the three output formats, each writing one part file into a counting, hashing stream.

JSON Lines and CSV are written record by record (gzip optional, without file name or timestamp, so the same
records give the same bytes); Parquet lives in :mod:`.parquet` (pyarrow is an optional extra).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Sequence
from typing import IO, Any, Protocol


def encode_record(record: Any) -> bytes:
    """One JSON Lines line: compact, UTF-8, keys in the order the API sent them."""
    return (json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode("utf-8")


def json_text(value: Any) -> str:
    """A nested or conflicting value as the JSON text a loader can parse back (``json.loads``)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


class CountingHasher:
    """A write-only binary stream that counts and hashes the bytes as stored (after compression) and hands
    them to the store in 1 MiB blocks (a per-record write through an object-store file object is slow).
    ``tell``/``flush``/``closed`` make it a file pyarrow can write to."""

    block_size = 1 << 20

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.bytes = 0
        self.sha256 = hashlib.sha256()
        self._buffer = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        size = len(data)
        self._buffer += data
        self.bytes += size
        self.sha256.update(data)
        if len(self._buffer) >= self.block_size:
            self.flush()
        return size

    def tell(self) -> int:
        return self.bytes

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        if self._buffer:
            self.raw.write(bytes(self._buffer))
            self._buffer.clear()

    def close(self) -> None:
        """Flush to the store; the underlying file is closed by its owner."""
        self.flush()
        self.closed = True


class PartEncoder(Protocol):
    """Writes records of one part file; ``close`` finishes the format (gzip trailer, Parquet footer)."""

    def write(self, record: Any) -> None: ...

    def close(self) -> None: ...


def _gzip(stream: CountingHasher, level: int = 9) -> gzip.GzipFile:
    # No file name and mtime 0 in the header: same records, same bytes, same checksum.
    return gzip.GzipFile(filename="", fileobj=stream, mode="wb", mtime=0, compresslevel=level)


class JsonLinesEncoder:
    """``level``: gzip's compression level (9, the default, for outputs; staging for a resume takes 1, fast)."""

    def __init__(self, stream: CountingHasher, compression: str | None, *, level: int = 9):
        self._gzip = _gzip(stream, level) if compression == "gzip" else None
        self._stream: Any = self._gzip or stream

    def write(self, record: Any) -> None:
        self._stream.write(encode_record(record))

    def close(self) -> None:
        if self._gzip is not None:
            self._gzip.close()


class _Lines:
    """What ``csv.writer`` writes into: the rows of one record, joined once."""

    def __init__(self) -> None:
        self.chunks: list[str] = []

    def write(self, text: str) -> None:
        self.chunks.append(text)

    def take(self) -> str:
        text = "".join(self.chunks)
        self.chunks.clear()
        return text


def csv_cell(value: Any) -> Any:
    """Scalars as themselves (booleans as ``true``/``false``, as in the JSON), nested values as JSON text,
    null as the empty field."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json_text(value)
    return value


class CsvEncoder:
    """RFC 4180: comma, double-quote quoting where needed, CRLF line ends, one header row of ``columns``."""

    def __init__(self, stream: CountingHasher, compression: str | None, columns: Sequence[str]):
        import csv

        self._gzip = _gzip(stream) if compression == "gzip" else None
        self._stream: Any = self._gzip or stream
        self._lines = _Lines()
        self._writer = csv.writer(self._lines, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        self._columns = list(columns)
        if self._columns:
            self._writer.writerow(self._columns)
            self._flush()

    def _flush(self) -> None:
        self._stream.write(self._lines.take().encode("utf-8"))

    def write(self, record: Any) -> None:
        row = record if isinstance(record, dict) else {"value": record}
        self._writer.writerow([csv_cell(row.get(name)) for name in self._columns])
        self._flush()

    def close(self) -> None:
        if self._gzip is not None:
            self._gzip.close()
