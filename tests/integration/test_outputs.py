"""Output formats, part files, names and concurrent writers: real pulls from the emulator into real files,
read back with each format's own reader (``json``, ``csv``, pyarrow)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_provider_schneider.emulator import data
from airflow_provider_schneider.exceptions import SchneiderConfigError
from airflow_provider_schneider.operators import SchneiderOrderStatusOperator, SchneiderProductCatalogOperator
from airflow_provider_schneider.outputs.ownership import SET_MARKER
from airflow_provider_schneider.outputs.writer import OutputSpec, RecordWriter
from airflow_provider_schneider.sinks import part_uris, read_csv, read_jsonl
from tests.support.operators import ORDER_HINTS, PRODUCT_HINTS, context, local, partials, sha256, without_extra

SEED = 42
IDS = {"supplier_id": "SE-FR-0001", "customer_id": "0012345678"}


def orders(count: int, country: str = "FR") -> list[dict]:
    return [data.order(SEED, country, i) for i in range(count)]


def pull(tmp_path: Path, name: str, **kwargs) -> dict:
    kwargs.setdefault("country", "FR")
    op = SchneiderOrderStatusOperator(task_id="orders", output_path=f"file://{tmp_path}/{name}", **kwargs)
    return op.execute(context())


def csv_text(value) -> str:
    """What a CSV cell holds for a JSON value: the text, ``true``/``false``, empty for null, JSON for nested."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


# -- formats ---------------------------------------------------------------------------------------------------


def test_jsonl_csv_and_parquet_hold_exactly_the_records(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=250)
    expected = orders(250)

    jsonl = pull(tmp_path, "o.jsonl", page_size=40)
    assert list(read_jsonl(jsonl["uri"])) == expected and jsonl["format"] == "jsonl"
    assert jsonl["parts"] == [
        {"uri": jsonl["uri"], "records": 250, "bytes": jsonl["bytes"], "sha256": sha256(local(jsonl["uri"]))}
    ]

    for compression in (None, "gzip"):
        manifest = pull(tmp_path, "o.csv", output_format="csv", compression=compression, schema_hints=ORDER_HINTS)
        assert manifest["format"] == ("csv.gz" if compression else "csv") and manifest["records"] == 250
        raw = local(manifest["uri"]).read_bytes()
        text = (gzip.decompress(raw) if compression else raw).decode()
        assert text.startswith(",".join(manifest["columns"]) + "\r\n")  # header: the declared columns, _extra last
        assert list(manifest["columns"])[:3] == ["orderNumber", "orderStatus", "purchaserId"]
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert without_extra(rows) == [{k: csv_text(v) for k, v in record.items()} for record in expected]
        assert list(read_csv(manifest["uri"])) == rows

    for compression, codec in ((None, "SNAPPY"), ("zstd", "ZSTD")):
        manifest = pull(
            tmp_path,
            f"o-{compression}.parquet",
            output_format="parquet",
            compression=compression,
            schema_hints=ORDER_HINTS,
        )
        path = local(manifest["uri"])
        assert manifest["format"] == "parquet" and manifest["compression"] == (compression or "snappy")
        # numbers stay numbers, strings stay strings
        assert without_extra(pq.read_table(path).to_pylist()) == expected
        metadata = pq.ParquetFile(path).metadata
        assert metadata.row_group(0).column(0).compression == codec
        assert manifest["columns"]["totalAmount"] == "double" and manifest["columns"]["orderNumber"] == "string"
        assert manifest["schema"]["mode"] == "declared" and manifest["schema_changes"] == []
    assert partials(tmp_path) == []


def test_an_endpoint_without_a_declared_schema_infers_its_columns(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=250)
    manifest = pull(
        tmp_path,
        "o.parquet",
        output_format="parquet",
        endpoint="/v1/supply-chain/partner-order-status/orders/FR",
        records_field="orderList",
        paginate=True,
    )
    assert manifest["schema"] == {"mode": "inferred"} and "schema_changes" not in manifest
    assert pq.read_table(local(manifest["uri"])).to_pylist() == orders(250)
    assert manifest["columns"]["totalAmount"] == "float"


