"""Declared schemas and schema contracts: the type language, the conversions a liberal reader makes, what each
contract does with a value that does not fit, and the changes a manifest lists."""

from __future__ import annotations

import json

import pytest

from airflow_provider_schneider.exceptions import SchneiderConfigError, SchneiderSchemaError
from airflow_provider_schneider.outputs.contract import MAX_LISTED_CHANGES, MAX_TRACKED_CHANGES, Conformer
from airflow_provider_schneider.outputs.declared import DatasetSchema, dataset_schema, parse_type, type_text
from airflow_provider_schneider.pulls.naming import partition_key
from airflow_provider_schneider.pulls.target import checked_dataset_schema
from airflow_provider_schneider.resources import RESOURCES


def schema(contract: str = "evolve", **fields: str) -> DatasetSchema:
    built = dataset_schema("orders", fields, 1, None, contract, "pull")
    assert built is not None
    return built


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("string", "string"),
        ("DOUBLE", "double"),
        ("number", "double"),
        ("int", "bigint"),
        ("bool", "boolean"),
        ("date", "date"),
        ("array<long>", "list<bigint>"),
        ("struct<sku: string, lines: list<struct<q: double>>>", "struct<sku: string, lines: list<struct<q: double>>>"),
    ],
)
def test_types_read_from_text(text, canonical):
    assert type_text(parse_type(text)) == canonical


def test_a_mapping_is_a_struct():
    assert type_text(parse_type({"value": "double", "unit": "string"})) == "struct<value: double, unit: string>"


@pytest.mark.parametrize(
    ("hints", "said"),
    [
        ({"qty": "decimal"}, "field 'qty': cannot read the type 'decimal': unknown type 'decimal'"),
        ({"qty": "list<double"}, "field 'qty'"),
        ({"qty": "struct<a: string, a: bigint>"}, "declared twice"),
        ({"qty": "double double"}, "after the type"),
        ({"qty": 3}, "a type is a text"),
        ({"_extra": "string"}, "'_extra' is the column of undeclared fields"),
        ({}, "non-empty mapping"),
        ({"qty": "list<" * 5000 + "double" + ">" * 5000}, "nested too deeply"),
    ],
)
def test_a_declared_schema_that_does_not_parse_names_task_and_field(hints, said):
    with pytest.raises(SchneiderConfigError) as caught:
        checked_dataset_schema("pull_orders", RESOURCES["order_status"], hints, "evolve")
    assert "pull_orders: schema_hints" in str(caught.value) and said in str(caught.value)


def test_unknown_contract_and_freeze_without_a_schema_are_refused():
    with pytest.raises(
        SchneiderConfigError, match="pull: schema_contract must be one of evolve, freeze, discard_value"
    ):
        checked_dataset_schema("pull", RESOURCES["order_status"], None, "strict")
    with pytest.raises(SchneiderConfigError, match="needs a declared schema"):
        checked_dataset_schema("pull", None, None, "freeze")
    assert checked_dataset_schema("pull", None, None, "evolve") is None  # an endpoint: columns inferred


def test_every_catalog_declaration_parses_and_has_a_version():
    for resource in RESOURCES.values():
        built = checked_dataset_schema("t", resource, None, "evolve")
        if resource.record_schema is None:
            assert built is None
            continue
        assert built is not None and built.version == f"{resource.name}/v{resource.schema_version}"
        assert list(built.describe())[-1] == "_extra"


def test_hints_extend_the_declaration_and_change_version_and_fingerprint():
    plain = checked_dataset_schema("t", RESOURCES["order_status"], None, "evolve")
    hinted = checked_dataset_schema("t", RESOURCES["order_status"], {"totalAmount": "double"}, "evolve")
    assert plain is not None and hinted is not None
    assert hinted.version.startswith("order_status/v1+") and hinted.fingerprint != plain.fingerprint
    assert list(hinted.describe()) == ["orderNumber", "orderStatus", "purchaserId", "totalAmount", "_extra"]
    again = checked_dataset_schema("other", RESOURCES["order_status"], {"totalAmount": "double"}, "freeze")
    assert again is not None and (again.version, again.fingerprint) == (hinted.version, hinted.fingerprint)


def test_lossless_conversions_are_made_and_listed():
    conformer = Conformer(schema(id="string", qty="double", n="bigint", ok="boolean", day="date"), "pull")
    row = conformer.row({"id": 12345, "qty": "1.5", "n": 2.0, "ok": "TRUE", "day": "2026-01-05"})
    assert row == {"id": "12345", "qty": 1.5, "n": 2, "ok": True, "day": "2026-01-05", "_extra": None}
    assert conformer.row({"qty": 3, "n": "7"}) == {
        "id": None,
        "qty": 3.0,
        "n": 7,
        "ok": None,
        "day": None,
        "_extra": None,
    }
    changes = {(c["field"], c["change"], c["seen"]): c for c in conformer.changes()}
    assert changes[("id", "converted", "bigint")]["declared"] == "string"
    assert changes[("qty", "converted", "string")]["records"] == 1
    assert changes[("n", "converted", "double")]["records"] == 1 and ("qty", "converted", "bigint") not in changes


def test_evolve_keeps_what_does_not_fit_in_extra():
    conformer = Conformer(schema(qty="double", lines="list<struct<sku: string, q: double>>"), "pull")
    record = {"qty": "n/a", "lines": [{"sku": "A", "q": 1}, {"sku": "B", "q": 2, "lot": 7}], "promo": "X"}
    row = conformer.row(record)
    assert row["qty"] is None and row["lines"] == [{"sku": "A", "q": 1.0}, {"sku": "B", "q": 2.0}]
    assert json.loads(row["_extra"]) == {"qty": "n/a", "lines": record["lines"], "promo": "X"}  # strict JSON text
    listed = {(c["field"], c["change"]): c["action"] for c in conformer.changes()}
    assert listed == {
        ("qty", "type_mismatch"): "kept_in_extra",
        ("lines[].lot", "new_field"): "kept_in_extra",
        ("promo", "new_field"): "kept_in_extra",
    }


