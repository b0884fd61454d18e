"""Run example DAGs for real: ``airflow dags test`` in a separate process, output captured for assertions."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

SUMMARY_MARK = "SCHNEIDER_SUMMARY "


@dataclass
class DagRunResult:
    dag_id: str
    returncode: int
    output: str

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and "state=success" in self.output and "state=failed" not in self.output

    @property
    def summaries(self) -> list[Any]:
        """Every ``SCHNEIDER_SUMMARY {...}`` line the example DAGs print, parsed."""
        found = []
        for line in self.output.splitlines():
            if SUMMARY_MARK in line:
                found.append(ast.literal_eval(line.split(SUMMARY_MARK, 1)[1].strip()))
        return found


def run_dag(
    dag_id: str,
    logical_date: str | None = None,
    *,
    conf: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> DagRunResult:
    """``airflow dags test DAG_ID [DATE] [-c CONF]`` in a child process with this process's environment.

    The child is a real Airflow run on the session's SQLite metadata DB (see conftest.py).
    """
    cmd = [sys.executable, "-m", "airflow", "dags", "test", dag_id]
    if logical_date:
        cmd.append(logical_date)
    if conf:
        cmd += ["-c", json.dumps(conf)]
    child_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env, timeout=timeout)
    return DagRunResult(dag_id, proc.returncode, proc.stdout + proc.stderr)


def airflow_version() -> tuple[int, int]:
    """The installed Airflow's (major, minor): resume needs the task state store of 3.3."""
    from airflow import __version__

    major, minor = __version__.split(".")[:2]
    return int(major), int(minor)
