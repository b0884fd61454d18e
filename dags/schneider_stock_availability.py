"""Stock levels and availability for products picked upstream, with dynamic task mapping.

The catalog pull finds the products; a small task chunks their references; stock and availability
operators are mapped over the chunks (``.partial().expand()``), each chunk fanned out with bounded
concurrency. References containing ``/`` or ``\\`` are never sent raw in a URL path.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_schneider.operators.products import (
    SchneiderProductAvailabilityOperator,
    SchneiderProductCatalogOperator,
    SchneiderStockLevelOperator,
)


@dag(
    dag_id="schneider_stock_availability",
    schedule="0 6 * * 1-5",
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    params={
        "supplier_id": Param("SE-FR-0001", type="string"),
        "customer_id": Param("0012345678", type="string"),
        "products": Param(40, type="integer", minimum=1, description="how many catalog products to check"),
        "chunk_size": Param(10, type="integer", minimum=1),
        "ship_to": Param("0100012345", type="string"),
    },
    tags=["schneider", "example", "mapping"],
    doc_md=__doc__,
)
def schneider_stock_availability():
    catalog = SchneiderProductCatalogOperator(
        task_id="pull_catalog",
        supplier_id="{{ params.supplier_id }}",
        customer_id="{{ params.customer_id }}",
    )

    @task
    def chunk_references(manifest: dict, params=None) -> list[list[str]]:
        """The first N commercial references, in chunks: one mapped task instance per chunk."""
        from itertools import islice

        from airflow_provider_schneider.sinks import read_jsonl

        refs = [
            p["identifiers"]["commercialReference"]
            for p in islice(read_jsonl(manifest["uri"]), int(params["products"]))
        ]
        size = int(params["chunk_size"])
        return [refs[i : i + size] for i in range(0, len(refs), size)]

    chunks = chunk_references(catalog.output)

    stock = SchneiderStockLevelOperator.partial(task_id="stock_levels").expand(product_references=chunks)
    availability = SchneiderProductAvailabilityOperator.partial(
        task_id="availability", quantity=5, ship_to="{{ params.ship_to }}"
    ).expand(product_references=chunks)

    @task
    def report(stock_manifests: list[dict], availability_manifests: list[dict]) -> dict:
        """Totals across every mapped chunk: units in stock, products with a shortage."""
        from airflow_provider_schneider.sinks import read_jsonl

        units = sum(
            level.get("quantity", 0)
            for m in stock_manifests
            for item in read_jsonl(m["uri"])
            for level in item.get("stockLevels", [])
        )
        availability = [a for m in availability_manifests for a in read_jsonl(m["uri"])]
        summary = {
            "products_checked": sum(m["records"] for m in stock_manifests),
            "not_found": sum(m.get("not_found_count", 0) for m in stock_manifests),
            "units_in_stock": units,
            "shortages": sum(1 for a in availability if a.get("shortage")),
            "chunks": len(stock_manifests),
        }
        print(f"SCHNEIDER_SUMMARY {summary}")
        return summary

    report(stock.output, availability.output)


schneider_stock_availability()
