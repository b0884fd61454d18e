"""Write a pull's records as one file or a set of part files, atomically, and describe them in a manifest.

``with RecordWriter(OutputSpec(uri, ...)) as out: out.write(record)``; then ``out.manifest``. Leaving the
block with an exception removes this writer's temporaries and leaves the target as it was; a rerun of the
same target replaces it whole (a set too: no part of a longer earlier run survives). Output bytes depend
only on the records, so a rerun that pulls the same records gets the same sha256.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_schneider.exceptions import SchneiderStorageError
from airflow_provider_schneider.outputs import commit, ownership, storage
from airflow_provider_schneider.outputs.contract import Conformer
from airflow_provider_schneider.outputs.declared import EXTRA_COLUMN, DatasetSchema
from airflow_provider_schneider.outputs.encoders import (
    CountingHasher,
    CsvEncoder,
    DataFixes,
    JsonLinesEncoder,
    PartEncoder,
)
from airflow_provider_schneider.outputs.formats import check_output_options, extension, manifest_compression
from airflow_provider_schneider.outputs.location import shown_uri
from airflow_provider_schneider.outputs.spool import RecordSpool


@dataclass(frozen=True)
class OutputSpec:
    """Where and how to write. ``max_records_per_file``/``max_bytes_per_file`` split the output into
    parts (``uri`` is then a folder); a part ends once it holds that many records or stored bytes.
    ``csv_escape_formulas`` (CSV only): a string cell or header name starting with ``= + - @``, tab or
    carriage return gets a leading ``'`` (OWASP's CSV-injection rule). ``layout="hive"``: ``uri`` is a
    partition folder of part files. ``schema``: the declared columns every file gets (:mod:`.declared`);
    ``None`` infers them from this pull's records."""

    uri: str
    output_format: str = "jsonl"
    compression: str | None = None
    max_records_per_file: int | None = None
    max_bytes_per_file: int | None = None
    storage_conn_id: str | None = None
    csv_escape_formulas: bool = False
    layout: str = "default"
    schema: DatasetSchema | None = None

    def __post_init__(self) -> None:
        check_output_options(
            self.output_format,
            self.compression,
            self.max_records_per_file,
            self.max_bytes_per_file,
            self.csv_escape_formulas,
            self.layout,
        )

    @property
    def split(self) -> bool:
        """A folder of part files: a size bound, or a hive partition (``…/dt=…/part-00000.parquet``)."""
        return self.max_records_per_file is not None or self.max_bytes_per_file is not None or self.layout == "hive"

    @property
    def extension(self) -> str:
        return extension(self.output_format, self.compression)

    @property
    def format_label(self) -> str:
        """The manifest's ``format``: ``jsonl``, ``jsonl.gz``, ``csv``, ``csv.gz``, ``parquet``."""
        return self.extension.lstrip(".")

    def target_uri(self) -> str:
        """The file (or, when split, folder) written: gzip adds ``.gz`` to a file name without it."""
        uri = self.uri.rstrip("/") if self.split else self.uri
        if not self.split and self.compression == "gzip" and not uri.endswith(".gz"):
            uri += ".gz"
        return uri


@dataclass(frozen=True)
class Part:
    uri: str
    records: int
    bytes: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "records": self.records, "bytes": self.bytes, "sha256": self.sha256}


def part_name(index: int, extension: str) -> str:
    return f"part-{index:05d}{extension}"


