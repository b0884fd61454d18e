"""Smoke-test a Schneider connection: get a token through the hook and make one cheap call.

Run it after creating or rotating a connection (``airflow dags test schneider_token_probe``). The log shows
where the token came from (``memory``, ``file``, ``variable`` or ``endpoint``): on a warm worker it should
not be ``endpoint``, which is the point of the token cache.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task

from airflow_provider_schneider.hooks import SchneiderHook


@dag(
    dag_id="schneider_token_probe",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "conn_id": Param("schneider_default", type="string"),
        "country": Param("FR", type="string", pattern="^[A-Z]{2}$"),
    },
    tags=["schneider", "example"],
    doc_md=__doc__,
)
def schneider_token_probe():
    @task
    def probe(params: dict | None = None) -> dict:
        """One token (from the cheapest cache tier that has one) and one single-record Order Status call."""
        params = params or {}
        hook = SchneiderHook(params.get("conn_id", "schneider_default"))
        body = hook.request(
            "GET",
            f"/v1/supply-chain/partner-order-status/orders/{params.get('country', 'FR')}",
            params={"page": 1, "page-size": 1},
        )
        manager = hook.token_manager
        summary = {
            "conn_id": hook.schneider_conn_id,
            "token_source": manager.last_source if manager else "api_key",
            "token_requests": manager.token_requests if manager else 0,
            "orders": (body.get("pagination") or {}).get("totalNumberOfRecords"),
        }
        print(f"SCHNEIDER_SUMMARY {summary}")
        return summary

    probe()


schneider_token_probe()
