"""A real Airflow 3 API server (UI included) for browser tests: fresh AIRFLOW_HOME, own SQLite DB, loopback port.

SimpleAuthManager with every user an admin (no login page), and ``[core] test_connection = Enabled`` so
the connection form shows a working "Test" button.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
#: Starts the reason of a skipped browser test; tests/conftest.py repeats such reasons in pytest's summary.
UI_SKIP_PREFIX = "UI connection-form test SKIPPED"
CHROMIUM_MISSING = f"{UI_SKIP_PREFIX}: {CHROMIUM_CANDIDATES[0]} not found (apt-get install chromium)"
PLAYWRIGHT_MISSING = f"{UI_SKIP_PREFIX}: Playwright not installed (pip install --group dev, or pip install playwright)"


class UiTestSkippedWarning(UserWarning):
    """The browser test could not run here (no Chromium or no Playwright): said out loud, not only skipped."""


def chromium_path() -> str | None:
    """The system Chromium (Debian package ``chromium``), or None."""
    for candidate in (os.environ.get("SCHNEIDER_TEST_CHROMIUM"), *CHROMIUM_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("chromium")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, so no API server outlives a killed pytest."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def airflow_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's environment pointed at a private AIRFLOW_HOME, test connection enabled."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            **extra,
        }
    )
    return env


def airflow(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


class ApiServer:
    """``airflow api-server`` on a free loopback port; ``url`` once it answers, stopped on exit."""

    def __init__(self, home: Path, startup_timeout: float = 90.0):
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = airflow_env(home)
        self.startup_timeout = startup_timeout
        self.log_path = home / "api-server.log"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ApiServer:
        (self.home / "dags").mkdir(parents=True, exist_ok=True)
        migrated = airflow(self.env, "db", "migrate")
        if migrated.returncode != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{migrated.stderr[-3000:]}")
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "airflow", "api-server", "-H", "127.0.0.1", "-p", str(self.port), "-w", "1"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopping it stops its uvicorn workers too
            preexec_fn=_die_with_parent,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"airflow api-server exited early:\n{self.log()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        self.__exit__(None, None, None)
        raise RuntimeError(f"airflow api-server not ready after {self.startup_timeout:.0f}s:\n{self.log()[-3000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __exit__(self, *exc: object) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
