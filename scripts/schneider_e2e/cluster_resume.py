"""The cluster run's resume phase: a paged pull to S3 whose first try fails at page k, retried by the
scheduler on whichever worker Celery picks; the retry must fetch only page 1 and the pages after the ones
its failed try staged, and write an object byte-identical to an uninterrupted pull.

DAG ``schneider_cluster_resume``: one Order Status pull (``retries=1``), ``s3://`` output, gzip. The emulator
fails page k once (HTTP 500, the connection's retry budget set to one attempt by the task), so try 1 fails
there; the pages served per try come from the emulator's request log.
"""

from __future__ import annotations

import hashlib
import math
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from schneider_e2e.cluster_services import S3_CONN_ID
from schneider_e2e.measure import Check
from schneider_e2e.options import SEED
from schneider_e2e.services import E2EError, airflow_cli, wait_for

DAG_ID = "schneider_cluster_resume"
LOGICAL_DATE = "2026-11-05T00:00:00+00:00"
PREFIX = f"data/{DAG_ID}/pull_orders/"
ORDERS = 2_000
FAIL_AT = 31
PATH = "/v1/supply-chain/partner-order-status/orders/FR"

DAG_TEXT = f'''
import datetime as dt

import pendulum
from airflow.sdk import dag

from airflow_provider_schneider.operators import SchneiderOrderStatusOperator


@dag(dag_id="{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 11, 1, tz="UTC"), catchup=False)
def resume():
    SchneiderOrderStatusOperator(
        task_id="pull_orders",
        country="FR",
        retries=1,
        retry_delay=dt.timedelta(seconds=2),
        retry_max_attempts=1,
        compression="gzip",
        storage_conn_id="{S3_CONN_ID}",
        pool="schneider",
    )


resume()
'''


def install(dags: Path) -> None:
    (dags / f"{DAG_ID}.py").write_text(DAG_TEXT)


def _state(run: Any) -> str | None:
    rows = run.db.rows("SELECT state FROM dag_run WHERE dag_id = ?", (DAG_ID,))
    if rows and rows[0]["state"] == "failed":
        raise E2EError(f"{DAG_ID} failed")
    return rows[0]["state"] if rows else None


def run_phase(run: Any) -> list[Check]:
    """Trigger the DAG, wait for it, and check tries, pages per try, the object and the leftovers."""
    from airflow_provider_schneider.emulator import data
    from airflow_provider_schneider.outputs.writer import OutputSpec, RecordWriter

    t0 = time.monotonic()
    client = run.emulator.client
    client.reset_counters()
    client.configure(orders_per_country=ORDERS)
    client.add_fault(target="api", kind="status", status=500, times=1, match_query={"page": str(FAIL_AT)})
    airflow_cli(["dags", "unpause", "--yes", DAG_ID], run.env)
    airflow_cli(["dags", "trigger", DAG_ID, "--logical-date", LOGICAL_DATE], run.env)
    wait_for("the resume phase", lambda: _state(run) == "success", min(300, run.remaining()), run.alive, 1.0)
    run.timings["resume_s"] = time.monotonic() - t0

    checks: list[Check] = []
    tis = run.db.rows("SELECT try_number, state, hostname FROM task_instance WHERE dag_id = ?", (DAG_ID,))
    tries = [int(ti["try_number"]) for ti in tis]
    checks.append(Check("resume: the pull failed once and succeeded on its retry", tries == [2], f"tries {tries}"))

    log = client.request_log()  # pages answered, not a 401 replayed with a fresh token
    served = [int(r["page"]) for r in log if r["channel"] == "api" and r["path"] == PATH and r["outcome"] != "401"]
    firsts = [i for i, page in enumerate(served) if page == 1]
    pages = math.ceil(ORDERS / run.opts.page_size)
    step = math.ceil(pages / 20)  # a chunk is complete every 5 % of the pages
    staged = (FAIL_AT - 1) // step * step
    second = served[firsts[1] :] if len(firsts) > 1 else []
    # Page 1 (the totals), the last staged page again (proof that nothing moved), then the pages after it.
    wanted = sorted([1, *([staged] if staged > 1 else []), *range(staged + 1, pages + 1)])
    checks.append(
        Check(
            "resume: the retry fetched page 1, the boundary page and the pages after the staged ones",
            sorted(second) == wanted,  # pages after page 1 are fetched concurrently: any arrival order
            f"{pages} pages; try 1 served {len(served) - len(second)} (failed at {FAIL_AT}), try 2 served "
            f"{len(second)} (pages 1, {staged}, {staged + 1}-{pages}); a restart would serve {pages}",
        )
    )

    from schneider_e2e.cluster_checks import list_objects

    objects = {k: v for k, v in list_objects(run.s3_url).items() if k.startswith(f"data/{DAG_ID}/")}
    keys = [k for k in objects if k.startswith(PREFIX) and k.endswith(".jsonl.gz")]
    expected = [data.order(SEED, "FR", i) for i in range(ORDERS)]
    with tempfile.TemporaryDirectory() as tmp:
        with RecordWriter(OutputSpec(f"file://{tmp}/reference.jsonl", compression="gzip")) as writer:
            for record in expected:
                writer.write(record)
        reference = hashlib.sha256(Path(writer.manifest["uri"][len("file://") :]).read_bytes()).hexdigest()
    body = objects[keys[0]] if len(keys) == 1 else b""
    identical = hashlib.sha256(body).hexdigest() == reference
    checks.append(
        Check(
            "resume: the S3 object is byte-identical to an uninterrupted pull",
            identical and list(objects) == keys,
            f"{keys[0] if keys else 'no object'}: {len(body):,} bytes; {len(objects)} object(s) under the DAG's "
            "prefix (staged chunks removed)",
        )
    )

    files = sorted(run.workdir.rglob(f"dag_id={DAG_ID}/**/attempt=*.log"))
    logs = "".join(p.read_text(errors="replace") for p in files)
    said = re.search(r"Resume: pages 1-(\d+) staged", logs) and "are staged by an earlier try" in logs
    where = {p.name.removesuffix(".log"): next((h for h in run.hosts if h in p.parts), "?") for p in files}
    detail = ", ".join(f"{attempt} on {host}" for attempt, host in sorted(where.items()))
    checks.append(Check("resume: both tries said what they staged and resumed", bool(said), detail))
    return checks
