"""The JSON Lines writer and the readers of ``sinks``: atomic, idempotent, deterministic output on real files (and a
non-local fsspec store)."""

from __future__ import annotations

import gzip
import hashlib
import json
import uuid

import pytest

from airflow_provider_schneider.outputs.writer import OutputSpec, RecordWriter
from airflow_provider_schneider.sinks import read_jsonl
from tests.support.operators import partials, sha256

RECORDS = [{"orderNumber": f"FR{i:08d}", "description": "Disjoncteur Acti9 – 16 A", "n": i} for i in range(500)]


def write(uri: str, records=RECORDS, **kwargs) -> dict:
    with RecordWriter(OutputSpec(uri, "jsonl", **kwargs)) as sink:
        for record in records:
            sink.write(record)
    return sink.manifest


def test_manifest_describes_exactly_the_bytes_written(tmp_path):
    manifest = write(f"file://{tmp_path}/a/b/out.jsonl")  # parent folders are created
    file = tmp_path / "a/b/out.jsonl"
    assert manifest["records"] == 500 and manifest["bytes"] == file.stat().st_size
    assert manifest["sha256"] == sha256(file) and manifest["format"] == "jsonl"
    lines = file.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == RECORDS
    assert "–" in lines[0]  # UTF-8 kept as is, not \u escapes
    assert list(read_jsonl(manifest["uri"])) == RECORDS


def test_an_error_mid_write_leaves_nothing_and_the_previous_file_intact(tmp_path):
    uri = f"file://{tmp_path}/out.jsonl"

    def failing():
        yield from RECORDS[:300]
        raise ConnectionError("page 4 failed")

    with pytest.raises(ConnectionError):
        write(uri, failing())
    assert not (tmp_path / "out.jsonl").exists() and partials(tmp_path) == []

    before = write(uri)["sha256"]
    with pytest.raises(ConnectionError):
        write(uri, failing())
    assert sha256(tmp_path / "out.jsonl") == before and partials(tmp_path) == []


def test_rewrite_replaces_and_gzip_is_byte_identical(tmp_path):
    plain = [write(f"file://{tmp_path}/p.jsonl") for _ in range(2)]
    assert plain[0]["sha256"] == plain[1]["sha256"]
    assert len((tmp_path / "p.jsonl").read_bytes().splitlines()) == 500

    zipped = [write(f"file://{tmp_path}/z.jsonl", compression="gzip") for _ in range(2)]
    file = tmp_path / "z.jsonl.gz"
    assert zipped[0]["uri"].endswith("z.jsonl.gz") and zipped[0]["format"] == "jsonl.gz"
    assert zipped[0]["sha256"] == zipped[1]["sha256"] == sha256(file)  # no timestamp or name in the header
    assert file.read_bytes()[4:8] == b"\0\0\0\0"  # gzip MTIME field
    assert gzip.decompress(file.read_bytes()) == (tmp_path / "p.jsonl").read_bytes()
    assert list(read_jsonl(zipped[0]["uri"])) == RECORDS
    assert hashlib.sha256(file.read_bytes()).hexdigest() != plain[0]["sha256"]


def test_any_fsspec_scheme_works_through_copy_and_delete(tmp_path):
    uri = f"memory://schneider-{uuid.uuid4().hex[:8]}/orders/day.jsonl"
    manifest = write(uri)
    assert manifest["uri"] == uri and list(read_jsonl(uri)) == RECORDS
    from upath import UPath

    assert [p.name for p in UPath(uri).parent.iterdir()] == ["day.jsonl"]  # no temporary object left


def test_unknown_compression_is_refused(tmp_path):
    with pytest.raises(ValueError, match="compression"):
        OutputSpec(f"file://{tmp_path}/x.jsonl", "jsonl", compression="zip")
