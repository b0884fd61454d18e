"""Child process of a hostile-gateway case: one call through ``SchneiderHook`` (or, ops
``async_*``, ``SchneiderAsyncHook``), then one JSON line with the
outcome and the time it took. Run as ``python tests/support/hostile_child.py OP [PATH]`` with the connection in
``AIRFLOW_CONN_SCHNEIDER_DEFAULT``; works with any version of the provider on ``PYTHONPATH`` (the benchmark
measures the code before a change with it too). Run as a script, so nothing of this checkout but the
installed package (or ``PYTHONPATH``) is importable."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

RESULT_MARK = "HOSTILE_RESULT "
ORDERS = "/v1/supply-chain/partner-order-status/orders/FR"


async def _async_call(op: str, path: str) -> dict[str, object]:
    """The same call through ``SchneiderAsyncHook`` (what the triggerer runs)."""
    from airflow_provider_schneider.hooks.schneider_async import SchneiderAsyncHook

    hook = SchneiderAsyncHook()
    try:
        if op == "async_get":
            await hook.request("GET", path)
            return {}
        return {"records": len(await hook.get_records(path, records_field="orderList"))}
    finally:
        await hook.aclose()


def main() -> None:
    op = sys.argv[1]
    path = sys.argv[2] if len(sys.argv) > 2 else ORDERS
    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    if os.environ.get("HOSTILE_SHOW_SOURCE"):
        import airflow_provider_schneider

        print("provider from", airflow_provider_schneider.__file__, file=sys.stderr)
    hook = SchneiderHook()
    started = time.monotonic()
    result: dict[str, object] = {"outcome": "ok"}
    try:
        if op == "token":
            hook.get_token()
        elif op == "get":
            hook.request("GET", path)
        elif op == "pages":
            result["records"] = sum(1 for _ in hook.iter_records(path, records_field="orderList"))
        elif op in ("async_get", "async_pages"):
            result.update(asyncio.run(_async_call(op, path)))
        else:
            raise SystemExit(f"unknown op {op!r}")
    except Exception as exc:  # noqa: BLE001 - the outcome is what is measured
        result = {"outcome": "error", "error": type(exc).__name__, "message": str(exc)[:600]}
    result["elapsed"] = round(time.monotonic() - started, 2)
    print(RESULT_MARK + json.dumps(result), flush=True)
    os._exit(0)  # never wait at exit for threads a hostile server left stuck


if __name__ == "__main__":
    main()
