"""Stock levels and availability for products picked upstream, with dynamic task mapping.

The catalog pull finds the products; a small task chunks their references; stock and availability
operators are mapped over the chunks (``.partial().expand()``), each chunk fanned out with bounded
concurrency (connection extra ``max_concurrency``; ``max_active_tis_per_dagrun`` bounds the chunks in
flight, so 2 x 4 calls stay under Schneider's 10 parallel calls). References containing ``/`` or ``\\``
(``LC1D09/BD``) are never sent raw in a URL path: the ``path_rule`` param picks how they are substituted.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

try:
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow < 3.2
    from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_schneider.operators import (
    SchneiderProductAvailabilityOperator,
    SchneiderProductCatalogOperator,
    SchneiderStockLevelOperator,
)


@dag(
    dag_id="schneider_stock_availability",
    # Real data intervals (a plain cron string in Airflow 3 gives zero-length ones at the trigger time).
    schedule=CronDataIntervalTimetable("0 6 * * 1-5", timezone="UTC"),
    start_date=pendulum.datetime(2026, 11, 1, tz="UTC"),
    catchup=False,
    params={
        "supplier_id": Param("SE-FR-0001", type="string"),
        "customer_id": Param("0012345678", type="string"),
        "products": Param(40, type="integer", minimum=1, description="how many catalog products to check"),
        "chunk_size": Param(10, type="integer", minimum=1),
        "ship_to": Param("0100012345", type="string"),
        "quantity": Param(5, type="integer", minimum=1),
        "path_rule": Param(
            "percent",
            enum=["percent", "tilde", "underscore", "dash"],
            description="how '/' and '\\' in a reference are substituted in the URL path",
        ),
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
        """The first N active commercial references, in chunks: one mapped task instance per chunk."""
        from itertools import islice

        from airflow_provider_schneider.sinks import read_jsonl

        active = (p for p in read_jsonl(manifest["uri"]) if p.get("status", "active") == "active")
        refs = [p["identifiers"]["commercialReference"] for p in islice(active, int(params["products"]))]
        size = int(params["chunk_size"])
        return [refs[i : i + size] for i in range(0, len(refs), size)]

    chunks = chunk_references(catalog.output)

    stock = SchneiderStockLevelOperator.partial(
        task_id="stock_levels",
        path_substitutions="{{ params.path_rule }}",
        max_active_tis_per_dagrun=2,
    ).expand(product_references=chunks)
    availability = SchneiderProductAvailabilityOperator.partial(
        task_id="availability",
        quantity="{{ params.quantity }}",
        ship_to="{{ params.ship_to }}",
        path_substitutions="{{ params.path_rule }}",
        max_active_tis_per_dagrun=2,
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
        answers = [a for m in availability_manifests for a in read_jsonl(m["uri"])]
        summary = {
            "products_checked": sum(m["records"] for m in stock_manifests),
            "not_found": sum(m.get("not_found_count", 0) for m in stock_manifests),
            "units_in_stock": units,
            "availability_checked": len(answers),
            "shortages": sorted(a["productReference"] for a in answers if a.get("shortage")),
            "chunks": len(stock_manifests),
            "uris": [m["uri"] for m in stock_manifests],
        }
        print(f"SCHNEIDER_SUMMARY {summary}")
        return summary

    report(stock.output, availability.output)


schneider_stock_availability()
