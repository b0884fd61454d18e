"""Record encoders of the three output formats, each writing one part file into a counting, hashing stream.

JSON Lines and CSV are written record by record (gzip optional, without file name or timestamp, so the same
records give the same bytes); Parquet lives in :mod:`.parquet` (pyarrow is an optional extra).

Outputs are always valid UTF-8 and strict JSON: ``json.loads`` accepts what no strict reader does (a lone
surrogate ``"\\ud800"``, which UTF-8 cannot even encode; ``NaN``, ``Infinity``, and a number like ``1e400``
that overflows to infinity), so a record holding one is repaired as it is written: each surrogate code point
becomes U+FFFD, each non-finite number null, both counted (:class:`DataFixes`, the manifest's
``data_fixes``). A record without one (nearly all) takes one strict ``json`` call, as before. Internal files
that a retry reads back (resume chunks) use the lossless pair :func:`encode_lossless`/:func:`decode_lossless`.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol

from airflow_provider_schneider.outputs.schema import folded_fields, json_text

_STRICT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False)
_LOSSLESS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
_SURROGATE = re.compile("[\ud800-\udfff]")
#: OWASP's CSV-injection rule: a cell starting with one of these is a formula to a spreadsheet.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class DataFixes:
    """What the output encoding repaired: surrogate code points (each now U+FFFD, in a value or a key) and
    ``NaN``/``Infinity``/``-Infinity`` values (each now null)."""

    lone_surrogates: int = 0
    non_finite_numbers: int = 0

    def __bool__(self) -> bool:
        return bool(self.lone_surrogates or self.non_finite_numbers)

    def add(self, other: DataFixes) -> None:
        self.lone_surrogates += other.lone_surrogates
        self.non_finite_numbers += other.non_finite_numbers

    def as_dict(self) -> dict[str, int]:
        return {"lone_surrogates": self.lone_surrogates, "non_finite_numbers": self.non_finite_numbers}


def has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a surrogate code point (which UTF-8 cannot encode)."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def strict_json(value: Any) -> str:
    """``value`` as compact strict JSON text; ``ValueError`` on ``NaN``/``Infinity`` (surrogates pass: the
    caller checks the text)."""
    return _STRICT.encode(value)


def encode_record(record: Any, fixes: DataFixes | None = None) -> bytes:
    """One JSON Lines line: compact, UTF-8, keys in the order the API sent them; strict JSON (repairs counted
    into ``fixes`` when given)."""
    return encode_line(record, DataFixes() if fixes is None else fixes)[0]


def encode_line(record: Any, fixes: DataFixes) -> tuple[bytes, Any]:
    """:func:`encode_record`, and the record the line holds: ``record`` itself, or its repaired copy."""
    try:
        return (_STRICT.encode(record) + "\n").encode("utf-8"), record
    except ValueError:  # NaN/Infinity (allow_nan=False) or a surrogate (UnicodeEncodeError is a ValueError)
        clean = repaired(record, fixes)
        return (_STRICT.encode(clean) + "\n").encode("utf-8"), clean


def repaired(value: Any, fixes: DataFixes) -> Any:
    """A copy of ``value`` that strict JSON and UTF-8 can hold: surrogate code points of strings and keys as
    U+FFFD, non-finite numbers as null, anything else as ``default=str`` writes it; counted into ``fixes``."""
    if isinstance(value, str):
        return repaired_text(value, fixes)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        fixes.non_finite_numbers += 1
        return None
    if value is None or isinstance(value, int):  # bool is an int
        return value
    if isinstance(value, dict):
        return _object(value, fixes)
    if isinstance(value, (list, tuple)):
        return [repaired(item, fixes) for item in value]
    return repaired_text(str(value), fixes)


def repaired_text(text: str, fixes: DataFixes) -> str:
    """``text`` with each surrogate code point as U+FFFD, counted into ``fixes`` (ASCII text: as is)."""
    if text.isascii():
        return text
    fixed, count = _SURROGATE.subn("\ufffd", text)
    fixes.lone_surrogates += count
    return fixed


def _key(key: Any, fixes: DataFixes) -> Any:
    if isinstance(key, str):
        return repaired_text(key, fixes)
    if isinstance(key, float) and not math.isfinite(key):
        return json.dumps(key)  # a key is text in JSON: "NaN", never a value token
    return key


def _object(value: dict[Any, Any], fixes: DataFixes) -> dict[Any, Any]:
    """Keys repaired too; a repaired key never takes the name of another key of the object (U+FFFD appended
    until it is free), so no field is lost."""
    written = {key: _key(key, fixes) for key in value}
    kept = {new for old, new in written.items() if new == old}
    out: dict[Any, Any] = {}
    for old, item in value.items():
        new = written[old]
        if new != old:
            while new in kept or new in out:
                new = f"{new}\ufffd"
        out[new] = repaired(item, fixes)
    return out


def encode_lossless(record: Any) -> bytes:
    """One line of an internal file read back by this provider (a resume chunk): nothing repaired. ``NaN`` and
    ``Infinity`` stay JSON's tokens, lone surrogates their 3-byte ``surrogatepass`` form; not valid UTF-8 or
    strict JSON, so never an output. :func:`decode_lossless` gives back a record equal to ``record``."""
    return (_LOSSLESS.encode(record) + "\n").encode("utf-8", "surrogatepass")


def decode_lossless(line: bytes) -> Any:
    """The record of one :func:`encode_lossless` line."""
    return json.loads(line.decode("utf-8", "surrogatepass"))


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
        if len(self._buffer) >= self.block_size:
            self.flush()
        return size

    def tell(self) -> int:
        return self.bytes

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        if self._buffer:
            block = bytes(self._buffer)
            self.sha256.update(block)  # per block, not per record: the same digest for a fraction of the calls
            self.raw.write(block)
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
    """``level``: gzip's compression level (9, the default, for outputs; staging for a resume takes 1, fast).
    Records are repaired into strict JSON (counted into ``fixes``); ``lossless=True`` writes
    :func:`encode_lossless` lines instead (internal files only: read them with :func:`decode_lossless`)."""

    def __init__(
        self,
        stream: CountingHasher,
        compression: str | None,
        *,
        level: int = 9,
        fixes: DataFixes | None = None,
        lossless: bool = False,
    ):
        self._gzip = _gzip(stream, level) if compression == "gzip" else None
        self._stream: Any = self._gzip or stream
        self.fixes = DataFixes() if fixes is None else fixes
        self._lossless = lossless

    def write(self, record: Any) -> None:
        self._stream.write(encode_lossless(record) if self._lossless else encode_record(record, self.fixes))

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


def csv_cell(value: Any, escape_formulas: bool = False) -> Any:
    """Scalars as themselves (booleans as ``true``/``false``, as in the JSON), nested values as JSON text,
    null as the empty field. ``escape_formulas``: a string starting with ``= + - @``, tab or carriage return
    gets a leading ``'`` (OWASP), so a spreadsheet shows it as text; numbers are never touched."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json_text(value)
    if escape_formulas and isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


