"""Data-aware downstream of the Product Catalog delta: runs whenever new Schneider catalog data has landed.

Scheduled on the asset ``schneider://product_catalog/SE-FR-0001/0012345678`` that
``schneider_product_catalog_delta`` (and any other pull of that scope) emits when its task succeeds. It needs
no connection and no knowledge of the producer's paths: each triggering event's ``extra`` is the pull's
manifest (uri, records, sha256, interval). The task checks each file against its sha256 and record count,
then applies the changes keyed by product reference (the last change wins), so files whose date ranges
overlap are harmless.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import dag, task

from airflow_provider_schneider.assets import product_catalog_asset

# The producer's scope (see dags/schneider_product_catalog_delta.py).
CATALOG = product_catalog_asset("SE-FR-0001", "0012345678")


@dag(
    dag_id="schneider_catalog_consumer",
    schedule=[CATALOG],
    start_date=pendulum.datetime(2026, 10, 1, tz="UTC"),
    catchup=False,
    tags=["schneider", "example", "assets"],
    doc_md=__doc__,
)
def schneider_catalog_consumer():
    @task(inlets=[CATALOG])
    def apply_catalog_changes(triggering_asset_events=None) -> dict:
        import hashlib

        from airflow_provider_schneider.sinks import read_jsonl, to_storage_path

        events = list(triggering_asset_events[CATALOG]) if triggering_asset_events else []
        latest: dict[str, dict] = {}
        files = []
        for event in sorted(events, key=lambda e: e.timestamp):
            extra = event.extra or {}
            uri = extra.get("uri")
            if not uri:  # e.g. an event created by hand, or a small-result pull (records in XCom)
                continue
            digest = hashlib.sha256()
            with to_storage_path(uri).open("rb") as raw:
                for block in iter(lambda: raw.read(1 << 20), b""):
                    digest.update(block)
            if digest.hexdigest() != extra.get("sha256"):
                raise ValueError(f"{uri} does not match the sha256 its asset event announced")
            records = list(read_jsonl(uri))
            if len(records) != extra.get("records"):
                raise ValueError(f"{uri} holds {len(records)} records, its asset event announced {extra['records']}")
            for change in records:
                latest[change["commercialReference"]] = change
            files.append(
                {
                    "uri": uri,
                    "records": len(records),
                    "since": extra.get("since"),
                    "until": extra.get("until"),
                    "source": f"{event.source_dag_id}/{event.source_run_id}",
                }
            )
        summary = {
            "events": len(events),
            "files": files,
            "products_changed": len(latest),
            "deleted": sorted(ref for ref, change in latest.items() if change.get("changeType") == "delete"),
        }
        print(f"SCHNEIDER_SUMMARY {summary}")
        return summary

    apply_catalog_changes()


schneider_catalog_consumer()