def test_parquet_keeps_nested_objects_as_nested_columns(emulator, schneider_conn, tmp_path):
    emulator.configure(products=120)
    op = SchneiderProductCatalogOperator(
        task_id="catalog",
        **IDS,
        product_references=[data.product_reference(i) for i in range(30)],
        output_format="parquet",
        output_path=f"file://{tmp_path}/catalog.parquet",
        schema_hints=PRODUCT_HINTS,
    )
    manifest = op.execute(context())
    table = pq.read_table(local(manifest["uri"]))
    expected = [data.product_detail(SEED, i) for i in range(30)]
    assert without_extra(table.to_pylist()) == expected
    assert str(table.schema.field("weight").type) == "struct<value: double, unit: string>"
    assert str(table.schema.field("identifiers").type) == "struct<commercialReference: string, gtin: string>"
    assert str(table.schema.field("weight").type) == "struct<value: double, unit: string>"


def test_schema_drift_across_pages_never_breaks_a_file(tmp_path):
    """A field first seen late, null on the first record, int then float, object vs string: each format keeps
    every value (conflicting types become JSON text in CSV and Parquet, and the manifest says so)."""
    records = [{"id": i, "late": None, "amount": 1, "mixed": "text"} for i in range(5)]
    records += [{"id": 5, "amount": 2.5, "mixed": {"a": [1, 2]}, "late": "now"}]
    records += [{"id": 6, "extra": [{"k": 1}, {"k": 2, "j": "x"}], "amount": None}]
    for output_format in ("jsonl", "csv", "parquet"):
        with RecordWriter(OutputSpec(f"file://{tmp_path}/drift.{output_format}", output_format)) as writer:
            for record in records:
                writer.write(record)
        uri = writer.manifest["uri"]
        if output_format == "jsonl":
            assert list(read_jsonl(uri)) == records
            continue
        columns = ["id", "late", "amount", "mixed", "extra"]
        assert writer.manifest["columns"] == {
            "id": "int",
            "late": "string",
            "amount": "float",
            "mixed": "json",
            "extra": "list<struct>",
        }
        if output_format == "csv":
            rows = list(read_csv(uri))
            assert list(rows[0]) == columns
            assert [r["mixed"] for r in rows] == ["text"] * 5 + ['{"a":[1,2]}', ""]
            assert [r["amount"] for r in rows] == ["1", "1", "1", "1", "1", "2.5", ""]
            continue
        rows = pq.read_table(local(uri)).to_pylist()
        assert [r["id"] for r in rows] == list(range(7))
        assert [r["amount"] for r in rows] == [1.0] * 5 + [2.5, None]
        assert [r["mixed"] for r in rows] == ['"text"'] * 5 + ['{"a":[1,2]}', None]  # json.loads gives them back
        assert [r["late"] for r in rows] == [None] * 5 + ["now", None]
        assert rows[6]["extra"] == [{"k": 1, "j": None}, {"k": 2, "j": "x"}]


def test_parquet_is_written_in_row_groups(tmp_path):
    with RecordWriter(OutputSpec(f"file://{tmp_path}/rows.parquet", "parquet")) as writer:
        for i in range(120_000):
            writer.write({"i": i, "s": str(i)})
    parquet = pq.ParquetFile(local(writer.manifest["uri"]))
    groups = [parquet.metadata.row_group(j).num_rows for j in range(parquet.metadata.num_row_groups)]
    assert groups == [50_000, 50_000, 20_000]
    assert parquet.read().column("i").to_pylist() == list(range(120_000))


