"""Helpers for the Asset, lineage and watermark tests: a private Airflow (own AIRFLOW_HOME and SQLite DB) with
a real scheduler + API server + LocalExecutor, and read-only looks into a metadata DB."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support.metadata import metadata_connection

REPO = Path(__file__).resolve().parents[2]  # the checkout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies, so no scheduler outlives a killed pytest."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def db_path_from_env(env: dict[str, str] | None = None) -> Path:
    conn = (env or os.environ)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert conn.startswith("sqlite:///"), conn
    return Path(conn[len("sqlite:///") :])


def rows(db: Path, sql: str, *params: Any) -> list[sqlite3.Row]:
    """A read-only query on a metadata DB (SQLite), rows addressable by column name."""
    with metadata_connection(db, read_only=True) as conn:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(sql, params))


def asset_events(db: Path, uri: str) -> list[dict[str, Any]]:
    """Events of one asset, oldest first, ``extra`` parsed."""
    found = rows(
        db,
        "SELECT e.id, e.extra, e.source_dag_id, e.source_task_id, e.source_run_id FROM asset_event e "
        "JOIN asset a ON a.id = e.asset_id WHERE a.uri = ? ORDER BY e.id",
        uri,
    )
    return [{**dict(r), "extra": json.loads(r["extra"] or "{}")} for r in found]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, on_timeout: Callable[[], str] = str) -> Any:
    """Poll until ``condition()`` is truthy (a readiness wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f}s\n{on_timeout()}")
        time.sleep(0.5)


class PrivateAirflow:
    """An AIRFLOW_HOME of its own (a scheduler must not see the test session's DB), DAGs from ``dags/``."""

    def __init__(self, home: Path, dags_folder: Path = REPO / "dags"):
        self.home = home
        self.db = home / "airflow.db"
        self.api_port = free_port()
        self.env = {
            **os.environ,  # the emulator connection (AIRFLOW_CONN_SCHNEIDER_DEFAULT) and output base
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.db}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.api_port}/execution/",
            # Airflow's own advice for a loaded machine: a task's first Execution API call (PATCH .../run) can
            # take over the 5 s default on a busy 2-core host, and its retry then meets "already running".
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        }
        home.mkdir(parents=True, exist_ok=True)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "airflow", *args]
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout, cwd=REPO)

    def must(self, *args: str) -> str:
        done = self.cli(*args)
        assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-3000:]}"
        return done.stdout + done.stderr

    @contextlib.contextmanager
    def running(self, *more: str) -> Iterator[Path]:
        """API server + scheduler (LocalExecutor) and ``more`` components (``"triggerer"``) until the block
        ends; yields the folder of their logs."""
        procs = []
        try:
            for name, args in (
                ("api-server", ["api-server", "--port", str(self.api_port), "--workers", "1"]),
                ("scheduler", ["scheduler", "--skip-serve-logs"]),
                *((component, [component]) for component in more),
            ):
                with open(self.home / f"{name}.out", "wb") as out:
                    procs.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "airflow", *args],
                            env=self.env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            start_new_session=True,  # own process group: stopping it stops its workers
                            preexec_fn=_die_with_parent,
                            cwd=REPO,
                        )
                    )
            yield self.home
        finally:
            for proc in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)

    def component_output(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(self.home.glob("*.out"))
        )
