"""Bounded, writable data shapes: lone surrogates and NaN/Infinity never fail a pull or produce invalid JSON,
top-level columns are capped (one overflow column), CSV formula escaping, the lossless staging encoding.

Every output is read back with its format's own strict reader: UTF-8 that refuses surrogates, ``json.loads``
that refuses ``NaN``/``Infinity``, ``csv``, pyarrow.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_provider_schneider.outputs import parquet
from airflow_provider_schneider.outputs.writer import OutputSpec, RecordWriter
from tests.support.operators import local

REPO = Path(__file__).resolve().parents[2]  # the checkout
FORMATS = ("jsonl", "csv", "parquet")
#: As ``json.loads`` gives them from an API's body: a lone surrogate in a value, a key and a nested list;
#: NaN, Infinity, -Infinity and a number that overflows to infinity, at the top and nested.
RAW = '{"id":1,"s":"a\\ud800b","\\udc00k":1,"x":NaN,"y":Infinity,"z":-Infinity,"big":1e400,"n":{"v":[NaN,"\\ud800"]}}'
REPAIRED = {
    "id": 1,
    "s": "a\ufffdb",
    "\ufffdk": 1,
    "x": None,
    "y": None,
    "z": None,
    "big": None,
    "n": {"v": [None, "\ufffd"]},
}
CLEAN = {"id": 2, "s": "ok é", "\ufffdk": 2, "x": 1.5, "n": {"v": ["w"]}}
FIXES = {"lone_surrogates": 3, "non_finite_numbers": 5}


def _refuse(constant: str) -> None:
    raise ValueError(f"not strict JSON: {constant}")


def strict_json(text: str) -> object:
    return json.loads(text, parse_constant=_refuse)


def strict_lines(path: Path) -> list[object]:
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return [strict_json(line) for line in raw.decode("utf-8").splitlines()]  # strict UTF-8: no surrogates


def strict_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as text:
        return list(csv.reader(text, strict=True))


def write(tmp_path: Path, name: str, records: list[object], output_format: str, **options: object) -> dict:
    with RecordWriter(OutputSpec(f"file://{tmp_path}/{name}", output_format, **options)) as writer:
        for record in records:
            writer.write(record)
    return writer.manifest


@pytest.mark.parametrize("output_format", FORMATS)
def test_surrogates_and_non_finite_numbers_never_fail_a_pull_and_are_counted(tmp_path, output_format):
    manifest = write(tmp_path, f"fix.{output_format}", [json.loads(RAW), CLEAN], output_format)
    assert manifest["data_fixes"] == FIXES
    path = local(manifest["uri"])
    if output_format == "jsonl":
        assert strict_lines(path) == [REPAIRED, CLEAN]
    elif output_format == "csv":
        header, first, second = strict_csv(path)
        assert header == ["id", "s", "\ufffdk", "x", "y", "z", "big", "n"]
        assert first == ["1", "a\ufffdb", "1", "", "", "", "", '{"v":[null,"\ufffd"]}']
        assert second == ["2", "ok é", "2", "1.5", "", "", "", '{"v":["w"]}']
        assert strict_json(first[-1]) == REPAIRED["n"]
    else:
        rows = pq.read_table(path).to_pylist()
        assert rows[0] == REPAIRED
        assert rows[1] == {**CLEAN, "y": None, "z": None, "big": None}
    # the same records give the same bytes (and the same counts)
    again = write(tmp_path, f"again.{output_format}", [json.loads(RAW), CLEAN], output_format)
    assert (again["sha256"], again["data_fixes"]) == (manifest["sha256"], manifest["data_fixes"])


def test_gzip_json_lines_are_repaired_too_and_a_repaired_key_takes_no_other_key(tmp_path):
    record = json.loads('{"\\ud800":1,"\\ufffd":2,"t":"\\udfff\\ud800","list":[Infinity,{"\\ud800":NaN}]}')
    manifest = write(tmp_path, "keys.jsonl", [record], "jsonl", compression="gzip")
    assert strict_lines(local(manifest["uri"])) == [
        {"\ufffd\ufffd": 1, "\ufffd": 2, "t": "\ufffd\ufffd", "list": [None, {"\ufffd": None}]}
    ]
    assert manifest["data_fixes"] == {"lone_surrogates": 4, "non_finite_numbers": 2}


def test_a_clean_pull_has_no_data_fixes_and_unchanged_bytes(tmp_path):
    """The fast path: a record without anything to repair is the one strict json call it always was."""
    records = [{"id": i, "name": f"n{i}", "price": i / 3, "tags": ["a", {"b": None}]} for i in range(3)]
    manifest = write(tmp_path, "clean.jsonl", records, "jsonl")
    assert "data_fixes" not in manifest
    expected = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
    assert local(manifest["uri"]).read_text(encoding="utf-8") == expected
    assert "data_fixes" not in write(tmp_path, "clean.csv", records, "csv")


def test_collect_for_xcom_returns_strict_json_records():
    from airflow_provider_schneider.outputs.xcom import collect_for_xcom

    records, output = collect_for_xcom(iter([json.loads(RAW), CLEAN]), "t", 10, 10_000)
    assert records == [REPAIRED, CLEAN]
    json.dumps(records, allow_nan=False, ensure_ascii=False).encode("utf-8")  # XCom can store them
    assert output["data_fixes"] == FIXES and output["records"] == 2 and output["format"] == "xcom"


# -- the lossless encoding of internal files (resume chunks) ----------------------------------------------------


def test_the_lossless_staging_encoding_gives_back_exactly_what_was_received(tmp_path):
    from airflow_provider_schneider.outputs.encoders import (
        CountingHasher,
        JsonLinesEncoder,
        decode_lossless,
        encode_lossless,
    )

    received = [json.loads(RAW), CLEAN, "a\ud800", float("nan"), {"\ud83d\ude00": [float("-inf"), 10**30]}]
    buffer = io.BytesIO()
    counter = CountingHasher(buffer)
    encoder = JsonLinesEncoder(counter, "gzip", level=1, lossless=True)
    for record in received:
        encoder.write(record)
    encoder.close()
    counter.close()
    back = [decode_lossless(line) for line in gzip.decompress(buffer.getvalue()).splitlines()]
    assert repr(back) == repr(received)  # repr: NaN equals itself there
    assert encode_lossless(back[0]) == encode_lossless(received[0])
    assert not encoder.fixes  # nothing repaired
    # a resumed pull (records read back from chunks) writes the same bytes and counts as an uninterrupted one
    first = write(tmp_path, "direct.jsonl", received, "jsonl")
    second = write(tmp_path, "resumed.jsonl", back, "jsonl")
    assert (first["sha256"], first["data_fixes"]) == (second["sha256"], second["data_fixes"])


# -- top-level columns: bounded ---------------------------------------------------------------------------------


def unique_keys(count: int) -> list[dict]:
    return [{f"k{i}": i} for i in range(count)]


@pytest.mark.parametrize("output_format", FORMATS)
def test_one_unique_key_per_record_gives_one_overflow_column(tmp_path, output_format):
    records = unique_keys(10_000)
    manifest = write(tmp_path, f"unique.{output_format}", records, output_format)
    path = local(manifest["uri"])
    if output_format == "jsonl":  # records as they are: JSON Lines has no columns
        assert strict_lines(path) == records
        assert "overflow_column" not in manifest
        return
    assert manifest["columns"] == {"_overflow": "json"}
    assert (manifest["overflow_column"], manifest["overflow_keys"]) == ("_overflow", 10_000)
    if output_format == "csv":
        rows = strict_csv(path)
        assert rows[0] == ["_overflow"]
        assert [strict_json(cell) for (cell,) in rows[1:]] == records
        assert manifest["bytes"] < 250_000  # was 100 MB: a column per record
    else:
        table = pq.read_table(path)
        assert table.column_names == ["_overflow"]
        assert [strict_json(cell) for cell in table.column("_overflow").to_pylist()] == records


@pytest.mark.parametrize("output_format", ["csv", "parquet"])
def test_beyond_max_columns_shape_fields_keep_their_columns_and_data_keys_fold(tmp_path, output_format):
    """1,100 records with two fields of the shape (one named ``_overflow``) and one key of the data each: the
    shape keeps its columns, the data keys share one column (named apart), in every part."""
    records = [{"id": i, "_overflow": "real", f"k{i}": i} for i in range(1_100)]
    manifest = write(tmp_path, f"mixed.{output_format}", records, output_format, max_records_per_file=500)
    assert manifest["columns"] == {"id": "int", "_overflow": "string", "_overflow_1": "json"}
    assert (manifest["overflow_column"], manifest["overflow_keys"]) == ("_overflow_1", 1_100)
    back: list[dict] = []
    for part in manifest["parts"]:
        if output_format == "csv":
            header, *rows = strict_csv(local(part["uri"]))
            assert header == ["id", "_overflow", "_overflow_1"]
            back += [{"id": int(r[0]), "_overflow": r[1], **strict_json(r[2])} for r in rows]
        else:
            for row in pq.read_table(local(part["uri"])).to_pylist():
                back.append({"id": row["id"], "_overflow": row["_overflow"], **strict_json(row["_overflow_1"])})
    assert back == records
    # up to MAX_COLUMNS names nothing is folded, however sparse
    within = write(tmp_path, f"within.{output_format}", unique_keys(1_000), output_format)
    assert len(within["columns"]) == 1_000 and "overflow_column" not in within


def test_wide_parquet_row_groups_are_bounded_by_cells(tmp_path, monkeypatch):
    monkeypatch.setattr(parquet, "ROW_GROUP_CELLS", 1_000)
    records = [{f"c{j}": j for j in range(20)} for _ in range(200)]
    manifest = write(tmp_path, "wide.parquet", records, "parquet")
    metadata = pq.ParquetFile(local(manifest["uri"])).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [50] * 4
    assert pq.read_table(local(manifest["uri"])).to_pylist() == records


CHILD = textwrap.dedent(
    """
    import json, sys
    from airflow_provider_schneider.outputs.writer import OutputSpec, RecordWriter

    output_format, target = sys.argv[1], sys.argv[2]
    with RecordWriter(OutputSpec("file://" + target, output_format)) as writer:
        for i in range(10_000):
            writer.write({f"k{i}": i})
    # VmHWM: this process's own peak. (ru_maxrss would carry the forking parent's RSS across exec on Linux:
    # inside a pytest session that has run Airflow, that alone is ~490 MiB.)
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    peak_mib = int(status["VmHWM"].split()[0]) / 1024
    print(json.dumps({"peak_mib": peak_mib, "bytes": writer.manifest["bytes"]}))
    """
)


@pytest.mark.parametrize("output_format", FORMATS)
def test_peak_memory_of_ten_thousand_unique_keys_stays_bounded(tmp_path, output_format):
    """A bound, not a timing: the whole writer process (interpreter, Airflow and pyarrow imports included)
    stays under 400 MB (Parquet was 1.5 GB)."""
    target = tmp_path / f"rss.{output_format}"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, output_format, str(target)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    assert measured["peak_mib"] < 400, measured
    assert measured["bytes"] < 1_000_000, measured


# -- CSV formula escaping ---------------------------------------------------------------------------------------

FORMULAS = {"f": "=1+1", "p": "+1", "m": "-1", "a": "@SUM(A1)", "t": "\tx", "r": "\rx", "=h": "x"}
PLAIN = {"n": -5, "g": -2.5, "ok": "a=b", "nested": {"v": "=x"}, "b": True}


def test_csv_escape_formulas_prefixes_formula_cells_and_header_names(tmp_path):
    record = {**FORMULAS, **PLAIN}
    escaped = write(tmp_path, "esc.csv", [record], "csv", csv_escape_formulas=True)
    header, row = strict_csv(local(escaped["uri"]))
    assert header == ["f", "p", "m", "a", "t", "r", "'=h", "n", "g", "ok", "nested", "b"]
    assert row == ["'=1+1", "'+1", "'-1", "'@SUM(A1)", "'\tx", "'\rx", "x", "-5", "-2.5", "a=b", '{"v":"=x"}', "true"]
    assert escaped["columns"]["=h"] == "string"  # the manifest names the field itself
    plain = write(tmp_path, "plain.csv", [record], "csv")  # off by default: the values as they are
    header, row = strict_csv(local(plain["uri"]))
    assert header[6] == "=h" and row[:7] == list(FORMULAS.values())
    with pytest.raises(ValueError, match="csv_escape_formulas applies to output_format='csv'"):
        OutputSpec(f"file://{tmp_path}/x.jsonl", "jsonl", csv_escape_formulas=True)