def test_missing_pyarrow_is_a_clear_error_before_any_call(emulator, schneider_conn, tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["pyarrow"] = None  # as if the extra were not installed
        from airflow_provider_schneider.operators import SchneiderOrderStatusOperator
        from tests.support.operators import context
        op = SchneiderOrderStatusOperator(task_id="o", country="FR", output_format="parquet",
                                          output_path="file://{tmp_path}/x.parquet")
        try:
            op.execute(context())
        except Exception as exc:
            print(type(exc).__name__, exc)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert "SchneiderConfigError o: output_format='parquet' needs pyarrow" in out.stdout, out.stderr[-2000:]
    assert "pip install 'airflow-provider-schneider[parquet]'" in out.stdout
    assert emulator.stats()["api_calls"] == 0 and emulator.stats()["token_requests"] == 0


def test_bad_output_arguments_fail_when_the_dag_is_parsed():
    cases = [
        ({"output_format": "xml"}, "output_format must be one of jsonl, csv, parquet"),
        ({"output_format": "parquet", "compression": "gzip"}, "compression for output_format='parquet'"),
        ({"compression": "zstd"}, "compression for output_format='jsonl'"),
        ({"max_records_per_file": 0}, "max_records_per_file must be a positive integer"),
        ({"max_bytes_per_file": "1MB"}, "max_bytes_per_file must be a positive integer"),
    ]
    for kwargs, message in cases:
        with pytest.raises(SchneiderConfigError, match=f"^o: {message}"):
            SchneiderOrderStatusOperator(task_id="o", country="FR", **kwargs)


# -- part files -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("output_format", ["jsonl", "csv", "parquet"])
def test_part_files_split_at_the_bound_and_a_rerun_replaces_the_whole_set(
    emulator, schneider_conn, tmp_path, output_format
):
    emulator.configure(orders_per_country=250)
    expected = orders(250)
    manifest = pull(tmp_path, "set/", output_format=output_format, max_records_per_file=60, schema_hints=ORDER_HINTS)
    folder = local(manifest["uri"])
    ext = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}[output_format]
    assert [p["records"] for p in manifest["parts"]] == [60, 60, 60, 60, 10]
    # The parts, and the marker that says they are this provider's set (a rerun replaces only those).
    assert sorted(p.name for p in folder.iterdir()) == [SET_MARKER, *(f"part-{i:05d}{ext}" for i in range(5))]
    for part in manifest["parts"]:
        assert part["sha256"] == sha256(local(part["uri"])) and part["bytes"] == local(part["uri"]).stat().st_size
    assert manifest["records"] == 250 and manifest["bytes"] == sum(p["bytes"] for p in manifest["parts"])
    assert read_all(manifest, output_format) == expected

    # A rerun with fewer, bigger parts: the set is replaced whole, no part of the longer run survives.
    emulator.configure(orders_per_country=130)
    again = pull(tmp_path, "set/", output_format=output_format, max_records_per_file=100, schema_hints=ORDER_HINTS)
    assert again["uri"] == manifest["uri"] and [p["records"] for p in again["parts"]] == [100, 30]
    assert sorted(p.name for p in folder.iterdir()) == [SET_MARKER, *(f"part-{i:05d}{ext}" for i in range(2))]
    assert read_all(again, output_format) == orders(130)
    assert partials(tmp_path) == [] and not [p for p in tmp_path.rglob(".*") if p.is_file()]


def read_all(manifest: dict, output_format: str) -> list[dict]:
    records: list[dict] = []
    for uri in part_uris(manifest):
        if output_format == "jsonl":
            records += read_jsonl(uri)
        elif output_format == "parquet":
            records += pq.read_table(local(uri)).to_pylist()
        else:  # CSV holds text: give numbers back their JSON type for the comparison
            numbers = ("totalAmount", "numberOfLines")
            records += [{k: json.loads(v) if k in numbers else v for k, v in row.items()} for row in read_csv(uri)]
    return without_extra(records) if output_format != "jsonl" else records


def test_byte_bound_splits_gzip_parts_on_stored_bytes(emulator, schneider_conn, tmp_path):
    emulator.configure(orders_per_country=3000)
    manifest = pull(tmp_path, "gz/", compression="gzip", max_bytes_per_file=20_000)
    sizes = [p["bytes"] for p in manifest["parts"]]
    assert len(sizes) > 2 and all(size >= 20_000 for size in sizes[:-1]) and max(sizes) < 20_000 + (1 << 20)
    assert [r for uri in part_uris(manifest) for r in read_jsonl(uri)] == orders(3000)
    assert all(p["uri"].endswith(".jsonl.gz") for p in manifest["parts"])


