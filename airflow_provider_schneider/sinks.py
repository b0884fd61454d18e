"""Where operators put records: :mod:`airflow_provider_schneider.outputs` behind a small, stable surface.

``JsonLinesSink`` (the first writer, kept for DAGs and scripts that use it) is a :class:`RecordWriter` for
JSON Lines; readers for every format downstream tasks and tests need.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from airflow_provider_schneider.outputs.encoders import encode_record
from airflow_provider_schneider.outputs.formats import COMPRESSIONS as _FORMAT_COMPRESSIONS
from airflow_provider_schneider.outputs.storage import PARTIAL_SUFFIX, to_storage_path
from airflow_provider_schneider.outputs.writer import OutputSpec, RecordWriter

__all__ = [
    "COMPRESSIONS",
    "PARTIAL_SUFFIX",
    "JsonLinesSink",
    "OutputSpec",
    "RecordWriter",
    "encode_record",
    "part_uris",
    "read_csv",
    "read_jsonl",
    "to_storage_path",
]

COMPRESSIONS = _FORMAT_COMPRESSIONS["jsonl"]


class JsonLinesSink(RecordWriter):
    """``with JsonLinesSink(uri) as sink: sink.write(record)``; then ``sink.manifest``."""

    def __init__(self, uri: str, *, compression: str | None = None, storage_conn_id: str | None = None):
        super().__init__(OutputSpec(uri, "jsonl", compression, storage_conn_id=storage_conn_id))

    def write_many(self, records: Iterable[Any]) -> None:
        for record in records:
            self.write(record)


def part_uris(manifest: Mapping[str, Any]) -> list[str]:
    """The files of an output in order: its parts, or the one file of a manifest written before parts."""
    parts = manifest.get("parts")
    return [str(p["uri"]) for p in parts] if parts else [str(manifest["uri"])]


@contextlib.contextmanager
def _decoded(uri: str, storage_conn_id: str | None) -> Iterator[Any]:
    """The bytes of a file written by this provider, gunzipped when its name ends in ``.gz``."""
    path = to_storage_path(uri, storage_conn_id)
    with path.open("rb") as raw:
        yield gzip.GzipFile(fileobj=raw) if str(path).endswith(".gz") else raw


def read_jsonl(uri: str, storage_conn_id: str | None = None) -> Iterator[Any]:
    """Iterate the records of a JSON Lines file (``.gz`` too) written by this provider."""
    with _decoded(uri, storage_conn_id) as stream:
        for line in stream:
            if line.strip():
                yield json.loads(line)


def read_csv(uri: str, storage_conn_id: str | None = None) -> Iterator[dict[str, str]]:
    """Iterate the rows of a CSV file (``.gz`` too) as dicts of strings, the way ``csv.DictReader`` reads."""
    with _decoded(uri, storage_conn_id) as binary:
        yield from csv.DictReader(io.TextIOWrapper(binary, encoding="utf-8", newline=""))