class CsvEncoder:
    """RFC 4180: comma, double-quote quoting where needed, CRLF line ends, one header row of ``columns``.

    ``overflow``: the name of one last column holding, as a JSON object's text, each record's fields that
    are not among ``columns`` (empty when none). ``escape_formulas``: :func:`csv_cell`'s OWASP rule, for
    cells and header names."""

    def __init__(
        self,
        stream: CountingHasher,
        compression: str | None,
        columns: Sequence[str],
        *,
        overflow: str | None = None,
        escape_formulas: bool = False,
    ):
        import csv

        self._gzip = _gzip(stream) if compression == "gzip" else None
        self._stream: Any = self._gzip or stream
        self._lines = _Lines()
        self._writer = csv.writer(self._lines, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
        self._columns = list(columns)
        self._known = frozenset(self._columns)
        self._overflow = overflow
        self._escape = escape_formulas
        header = self._columns + ([overflow] if overflow is not None else [])
        if header:
            self._writer.writerow([csv_cell(name, escape_formulas) for name in header])
            self._flush()

    def _flush(self) -> None:
        self._stream.write(self._lines.take().encode("utf-8"))

    def write(self, record: Any) -> None:
        row = record if isinstance(record, dict) else {"value": record}
        cells = [csv_cell(row.get(name), self._escape) for name in self._columns]
        if self._overflow is not None:
            cells.append(csv_cell(folded_fields(row, self._known)))
        self._writer.writerow(cells)
        self._flush()

    def close(self) -> None:
        if self._gzip is not None:
            self._gzip.close()
