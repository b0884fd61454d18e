"""The Airflow environment of a run: configuration variables, connection, AIRFLOW_HOME with the DAGs."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

from schneider_e2e.options import (
    CACHE_DIR_ENV,
    CLIENT_ID,
    CLIENT_SECRET,
    HOSTS_BASE_ENV,
    HOSTS_ENV,
    REPO,
    SCRIPTS,
    BackfillSpec,
    Options,
)

#: ``[database] sql_alchemy_connect_args`` of every component: SQLite has one writer at a time, and clearing a
#: 30-run backfill while the scheduler writes can wait longer than sqlite3's default 5 s busy timeout.
SQLITE_CONNECT_ARGS: dict[str, Any] = {"timeout": 60}


def build_environment(opts: Options, home: Path, api_port: int, emulator_url: str) -> dict[str, str]:
    """A hermetic environment: nothing ``AIRFLOW*`` leaks in from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    from cryptography.fernet import Fernet

    hosts_mode = opts.hosts > 1
    executor = "schneider_e2e.executor.HostSplitLocalExecutor" if hosts_mode else "LocalExecutor"
    connection = {
        "conn_type": "schneider",
        "host": emulator_url,
        "login": CLIENT_ID,
        "password": CLIENT_SECRET,
        "extra": {
            "max_concurrency": opts.max_concurrency,
            "page_size": opts.page_size,
            "token_leeway": opts.token_leeway,
            "token_refresh_spread": opts.token_refresh_spread,
            "token_cache": opts.token_cache,
            **({} if opts.client_max_in_flight is None else {"client_max_in_flight": opts.client_max_in_flight}),
        },
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__PARALLELISM": str(opts.parallelism),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            # Airflow's own advice for a loaded machine: a task's first Execution API call (PATCH .../run) can
            # take over the 5 s default on a busy 2-core host, and its retry then meets "already running".
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "schneider_e2e.environment.SQLITE_CONNECT_ARGS",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            # Backfill and manual runs only: catchup of the catalog DAG (start_date 2026-10-01) stays out of it.
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "300",
            "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "300",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_SCHNEIDER_DEFAULT": json.dumps(connection),
            "AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE": f"file://{home}/schneider_data",
            CACHE_DIR_ENV: str(home / "token_cache"),
            "PYTHONPATH": os.pathsep.join(p for p in (str(SCRIPTS), env.get("PYTHONPATH")) if p),
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    if hosts_mode:
        env[HOSTS_ENV] = str(opts.hosts)
        env[HOSTS_BASE_ENV] = str(home / "hosts")
    return env


def prepare_home(home: Path, specs: list[BackfillSpec]) -> None:
    """Fresh AIRFLOW_HOME with a DAGs folder holding only the DAG files under test (fast parsing)."""
    (home / "dags").mkdir(parents=True)
    for spec in specs:
        shutil.copy2(REPO / "dags" / f"{spec.dag_id}.py", home / "dags" / f"{spec.dag_id}.py")