def test_json_lines_keep_undeclared_fields_as_keys():
    conformer = Conformer(schema(id="string", qty="double"), "pull", keys_kept=True)
    record = conformer.jsonl_record({"promo": "X", "id": 7, "developer.email": "a@b"})
    assert record == {"promo": "X", "id": "7", "developer.email": "a@b"}
    assert list(record) == ["promo", "id", "developer.email"]  # the API's keys and order
    actions = {change["field"]: change["action"] for change in conformer.changes()}
    assert actions == {"promo": "kept_as_key", "developer.email": "kept_as_key", "id": "converted", "qty": "null"}
    assert conformer.jsonl_record({"qty": "n/a", "_extra": 1}) == {"qty": None, "_extra": {"qty": "n/a", "_extra": 1}}


def test_discard_value_nulls_and_counts():
    conformer = Conformer(schema("discard_value", qty="double"), "pull")
    assert conformer.row({"qty": "n/a", "promo": "X"}) == {"qty": None, "_extra": None}
    assert conformer.row({"qty": 2}) == {"qty": 2.0, "_extra": None}
    assert conformer.discarded == 2
    assert {c["action"] for c in conformer.changes()} == {"discarded"}


@pytest.mark.parametrize(
    ("record", "said"),
    [
        ({"qty": "n/a"}, "field 'qty' is declared double, the API sent string in record 1"),
        ({"qty": 1, "promo": "X"}, "field 'promo' is not in the declared schema orders/v1 (the API sent string)"),
        ({"id": 5}, "field 'id' is declared string, the API sent bigint"),
    ],
)
def test_freeze_fails_on_the_first_difference_naming_field_and_types(record, said):
    conformer = Conformer(schema("freeze", id="string", qty="double"), "pull_orders")
    with pytest.raises(SchneiderSchemaError) as caught:
        conformer.row(record)
    assert str(caught.value).startswith("pull_orders: schema_contract='freeze': ") and said in str(caught.value)


def test_freeze_accepts_nulls_missing_fields_and_integers_in_a_double():
    conformer = Conformer(schema("freeze", id="string", qty="double"), "pull")
    assert conformer.row({"qty": 3}) == {"id": None, "qty": 3.0, "_extra": None}
    assert conformer.row({"id": None}) == {"id": None, "qty": None, "_extra": None}


def test_a_field_missing_from_every_record_is_listed():
    conformer = Conformer(schema(id="string", currency="string"), "pull")
    conformer.row({"id": "1"})
    conformer.row({"id": "2", "currency": None})
    assert conformer.changes() == []  # present (null) in one record: not missing
    alone = Conformer(schema(id="string", currency="string"), "pull")
    alone.row({"id": "1"})
    assert alone.changes() == [
        {
            "field": "currency",
            "change": "missing",
            "declared": "string",
            "seen": "absent",
            "records": 1,
            "action": "null",
        }
    ]


def test_strings_and_numbers_are_repaired_as_in_json_lines():
    conformer = Conformer(schema(name="string", qty="double", raw="json"), "pull")
    row = conformer.row({"name": "a\ud800b", "qty": float("nan"), "raw": {"x": float("inf")}, "extra": "\udcff"})
    assert row == {"name": "a\ufffdb", "qty": None, "raw": {"x": None}, "_extra": '{"extra":"\ufffd"}'}
    assert conformer.fixes.as_dict() == {"lone_surrogates": 2, "non_finite_numbers": 2}
    assert conformer.row({"more": [1.5, float("-inf")]})["_extra"] == '{"more":[1.5,null]}'  # strict JSON
    assert conformer.fixes.non_finite_numbers == 3


@pytest.mark.parametrize(
    ("key", "partition"),
    [
        ("20261105T000000__20261106T000000", "dt=2026-11-05"),
        ("20261105T060000__20261105T070000", "dt=2026-11-05/interval=20261105T060000__20261105T070000"),
        ("20261101T000000__20261108T000000", "dt=2026-11-01/interval=20261101T000000__20261108T000000"),
        ("manual__2026-11-05T10_00_00-h0123456789ab", "dt=2026-11-05/run=manual__2026-11-05T10_00_00-h0123456789ab"),
    ],
)
def test_hive_partitions_name_the_day_and_never_share_one(key, partition):
    import pendulum

    assert partition_key(key, {"logical_date": pendulum.datetime(2026, 11, 5, 10)}) == partition


def test_changes_keyed_by_data_stay_bounded():
    """Undeclared fields named by data (an id per key) must not grow the tally or the manifest without end."""
    conformer = Conformer(schema(id="string", stock="struct<total: double>"), "pull")
    for i in range(5_000):
        conformer.row({"id": str(i), f"sku-{i}": 1, "stock": {"total": 1, f"warehouse-{i}": 2}})
    listed = conformer.changes()
    assert len(listed) == MAX_LISTED_CHANGES
    assert conformer.omitted_changes() == {
        "not_listed": MAX_TRACKED_CHANGES - MAX_LISTED_CHANGES,  # tracked, counted, not in the manifest
        "untracked": 10_000 - MAX_TRACKED_CHANGES,  # field occurrences past the tally's bound
    }
    assert all(change["change"] == "new_field" and change["records"] == 1 for change in listed)
