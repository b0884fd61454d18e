"""Test set-up: a private AIRFLOW_HOME with a migrated SQLite DB, and the emulator in its own process.

Airflow reads its configuration at import time, so the environment is prepared here, before any test
module imports Airflow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SESSION_DIR = Path(tempfile.mkdtemp(prefix="schneider-tests-"))
AIRFLOW_HOME = SESSION_DIR / "airflow_home"

os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME}/airflow.db",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE": f"file://{SESSION_DIR}/data",
        "AIRFLOW_PROVIDER_SCHNEIDER_TOKEN_CACHE_DIR": str(SESSION_DIR / "token_cache"),
    }
)
os.environ.pop("AIRFLOW_CONN_SCHNEIDER_DEFAULT", None)

from airflow_provider_schneider.emulator.client import EmulatorClient, EmulatorProcess  # noqa: E402

#: Every test that talks to the emulator runs once per gateway dialect: the textbook one and the one
#: Apigee-style gateways speak (string-typed token answers, ``fault`` errors, throttles sent as 500).
EMULATOR_PROFILES = tuple(os.environ.get("SCHNEIDER_EMULATOR_PROFILES", "default,apigee").split(","))
CLIENT_ID = "demo-client"
CLIENT_SECRET = "demo-secret"
API_KEY = "demo-api-key"


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Migrate the metadata DB once per session (a real SQLite database, not a mock)."""
    AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, env=os.environ.copy()
    )
    return AIRFLOW_HOME


@pytest.fixture(scope="session")
def emulator_process():
    with EmulatorProcess() as process:
        yield process


@pytest.fixture(params=EMULATOR_PROFILES)
def emulator_profile(request) -> str:
    return request.param


def only_profile(name: str):
    """For a test of one dialect's knobs (e.g. the default profile's ``token_type_style``)."""

    def pin(test):
        return pytest.mark.parametrize("emulator_profile", [name])(pytest.mark.profile_pinned(test))

    return pin


TIERS = ("unit", "integration", "system")


def _expected_cost(item) -> int:
    if item.get_closest_marker("system"):
        return 0
    return 1 if {"airflow_db", "run_dag"} & set(getattr(item, "fixturenames", ())) else 2


def _longest_first(items: list) -> None:
    """Order the tests so every parallel worker starts on the long ones and none ends on a minute-long
    scheduler run started last: the system tier, then tests that run Airflow (a DB), then the rest (a stable
    sort: module order stays within). pytest-xdist's worksteal hands each worker a contiguous share first,
    so the sorted tests are dealt round-robin into one pile per worker and the piles laid end to end."""
    items.sort(key=_expected_cost)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        piles: list[list] = [[] for _ in range(workers)]
        for index, item in enumerate(items):
            piles[index % workers].append(item)
        items[:] = [item for pile in piles for item in pile]


def pytest_collection_modifyitems(config, items):
    """Markers by directory (``unit``, ``integration``, ``system``: ``-m unit`` is the inner loop), and one
    gateway dialect per test unless it is about the gateway.

    Every test that talks to the emulator is parametrized by dialect; only modules marked ``dialects`` (the
    hook, the HTTP client, the token endpoint, the fault matrix: what a gateway's shapes can break) run
    against every profile. The others speak the last of ``SCHNEIDER_EMULATOR_PROFILES`` (apigee on the latest
    Airflow, default on the lowest): what they test lies above the client, which the dialect tests cover.
    ``SCHNEIDER_DAG_PROFILES=all`` runs everything against every profile."""
    here = Path(__file__).parent
    for item in items:
        parts = Path(str(item.fspath)).resolve().relative_to(here).parts
        if parts and parts[0] in TIERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
    _longest_first(items)
    if os.environ.get("SCHNEIDER_DAG_PROFILES") == "all" or len(EMULATOR_PROFILES) < 2:
        return
    keep, drop = [], []
    for item in items:
        profile = getattr(getattr(item, "callspec", None), "params", {}).get("emulator_profile")
        every_dialect = item.get_closest_marker("dialects") is not None
        pinned = item.get_closest_marker("profile_pinned") is not None
        last = profile in (None, EMULATOR_PROFILES[-1])
        (keep if last or pinned or every_dialect else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def emulator(emulator_process, emulator_profile) -> EmulatorClient:
    """The emulator, reset to its startup state (counters, faults, tokens, knobs) for each test, speaking
    the dialect of ``emulator_profile``."""
    client = emulator_process.client
    client.reset()
    if emulator_profile != "default":
        client.configure(profile=emulator_profile)
    return client


def connection_json(url: str, **extra) -> str:
    """A connection as Airflow reads it from ``AIRFLOW_CONN_*`` (JSON form)."""
    login = extra.pop("login", CLIENT_ID)
    password = extra.pop("password", CLIENT_SECRET)
    return json.dumps({"conn_type": "schneider", "host": url, "login": login, "password": password, "extra": extra})


@pytest.fixture
def token_cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "token_cache"


@pytest.fixture
def schneider_conn(emulator, token_cache_dir, monkeypatch):
    """``schneider_default`` pointing at the emulator, with a private host token cache; returns a setter
    so a test can change extras (``schneider_conn(client_auth="body")``)."""
    from airflow_provider_schneider.process import STATE

    STATE.reset()

    def configure(conn_id: str = "schneider_default", **extra) -> str:
        extra.setdefault("token_cache_dir", str(token_cache_dir))
        value = connection_json(emulator.url, **extra)
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", value)
        return value

    configure()
    yield configure
    STATE.reset()


@pytest.fixture
def run_dag(airflow_db, schneider_conn):
    """Run a DAG from ``dags/`` with ``airflow dags test`` in a child process (see tests/support/dagrun.py)."""
    from tests.support.dagrun import run_dag as _run
    from tests.support.tokens import delete_token_variables

    # The emulator forgets its tokens at each reset; the cluster token tier in the session DB would not.
    delete_token_variables()
    yield _run
    delete_token_variables()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Repeat why the browser test was skipped in its own section above the short summary, hard to miss."""
    from tests.support.ui import UI_SKIP_PREFIX

    reasons: list[str] = []
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
        if UI_SKIP_PREFIX in reason:
            reason = reason[reason.index(UI_SKIP_PREFIX) :]
            if reason not in reasons:
                reasons.append(reason)
    if reasons:
        terminalreporter.write_sep("=", "browser test skipped", yellow=True, bold=True)
        for reason in reasons:
            terminalreporter.write_line(reason, yellow=True, bold=True)