# -- writers that never collide ---------------------------------------------------------------------------


WRITER = """
import json, sys
from airflow_provider_schneider.operators import SchneiderOrderStatusOperator
from tests.support.operators import context
kwargs = json.loads(sys.argv[2])
op = SchneiderOrderStatusOperator(task_id="orders", country=sys.argv[1], page_size=20, max_concurrency=1, **kwargs)
print("MANIFEST " + json.dumps(op.execute(context())), flush=True)
"""


@pytest.mark.parametrize("split", [False, True], ids=["file", "part-set"])
def test_two_concurrent_runs_writing_one_target_both_complete(emulator, schneider_conn, tmp_path, split):
    """A zombie and its retry, or two DAGs sharing a path: two real processes pull into one target at once.
    Neither deletes the other's temporaries; the target ends up as one writer's complete result."""
    emulator.configure(orders_per_country=400, latency_ms=40)
    target = f"file://{tmp_path}/shared/" + ("" if split else "orders.jsonl")
    kwargs = {"output_path": target, **({"max_records_per_file": 150} if split else {})}
    repo = str(Path(__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
    runs = []
    for country in ("FR", "DE"):  # different records, so a mix of the two would show
        runs.append(
            subprocess.Popen(
                [sys.executable, "-c", WRITER, country, json.dumps(kwargs)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
        time.sleep(0.5)  # the second starts while the first is mid-pull
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], [err[-2000:] for _, err in outputs]
    manifests = [json.loads(out.split("MANIFEST ", 1)[1]) for out, _ in outputs]
    assert manifests[0]["uri"] == manifests[1]["uri"]
    final = [r for uri in part_uris(manifests[1]) for r in read_jsonl(uri)]
    assert final in (orders(400, "FR"), orders(400, "DE"))  # one writer's whole result, never a mix
    assert partials(tmp_path) == [] and not list((tmp_path / "shared").glob(".*replaced*"))


def test_only_provably_stale_leftovers_are_removed(tmp_path):
    """A killed writer's temporary goes; a live writer's stays (a zombie still pulling), whatever its age on
    this host; on an unknown host only age proves it stale; another target's is never touched."""
    from airflow_provider_schneider.outputs.storage import STALE_AFTER, WriterTag

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    me = WriterTag.new()
    now = int(time.time())
    killed = tmp_path / f".out.jsonl.w-{me.host}-{dead.stdout.strip()}-{now}-0badc0de.partial"
    live = tmp_path / f".out.jsonl.w-{me.host}-{os.getpid()}-{now}-0badc0de.partial"
    # Another host, or a container sharing this hostname but not its PID namespace: another label.
    elsewhere = tmp_path / f".out.jsonl.w-otherhost-0123abcd-{os.getpid()}-{now}-0badc0de.partial"
    old = tmp_path / ".out.jsonl.w-otherhost-0123abcd-1-1-0badc0de.partial"
    old_chunk = tmp_path / ".out.jsonl.resume-0123456789ab-000001-000004-0badc0de.jsonl.gz"
    new_chunk = tmp_path / ".out.jsonl.resume-0123456789ab-000005-000008-0badc0de.jsonl.gz"
    other = tmp_path / ".other.jsonl.w-otherhost-0123abcd-1-1-0badc0de.partial"
    for path in (killed, live, elsewhere, old, old_chunk, new_chunk, other):
        path.write_bytes(b'{"half":')
    for path in (old, old_chunk, other):
        os.utime(path, (now - STALE_AFTER - 60, now - STALE_AFTER - 60))
    with RecordWriter(OutputSpec(f"file://{tmp_path}/out.jsonl")) as writer:
        writer.write({"a": 1})
    assert not killed.exists() and not old.exists() and not old_chunk.exists()
    assert live.exists() and elsewhere.exists() and other.exists() and new_chunk.exists()


# -- names ----------------------------------------------------------------------------------------------------


def test_default_names_carry_format_and_split(emulator, schneider_conn, tmp_path):
    from airflow.sdk import DAG

    emulator.configure(orders_per_country=30)
    base = f"file://{tmp_path}/base"
    with DAG("d", schedule=None):
        plain = SchneiderOrderStatusOperator(task_id="a", country="FR", output_base=base, output_format="csv")
        split = SchneiderOrderStatusOperator(
            task_id="b", country="FR", output_base=base, output_format="parquet", max_records_per_file=10
        )
    interval = "20261104T000000__20261105T000000"
    assert plain.execute(context())["uri"] == f"{base}/d/a/{interval}.csv"
    manifest = split.execute(context())
    assert manifest["uri"] == f"{base}/d/b/{interval}"
    assert [p["uri"] for p in manifest["parts"]] == [f"{base}/d/b/{interval}/part-{i:05d}.parquet" for i in range(3)]
    assert manifest["path_params"] == {"country": "FR"} and manifest["query"] == {}

    from airflow_provider_schneider.assets import event_extra

    assert event_extra(manifest)["parts"] == manifest["parts"]  # an asset consumer finds the parts, too
    assert "parts" not in event_extra(plain.execute(context()))  # one file: its uri says it all


def test_an_object_store_folder_without_a_date_is_never_taken_for_stale():
    """S3 and GCS prefixes (a split output's staging folder) have no modification time: unknown, never 0."""
    from upath import UPath

    from airflow_provider_schneider.outputs.storage import _modified_at, is_provably_stale

    base = UPath(f"memory://stale-{os.getpid()}")
    staging = base / ".set.w-otherhost-0123abcd-1-1-0badc0de.partial"
    (staging / "part-00000.jsonl").write_bytes(b"{}\n")
    assert _modified_at(staging) is None and not is_provably_stale(staging)
    assert _modified_at(staging / "part-00000.jsonl") is not None  # a file says when it was written


def test_object_store_set_commits_take_turns(tmp_path):
    """Two writers committing part sets to one object-store folder at once (threads, fsspec's memory store):
    the folder ends as one writer's whole set, never a mix, and the lock object is gone."""
    import threading

    from upath import UPath

    base = f"memory://sets-{os.getpid()}/out"
    done: list[dict] = []

    def write(tag: str, count: int) -> None:
        with RecordWriter(OutputSpec(base, max_records_per_file=10)) as writer:
            for i in range(count):
                writer.write({"writer": tag, "i": i})
        done.append(writer.manifest)

    threads = [threading.Thread(target=write, args=(tag, n)) for tag, n in (("a", 95), ("b", 42))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(done) == 2
    names = sorted(p.name for p in UPath(base).iterdir() if p.name != SET_MARKER)
    final = [r for name in names for r in read_jsonl(f"{base}/{name}")]
    assert {r["writer"] for r in final} in ({"a"}, {"b"}) and len(final) in (95, 42)
    assert len(names) == (10 if final[0]["writer"] == "a" else 5)
    assert [p.name for p in UPath(base).parent.iterdir() if p.name.startswith(".")] == []


def test_mapped_values_name_the_output():
    from airflow_provider_schneider.pulls.target import mapped_segments

    assert mapped_segments({"country": "FR"}) == ["country=FR"]
    assert mapped_segments({"path_params": {"country": "DE", "n": 2}}) == ["country=DE", "n=2"]
    assert mapped_segments({"change_type": "new", "country": "FR"}) == ["change_type=new", "country=FR"]
    assert mapped_segments({"q": "a/b c"}) == ["q=a%2Fb%20c"]  # one path segment, whatever the value
    [long] = mapped_segments({"product_references": ["LC1D09"] * 40})
    assert long.startswith("product_references=h") and len(long) == len("product_references=h") + 12
    assert mapped_segments({"product_references": ["LC1D09"] * 40}) == [long]  # stable
    # Two mappings naming the same key: both qualified, so two map instances never share an object.
    assert mapped_segments({"path_params": {"country": "FR"}, "query": {"country": "X"}}) == [
        "path_params.country=FR",
        "query.country=X",
    ]
    # A credential never becomes part of an object name.
    [key, other] = mapped_segments({"query": {"apikey": "SECRET-api-key-value", "x": 1}})
    assert key.startswith("apikey=h") and "SECRET" not in key and other == "x=1"
