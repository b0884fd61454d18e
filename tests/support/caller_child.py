"""Child process of the call-governance tests: ``CALLS`` GETs through one ``SchneiderHook``, ``CONCURRENCY`` at
a time, once the file ``GO`` exists (so many children start together), then one JSON line.

    python tests/support/caller_child.py CALLS CONCURRENCY GO [PATH]

The connection comes from ``AIRFLOW_CONN_SCHNEIDER_DEFAULT``. Run as a script, like hostile_child.py."""

from __future__ import annotations

import json
import os
import sys
import time

RESULT_MARK = "CALLER_RESULT "
ORDERS = "/v1/supply-chain/partner-order-status/orders/FR"


def main() -> None:
    calls, concurrency, go = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    path = sys.argv[4] if len(sys.argv) > 4 else ORDERS
    from airflow_provider_schneider.client.concurrency import ordered_map
    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    hook = SchneiderHook()
    hook.get_conn()  # settings and session ready before the start line
    print("READY", flush=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.005)
    result: dict[str, object] = {"outcome": "ok"}
    try:
        pages = ordered_map(
            lambda n: hook.request("GET", path, params={"page": 1 + n % 3}), range(calls), concurrency=concurrency
        )
        result["answers"] = sum(1 for _ in pages)
    except Exception as exc:  # noqa: BLE001 - the outcome is what is measured
        result = {"outcome": "error", "error": type(exc).__name__, "message": str(exc)[:600]}
    print(RESULT_MARK + json.dumps(result), flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
