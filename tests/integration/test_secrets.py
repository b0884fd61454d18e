"""Secrets never leak: real DAG runs with DEBUG logging, then every place Airflow and the provider wrote to
is searched for the client secret, the Basic header value, every token the gateway issued and the API key.

Four runs of ``schneider_order_status_daily`` (OAuth and API-key mode, each once succeeding through
retried faults and once failing, since exceptions are where secrets usually leak). The secrets are random
per test (the emulator's credentials are rotated to them), so a hit cannot come from another test.
Searched: the captured output of every run (``airflow dags test`` writes the task logs there), every file
under ``AIRFLOW_HOME/logs``, the whole metadata database file (XCom, rendered template fields, Variables,
task instances ...), with the XCom manifests and rendered fields also read row by row, the output files,
and the token cache directory.
"""

from __future__ import annotations

import base64
import re
import secrets
from pathlib import Path

import pytest

from tests.conftest import AIRFLOW_HOME, CLIENT_ID, only_profile
from tests.support.assets import PrivateAirflow
from tests.support.faults import EMULATOR_KNOBS, FAST_RETRIES, on_page
from tests.support.metadata import metadata_connection

DAG_ID = "schneider_order_status_daily"
DB = AIRFLOW_HOME / "airflow.db"

#: ``airflow dags test`` runs the task with Airflow's *in-process* test supervisor, whose comms log every
#: message at DEBUG (``InProcessSupervisorComms.send``), including ``MaskSecret(value=...)``, the request
#: that asks Airflow to mask a value, as a pydantic model the masker does not look into. Airflow itself
#: sends one for the connection's password and one for its extra when a task fetches a connection
#: (``airflow/sdk/execution_time/context.py``, ``_get_connection``); the real supervisor logs these as
#: "(body omitted)" (``supervisor.py``, ``_handle_request``). The provider sends none in that harness
#: (``redaction._mask_in_airflow`` registers with the local masker there). So on these lines, and only
#: there, the client secret and the API key (Airflow's own values) are tolerated; a token or the Basic
#: value (the provider's) is a hit anywhere.
DAGS_TEST_MASK_REQUEST = re.compile(r"\[debug\s*\] Sending request\s.*\bmsg=MaskSecret\(")
AIRFLOWS_OWN = ("client secret", "API key")

RUNS = [
    # (mode, expected failure or None, faults)
    (
        "oauth",
        None,
        [
            on_page(2, kind="reset"),
            on_page(3, kind="status", status=401),
            on_page(4, kind="status", status=429, retry_after="0"),
        ],
    ),
    ("oauth", "SchneiderPermissionError", [on_page(5, kind="status", status=401, times=-1)]),
    ("apikey", None, [on_page(2, kind="reset"), on_page(3, kind="status", status=503)]),
    ("apikey", "SchneiderPermissionError", [on_page(2, kind="reset"), on_page(5, kind="status", status=403, times=-1)]),
]


def scan_text(text: str, needles: dict[str, str], where: str) -> list[str]:
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        upstream = DAGS_TEST_MASK_REQUEST.search(line) is not None
        hits += [
            f"{name} in {where}:{number}: {line[:200]}"
            for name, value in needles.items()
            if value in line and not (upstream and name in AIRFLOWS_OWN)
        ]
    return hits


def scan_bytes(data: bytes, needles: dict[str, str], where: str) -> list[str]:
    return [f"{name} in {where}" for name, value in needles.items() if value.encode() in data]


def files_under(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file()) if directory.exists() else []


def db_rows(sql: str) -> list[tuple]:
    with metadata_connection(DB, read_only=True) as db:
        return db.execute(sql, (DAG_ID,)).fetchall()


