"""Reading what the operators wrote, for downstream tasks: the files of a manifest, JSON Lines and CSV
records (``.gz`` too), and a storage path for any URI a manifest names (``file://``, ``s3://``, ...).

Public: DAG files use these. Writing is the operators' job (:mod:`airflow_provider_schneider.outputs`).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

from airflow_provider_schneider.outputs.storage import to_storage_path

__all__ = ["part_uris", "read_csv", "read_jsonl", "to_storage_path"]


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
