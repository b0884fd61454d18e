"""End to end with a real scheduler: ``scripts/e2e_backfill.py`` run as a child process, its JSON judged here.

The script starts Airflow's scheduler (LocalExecutor, 4 slots), dag processor and API server on a fresh
AIRFLOW_HOME, backfills the example DAGs against the emulator (20 s tokens), checks and reruns them; see its
docstring. These tests take minutes: select them with ``-m e2e``, leave them out with ``-m "not e2e"``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]  # the checkout
SCRIPT = REPO / "scripts" / "e2e_backfill.py"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def _clean_env() -> dict[str, str]:
    """The caller's environment without the test session's AIRFLOW_* settings (the script makes its own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}


def _start(workdir: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    out = workdir.parent / f"{workdir.name}.out"
    with open(out, "wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--workdir", str(workdir), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_clean_env(),
            cwd=REPO,
        )
    return proc, out


def _finish(proc: subprocess.Popen[bytes], out: Path, timeout: float) -> tuple[dict[str, Any], str]:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the script stops everything it started, then reports
        proc.wait(120)
    text = out.read_text(errors="replace")
    lines = text.strip().splitlines()
    assert lines, "the script printed nothing"
    return json.loads(lines[-1]), text


def _processes_of(workdir: Path) -> list[str]:
    """Processes started by the run in ``workdir`` (emulator, Airflow components, tasks), from their environment."""
    marker = f"SCHNEIDER_E2E_WORKDIR={workdir}\0".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes():
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"{entry.name}: {cmdline[:120]}")
        except OSError:
            continue
    return found


def _failed(result: dict[str, Any]) -> list[str]:
    return [f"{c['name']}: {c['detail']}" for c in result["checks"] if not c["ok"]]


def test_backfill_with_real_scheduler_then_clear_and_rerun(tmp_path):
    workdir = tmp_path / "e2e"
    # The script's own deadline (780 s) comes before this test's (840 s): on a loaded machine the run is
    # slower, and its report then says which phase it was in instead of being killed without one.
    proc, out = _start(workdir, "--keep", "--timeout", "780")
    result, text = _finish(proc, out, timeout=840)

    assert result["ok"], f"{result['error']}\nfailed checks: {_failed(result)}\n{text[-4000:]}"
    assert proc.returncode == 0
    assert [p["name"] for p in result["phases"]] == ["backfill", "rerun"]
    for phase in result["phases"]:
        # 30 catalog delta intervals + 5 order status intervals, two tasks each, all on the first try.
        assert phase["dag_runs"] == phase["dag_runs_succeeded"] == 35
        assert phase["task_runs"] == 70
        assert phase["output_files"] == 35
        # Tokens: renewed during the run, never more than one per usable lifetime, far below one per pull.
        assert 2 <= phase["token_requests"] <= phase["ideal_token_requests"]
        assert phase["token_requests"] < phase["per_task_token_requests"] == 35
        assert 0 < phase["peak_concurrency"] <= phase["concurrency_cap"] <= 10
    checks = {c["name"]: c for c in result["checks"]}
    assert checks["rerun: outputs identical (sha256)"]["ok"]
    assert checks["secrets scan"]["ok"], checks["secrets scan"]["detail"]
    assert "0 hits" in checks["secrets scan"]["detail"]
    assert _processes_of(workdir) == []


def test_sigterm_mid_backfill_stops_every_process(tmp_path):
    """Killed while the scheduler runs tasks, the script still stops its components and reports the failure."""
    workdir = tmp_path / "e2e-interrupted"
    proc, out = _start(workdir, "--no-rerun")
    scheduler_log = workdir / "scheduler.log"
    deadline = time.monotonic() + 300
    while not scheduler_log.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert scheduler_log.exists(), out.read_text(errors="replace")[-3000:]
    assert _processes_of(workdir), "the components should be running at this point"

    proc.send_signal(signal.SIGTERM)
    result, text = _finish(proc, out, timeout=120)

    assert proc.returncode == 1
    assert result["ok"] is False
    assert "interrupted" in (result["error"] or ""), text[-3000:]
    assert _processes_of(workdir) == []
