"""Parquet parts through pyarrow (the optional ``parquet`` extra), written one row group at a time."""

from __future__ import annotations

from typing import Any

from airflow_provider_schneider.exceptions import SchneiderConfigError
from airflow_provider_schneider.outputs.encoders import CountingHasher
from airflow_provider_schneider.outputs.schema import Kind, conform, folded_fields, json_text

#: Records per row group: memory holds one group (a few MB for typical API records), never the pull.
ROW_GROUP_RECORDS = 50_000
#: Rows kept as Python objects before they become an Arrow record batch.
BATCH_RECORDS = 5_000
#: Cells (rows x leaf columns) of a row group and of a batch at most: a wide schema (up to
#: ``MAX_COLUMNS`` columns of structs) gets shorter groups, so memory is bounded by the cells, not the width.
#: Records of up to 100 leaf columns keep the record counts above.
ROW_GROUP_CELLS = 5_000_000
BATCH_CELLS = 500_000
EXTRA_HINT = "pip install 'airflow-provider-schneider[parquet]'"


def require_pyarrow(task_id: str) -> None:
    """Fail before any call when the extra is missing (not after an hour of pulling)."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:
        raise SchneiderConfigError(
            f"{task_id}: output_format='parquet' needs pyarrow, which is not installed: {EXTRA_HINT}"
        ) from exc


def arrow_type(kind: Kind) -> Any:
    import pyarrow as pa

    if kind.name == "bool":
        return pa.bool_()
    if kind.name == "int":
        return pa.int64()
    if kind.name == "float":
        return pa.float64()
    if kind.name == "date":
        return pa.date32()
    if kind.name == "list":
        assert kind.item is not None
        return pa.list_(arrow_type(kind.item))
    if kind.name == "struct":
        return pa.struct([pa.field(name, arrow_type(sub)) for name, sub in kind.fields.items()])
    return pa.string()  # string, json (conflicting types as JSON text)


def leaf_columns(kind: Kind) -> int:
    """The Parquet columns one value of ``kind`` is stored in (a struct's fields, a list's item)."""
    if kind.name == "struct":
        return max(1, sum(leaf_columns(sub) for sub in kind.fields.values()))
    if kind.name == "list":
        assert kind.item is not None
        return leaf_columns(kind.item)
    return 1


class ParquetEncoder:
    """Collects conformed rows into Arrow record batches of :data:`BATCH_RECORDS` (compact: Arrow buffers, not
    Python objects) and writes a row group each ``row_group_records`` rows. ``overflow``: the name of one last
    string column holding, as a JSON object's text, each record's fields that are not ``columns``."""

    def __init__(
        self,
        stream: CountingHasher,
        compression: str | None,
        columns: dict[str, Kind],
        *,
        overflow: str | None = None,
        row_group_records: int = ROW_GROUP_RECORDS,
    ):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._columns = columns
        self._overflow = overflow
        fields = [pa.field(name, arrow_type(kind)) for name, kind in columns.items()]
        self._schema = pa.schema(fields + ([pa.field(overflow, pa.string())] if overflow is not None else []))
        codec = "snappy" if compression is None else ("none" if compression == "none" else compression)
        self._writer = pq.ParquetWriter(stream, self._schema, compression=codec)
        leaves = max(1, sum(leaf_columns(kind) for kind in columns.values()) + (overflow is not None))
        self._row_group = max(1, min(row_group_records, ROW_GROUP_CELLS // leaves))
        self._batch_rows = max(1, min(BATCH_RECORDS, BATCH_CELLS // leaves))
        self._pending: dict[str, list[Any]] = {name: [] for name in self._schema.names}
        self._pending_rows = 0
        self._batches: list[Any] = []
        self._rows = 0

    def write(self, record: Any) -> None:
        row = record if isinstance(record, dict) else {"value": record}
        for name, kind in self._columns.items():
            self._pending[name].append(conform(row.get(name), kind))
        if self._overflow is not None:
            folded = folded_fields(row, self._columns)
            self._pending[self._overflow].append(None if folded is None else json_text(folded))
        self._pending_rows += 1
        self._rows += 1
        if self._rows >= self._row_group:
            self._flush()
        elif self._pending_rows >= self._batch_rows:
            self._batch()

    def _batch(self) -> None:
        import pyarrow as pa

        if self._pending_rows:
            self._batches.append(pa.RecordBatch.from_pydict(self._pending, schema=self._schema))
            self._pending = {name: [] for name in self._schema.names}
            self._pending_rows = 0

    def _flush(self) -> None:
        import pyarrow as pa

        self._batch()
        if self._rows:
            table = pa.Table.from_batches(self._batches, schema=self._schema)
            self._writer.write_table(table, row_group_size=self._rows)
            self._batches = []
            self._rows = 0

    def close(self) -> None:
        self._flush()
        self._writer.close()