@pytest.mark.timeout(420)
def test_no_secret_anywhere_after_dag_runs_at_debug_level(emulator, run_dag, schneider_conn, token_cache_dir, tmp_path):
    client_secret = "cs-" + secrets.token_hex(16)
    api_key = "ak-" + secrets.token_hex(16)
    emulator.configure(**EMULATOR_KNOBS, client_secret=client_secret, api_key=api_key)
    out_dir = tmp_path / "out"
    env = {"AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG", "AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE": f"file://{out_dir}"}

    outputs = []
    for index, (mode, failure, faults) in enumerate(RUNS):
        emulator.clear_faults()
        for rule in faults:
            emulator.add_fault(**rule)
        if mode == "oauth":
            schneider_conn(password=client_secret, **{**FAST_RETRIES, "token_cache": "memory,file,variable"})
        else:
            schneider_conn(login=None, password=None, api_key=api_key, **FAST_RETRIES)
        result = run_dag(DAG_ID, f"2026-11-{20 + index:02d}", conf={"country": "FR"}, env=env)
        outputs.append(result.output)
        assert "[debug" in result.output and "urllib3.connectionpool" in result.output  # DEBUG really was on
        if failure is None:
            assert result.succeeded, result.output[-4000:]
        else:
            assert not result.succeeded and failure in result.output, result.output[-4000:]
        if mode == "apikey":
            assert "apikey=***" in result.output  # urllib3 printed the URL: redacted

    tokens = emulator.issued_tokens()
    assert len(tokens) >= 3  # first token, the one after the 401 refresh, and the ones of the failing run
    basic = base64.b64encode(f"{CLIENT_ID}:{client_secret}".encode()).decode()
    needles = {"client secret": client_secret, "Basic header": basic, "API key": api_key}
    needles |= {f"token #{n}": token for n, token in enumerate(tokens, 1)}

    hits: list[str] = []
    for number, output in enumerate(outputs, 1):
        hits += scan_text(output, needles, f"output of run {number}")
    log_files = files_under(AIRFLOW_HOME / "logs")
    for path in log_files:
        hits += scan_text(path.read_text(errors="replace"), needles, str(path))

    xcoms = db_rows("SELECT task_id, value FROM xcom WHERE dag_id = ?")
    rendered = db_rows("SELECT task_id, rendered_fields FROM rendered_task_instance_fields WHERE dag_id = ?")
    assert any(task == "pull_orders" and "sha256" in str(value) for task, value in xcoms)  # the manifests
    assert any(task == "pull_orders" for task, _ in rendered)
    for task, value in xcoms + rendered:
        hits += scan_text(str(value), needles, f"metadata DB row of {task}")
    for path in [DB, *DB.parent.glob("airflow.db-*")]:  # the whole database, WAL/journal included
        hits += scan_bytes(path.read_bytes(), needles, str(path))

    written = files_under(out_dir)
    assert len(written) == 2  # the two successful runs; the failed ones left nothing
    cached = files_under(token_cache_dir)
    assert cached  # the encrypted token cache was used
    for path in written + cached:
        hits += scan_bytes(path.read_bytes(), needles, str(path))

    assert hits == [], "\n".join(hits)
    print(
        f"scanned {len(outputs)} run outputs ({sum(map(len, outputs)) // 1024} KiB), {len(log_files)} log files, "
        f"{len(xcoms)} XCom and {len(rendered)} rendered-field rows, the metadata DB, {len(written)} outputs, "
        f"{len(cached)} token cache files for {len(needles)} secret values: 0 hits"
    )


#: Every example DAG, as a user would first run it: (dag id, logical date, conf).
EXAMPLE_RUNS = [
    ("schneider_order_status_daily", "2026-11-10", {"country": "FR"}),
    ("schneider_product_catalog_delta", "2026-11-05", None),
    ("schneider_stock_availability", "2026-11-05", {"products": 12, "chunk_size": 5}),
    ("schneider_token_probe", None, None),
    ("schneider_wait_for_order", None, {"country": "FR", "order_number": "FR00000002"}),
    ("schneider_catalog_consumer", None, None),
]


@only_profile("apigee")  # the dialect every example DAG failed against before (token_type 'BearerToken')
@pytest.mark.timeout(600)
def test_every_example_dag_succeeds_at_debug_against_an_apigee_gateway_and_leaks_nothing(
    emulator, run_dag, schneider_conn, token_cache_dir, tmp_path
):
    client_secret = "cs-" + secrets.token_hex(16)
    emulator.configure(client_secret=client_secret, today="2026-11-20", path_substitutions={"~2F": "/"})
    emulator.set_order_status("FR", "FR00000002", "Shipped")
    schneider_conn(password=client_secret, **{**FAST_RETRIES, "token_cache": "memory,file,variable"})
    # An Airflow of its own: "every file under AIRFLOW_HOME" is then exactly what these runs wrote.
    airflow = PrivateAirflow(tmp_path / "airflow")
    airflow.must("db", "migrate")
    home = airflow.home
    out_dir = tmp_path / "out"
    env = {
        **{k: airflow.env[k] for k in ("AIRFLOW_HOME", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")},
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
        "AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE": f"file://{out_dir}",
        "SCHNEIDER_EXAMPLE_POKE_INTERVAL": "0.5",
    }
    outputs = []
    for dag_id, logical_date, conf in EXAMPLE_RUNS:
        result = run_dag(dag_id, logical_date, conf=conf, env=env)
        outputs.append(result.output)
        assert result.succeeded, f"{dag_id}:\n{result.output[-4000:]}"
        assert "[debug" in result.output

    tokens = emulator.issued_tokens()
    assert tokens  # the apigee-shaped tokens were issued and used
    basic = base64.b64encode(f"{CLIENT_ID}:{client_secret}".encode()).decode()
    needles = {"client secret": client_secret, "Basic header": basic}
    needles |= {f"token #{n}": token for n, token in enumerate(tokens, 1)}
    hits: list[str] = []
    for (dag_id, _, _), output in zip(EXAMPLE_RUNS, outputs, strict=True):
        hits += scan_text(output, needles, f"output of {dag_id}")
    scanned = [p for p in files_under(home) if p.suffix != ".pyc"]
    assert home / "airflow.db" in scanned  # (airflow dags test writes its task logs to stdout: scanned above)
    for path in scanned:
        data = path.read_bytes()
        if path.suffix == ".log" or "/logs/" in str(path):
            hits += scan_text(data.decode(errors="replace"), needles, str(path))
        else:
            hits += scan_bytes(data, needles, str(path))
    for path in files_under(out_dir) + files_under(token_cache_dir):
        hits += scan_bytes(path.read_bytes(), needles, str(path))
    assert hits == [], "\n".join(hits)
    print(f"{len(EXAMPLE_RUNS)} example DAGs at DEBUG, {len(scanned)} files under their AIRFLOW_HOME: 0 hits")