class RecordWriter:
    """``where`` names the output in errors (``"pull_orders: output_path"``); ``task_try`` tags temporaries
    with the task instance and try, so a retry on any host removes those of the tries before it; ``task``
    starts a schema contract's error."""

    def __init__(
        self,
        spec: OutputSpec,
        *,
        where: str = "output",
        task_try: storage.TaskTry | None = None,
        task: str | None = None,
    ):
        self.spec = spec
        self.where = where
        self.target = storage.to_storage_path(spec.target_uri(), spec.storage_conn_id, where=where)
        self.tag = storage.WriterTag.new(task_try)
        self.records = 0
        self.parts: list[Part] = []
        self.manifest: dict[str, Any] = {}
        self.columns: dict[str, str] | None = None
        self.fixes = DataFixes()  # repairs of the JSON Lines path; the spool counts its own
        self._staging: Any = None
        self._spool: RecordSpool | None = None
        self._encoder: PartEncoder | None = None
        self._counter: CountingHasher | None = None
        self._raw: Any = None
        self._part_path: Any = None
        self._part_records = 0
        jsonl = spec.output_format == "jsonl"
        self._conformer = Conformer(spec.schema, task or where, keys_kept=jsonl) if spec.schema is not None else None
        self._declared: Callable[[CountingHasher], PartEncoder] | None = None

    # -- records in -----------------------------------------------------------------------------------------

    def __enter__(self) -> RecordWriter:
        with self._storage_step("create the folder of"):
            self.target.parent.mkdir(parents=True, exist_ok=True)
        with self._storage_step("prepare"):
            commit.recover(self.target)  # a commit a killed writer left half done: the target is whole again
            if self.spec.split:
                ownership.owned_parts(self.target, self.where)  # a folder of someone else's: refused before any call
            else:
                ownership.check_file_target(self.target, self.where)
            storage.remove_stale_temporaries(self.target, own=self.tag)
            self._staging = self.tag.temporary(self.target)
            if self.spec.split:
                self._staging.mkdir(parents=True, exist_ok=True)
        if self._conformer is not None:
            self._declared = self._declared_format()
        elif self.spec.output_format != "jsonl":
            self._spool = RecordSpool()
        return self

    def write(self, record: Any) -> None:
        self.records += 1
        conformer = self._conformer
        if conformer is not None:
            assert self._declared is not None
            row = conformer.jsonl_record(record) if self.spec.output_format == "jsonl" else conformer.row(record)
            self._encode(row, self._declared)
        elif self._spool is not None:
            self._spool.write(record)
        else:
            self._encode(record, self._jsonl)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None:
                self._finish()
        except BaseException:
            self._discard()
            raise
        finally:
            if self._spool is not None:
                self._spool.close()
        if exc_type is not None:
            self._discard()

    # -- parts ----------------------------------------------------------------------------------------------

    def _jsonl(self, stream: CountingHasher) -> PartEncoder:
        return JsonLinesEncoder(stream, self.spec.compression, fixes=self.fixes)

    def _encode(self, record: Any, make: Callable[[CountingHasher], PartEncoder]) -> None:
        if self._encoder is None:
            self._open_part(make)
        assert self._encoder is not None and self._counter is not None
        self._encoder.write(record)
        self._part_records += 1
        spec = self.spec
        full = spec.max_records_per_file is not None and self._part_records >= spec.max_records_per_file
        if full or (spec.max_bytes_per_file is not None and self._counter.bytes >= spec.max_bytes_per_file):
            self._close_part()

    def _open_part(self, make: Callable[[CountingHasher], PartEncoder]) -> None:
        if self.spec.split:
            self._part_path = self._staging / part_name(len(self.parts), self.spec.extension)
        else:
            self._part_path = self._staging
        with self._storage_step("write"):
            self._raw = self._part_path.open("wb")
        self._counter = CountingHasher(self._raw)
        self._encoder = make(self._counter)
        self._part_records = 0

    def _close_part(self) -> None:
        assert self._encoder is not None and self._counter is not None
        self._encoder.close()
        self._counter.close()
        storage.sync_file(self._raw)  # local files: the bytes are on disk before the rename makes them the output
        self._raw.close()
        final = self.target / self._part_path.name if self.spec.split else self.target
        self.parts.append(Part(str(final), self._part_records, self._counter.bytes, self._counter.sha256.hexdigest()))
        self._encoder = self._counter = self._raw = None

    def _finish(self) -> None:
        make: Callable[[CountingHasher], PartEncoder] = self._declared or self._jsonl
        if self._spool is not None:
            make = self._format_from_spool()
            for record in self._spool:
                self._encode(record, make)
        if self._encoder is not None:
            self._close_part()
        if not self.parts:  # no records: still one (empty) file, so the target exists and can be read
            self._open_part(make)
            self._close_part()
        with self._storage_step("commit"):
            if self.spec.split:
                (self._staging / ownership.SET_MARKER).write_text(self._set_marker())
                commit.commit_folder(self._staging, self.target, self.tag, self.where)
            else:
                ownership.check_file_target(self.target, self.where)
                commit.commit_file(self._staging, self.target)
        storage.remove_stale_temporaries(self.target, own=self.tag)
        self.manifest = self._manifest()

    def _format_from_spool(self) -> Callable[[CountingHasher], PartEncoder]:
        assert self._spool is not None
        schema = self._spool.schema
        self.columns = schema.describe()
        compression = self.spec.compression
        overflow = schema.overflow_column
        if self.spec.output_format == "csv":
            names, escape = schema.kept(), self.spec.csv_escape_formulas
            return lambda stream: CsvEncoder(stream, compression, names, overflow=overflow, escape_formulas=escape)
        from airflow_provider_schneider.outputs.parquet import ROW_GROUP_RECORDS, ParquetEncoder

        kinds = schema.final()
        rows_per_group = min(self.spec.max_records_per_file or ROW_GROUP_RECORDS, ROW_GROUP_RECORDS)
        return lambda stream: ParquetEncoder(
            stream, compression, kinds, overflow=overflow, row_group_records=rows_per_group
        )

    def _declared_format(self) -> Callable[[CountingHasher], PartEncoder]:
        """Encoders of the declared columns: known before the first record, so no spool pass."""
        schema = self.spec.schema
        assert schema is not None
        self.columns = schema.describe()
        compression = self.spec.compression
        if self.spec.output_format == "jsonl":
            return self._jsonl
        if self.spec.output_format == "csv":
            names, escape = list(self.columns), self.spec.csv_escape_formulas
            return lambda stream: CsvEncoder(stream, compression, names, escape_formulas=escape)
        from airflow_provider_schneider.outputs.parquet import ROW_GROUP_RECORDS, ParquetEncoder
        from airflow_provider_schneider.outputs.schema import Kind

        kinds = {**schema.columns, EXTRA_COLUMN: Kind("string")}  # the conformer writes it as JSON text
        rows_per_group = min(self.spec.max_records_per_file or ROW_GROUP_RECORDS, ROW_GROUP_RECORDS)
        return lambda stream: ParquetEncoder(stream, compression, kinds, row_group_records=rows_per_group)

    def _set_marker(self) -> str:
        """What the committed folder says about itself: its parts, so a later commit replaces only those."""
        parts = [
            {"name": p.uri.rsplit("/", 1)[-1], "records": p.records, "bytes": p.bytes, "sha256": p.sha256}
            for p in self.parts
        ]
        return ownership.set_marker(parts, records=self.records, format=self.spec.format_label)

    @contextlib.contextmanager
    def _storage_step(self, what: str) -> Iterator[None]:
        """A store's ``OSError`` as an error naming the task, the field and the URI (never a bare one)."""
        try:
            yield
        except OSError as exc:
            reason = shown_uri(exc.strerror or str(exc) or type(exc).__name__)
            raise SchneiderStorageError(
                f"{self.where}: cannot {what} {shown_uri(self.target)}: {type(exc).__name__}: {reason}"
            ) from exc

    def _discard(self) -> None:
        with contextlib.suppress(Exception):
            if self._encoder is not None:
                self._encoder.close()  # release the format's writer (its footer goes nowhere that is kept)
        with contextlib.suppress(Exception):
            if self._raw is not None:
                inner = getattr(self._raw, "_obj", self._raw)  # ObjectStoragePath wraps files to track lineage
                discard = None if storage.is_local(self.target) else getattr(inner, "discard", None)
                if discard is None:
                    self._raw.close()
                else:  # an object store's upload is aborted, not completed as a visible partial object
                    discard()
                    inner.closed = True  # nothing left to flush: its finaliser must not try
        with contextlib.suppress(Exception):
            storage.remove_tree(self._staging)

    def _manifest(self) -> dict[str, Any]:
        if len(self.parts) == 1 and not self.spec.split:
            sha256, size = self.parts[0].sha256, self.parts[0].bytes
        else:  # a set: the checksum of its parts' names and checksums, in order
            listing = "".join(f"{p.uri.rsplit('/', 1)[-1]} {p.sha256}\n" for p in self.parts)
            sha256, size = hashlib.sha256(listing.encode()).hexdigest(), sum(p.bytes for p in self.parts)
        manifest: dict[str, Any] = {
            "uri": str(self.target),
            "records": self.records,
            "bytes": size,
            "sha256": sha256,
            "format": self.spec.format_label,
            "compression": manifest_compression(self.spec.output_format, self.spec.compression),
            "parts": [p.as_dict() for p in self.parts],
            "fetched_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        if self.columns is not None:
            manifest["columns"] = self.columns
        fixes = DataFixes()
        fixes.add(self.fixes)
        schema = None
        if self._spool is not None:
            fixes.add(self._spool.fixes)
            schema = self._spool.schema
        conformer = self._conformer
        if conformer is not None:
            fixes.add(conformer.fixes)
            assert self.spec.schema is not None
            manifest["schema"] = {"mode": "declared", **self.spec.schema.as_dict()}
            manifest["schema_changes"] = conformer.changes()
            omitted = conformer.omitted_changes()
            if omitted:  # fields named by data: the list is bounded, the rest counted
                manifest["schema_changes_omitted"] = omitted
            if conformer.discarded:
                manifest["values_discarded"] = conformer.discarded
        else:
            manifest["schema"] = {"mode": "inferred"}
        if fixes:  # values repaired into valid UTF-8 and strict JSON (docs/outputs.md, "Encodings")
            manifest["data_fixes"] = fixes.as_dict()
        if schema is not None and schema.overflow_column is not None:  # more names than MAX_COLUMNS: folded
            manifest["overflow_column"] = schema.overflow_column
            manifest["overflow_keys"] = schema.overflow_keys
        return manifest
