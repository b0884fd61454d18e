#!/usr/bin/env python
"""End to end with a real scheduler: backfill the example DAGs against the emulator, check everything, rerun.

On a fresh temporary ``AIRFLOW_HOME`` this migrates a SQLite metadata DB, starts the emulator with a short
token lifetime (20 s) and some latency, parses and unpauses the example DAGs, creates backfills with
``airflow backfill create`` (30 Product Catalog delta intervals, 5 Order Status intervals), starts Airflow's
API server, dag processor and scheduler (LocalExecutor, 4 task slots), waits, and checks:

- every DAG run and task succeeded on its first try; one output file per data interval; the records equal
  the emulator's data for that interval (computed independently with ``emulator.data``), no duplicates;
- token requests counted by the emulator: renewed during the run, at most the ideal
  ``ceil(task span / (lifetime - leeway))``, far below one per pulling task run, never two at once;
- peak concurrent API calls at the emulator <= ``parallelism * max_concurrency`` (and Schneider's 10);
- then "clear and rerun" (``airflow tasks clear`` over the backfilled range, scheduler running): the same
  checks again, and every output file byte-identical (sha256) to the first run's;
- no secret (client secret, every issued token, Basic header, api key) in any file the run left: task
  logs, component output, outputs, metadata DB, token cache.

It prints a table and, as its last line, one JSON object; exit status 0 only when every check passed.
Every process it starts runs in its own process group and is stopped on success, failure, timeout, Ctrl-C
and SIGTERM. ``--hosts 2`` splits the executor's worker processes over two simulated hosts with separate
token file caches (see docs/backfills.md). Run it with the project's venv::

    .venv/bin/python scripts/e2e_backfill.py
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import hashlib
import itertools
import json
import math
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent
CACHE_DIR_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_TOKEN_CACHE_DIR"
HOSTS_ENV = "SCHNEIDER_E2E_HOSTS"
HOSTS_BASE_ENV = "SCHNEIDER_E2E_HOSTS_BASE"
WORKDIR_ENV = "SCHNEIDER_E2E_WORKDIR"
CLIENT_ID, CLIENT_SECRET, API_KEY = "demo-client", "demo-secret", "demo-api-key"
SEED, COUNTRY = 42, "FR"
MAX_LEEWAY_SHARE = 0.25  # as airflow_provider_schneider.auth: a leeway never eats more than a quarter of a token
SCHNEIDER_CONCURRENCY_LIMIT = 10
#: ``[database] sql_alchemy_connect_args`` of every component: SQLite has one writer at a time, and clearing a
#: 30-run backfill while the scheduler writes can wait longer than sqlite3's default 5 s busy timeout.
SQLITE_CONNECT_ARGS: dict[str, Any] = {"timeout": 60}


class E2EError(RuntimeError):
    """The run could not complete (a component died, a command failed, a timeout)."""


# ------------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class BackfillSpec:
    """One ``airflow backfill create`` of a daily DAG: ``days`` logical dates from ``start``."""

    dag_id: str
    pull_task: str
    start: dt.date
    days: int

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)

    @property
    def logical_dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range(self.days)]


@dataclass
class Options:
    workdir: Path
    catalog: BackfillSpec
    orders: BackfillSpec
    parallelism: int
    max_concurrency: int
    page_size: int
    token_lifetime: int
    token_leeway: float
    token_refresh_spread: float
    latency_ms: float
    token_latency_ms: float
    today: dt.date
    delta_semantics: str
    hosts: int
    token_cache: str
    timeout: float
    rerun: bool

    @property
    def effective_leeway(self) -> float:
        """The earliest a process may renew before expiry: capped leeway, stretched by the full spread."""
        return min(self.token_leeway, self.token_lifetime * MAX_LEEWAY_SHARE) * (1 + self.token_refresh_spread)

    @property
    def concurrency_cap(self) -> int:
        return self.parallelism * self.max_concurrency


# ------------------------------------------------------------------------------------------------ processes


class Processes:
    """Long-running components, each in its own process group; ``stop_all`` always reaps every one."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []

    def start(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.started.append((name, proc, log_path))
        return proc

    def check_alive(self) -> None:
        for name, proc, log_path in self.started:
            if proc.poll() is not None:
                raise E2EError(f"{name} exited with status {proc.returncode}; last lines:\n{tail(log_path)}")

    def stop_all(self, grace: float = 20.0) -> None:
        for _name, proc, _log in reversed(self.started):
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for _name, proc, _log in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for _name, proc, _log in self.started:
            _signal_group(proc, signal.SIGKILL)  # stragglers of the group (task processes, api workers)
            if proc.poll() is None:
                proc.wait()
        self.started.clear()


def _marked_pids(workdir: Path) -> list[int]:
    """Processes of this run found by the marker in their environment: also those that left our process
    groups (executor workers and task supervisors may start sessions of their own)."""
    marker = f"{WORKDIR_ENV}={workdir}\0".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
    return pids


def _kill_marked(workdir: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (pids := _marked_pids(workdir)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def airflow_cli(args: list[str], env: dict[str, str], timeout: float = 180) -> str:
    """Run ``airflow ARGS`` to completion in its own process group; its output, or E2EError on failure."""
    cmd = [sys.executable, "-m", "airflow", *args]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except BaseException:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        raise
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise E2EError(f"airflow {' '.join(args)} failed ({proc.returncode}):\n{text[-3000:]}")
    return text


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=3) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


# ------------------------------------------------------------------------------------------------ metadata


class MetadataDb:
    """Read-only look at the SQLite metadata DB (WAL mode, so reading never blocks the components)."""

    def __init__(self, path: Path):
        self.uri = f"file:{path}?mode=ro"

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        con = sqlite3.connect(self.uri, uri=True, timeout=30)
        con.row_factory = sqlite3.Row
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def latest_backfill(self, dag_id: str) -> sqlite3.Row | None:
        found = self.rows("SELECT id, completed_at FROM backfill WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,))
        return found[0] if found else None

    def runs(self, backfill_id: int) -> list[sqlite3.Row]:
        return self.rows(
            "SELECT run_id, state, logical_date, data_interval_start, data_interval_end FROM dag_run "
            "WHERE backfill_id = ?",
            (backfill_id,),
        )

    def task_instances(self, backfill_id: int) -> list[sqlite3.Row]:
        return self.rows(
            "SELECT ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.state, ti.try_number, ti.start_date, "
            "ti.end_date FROM task_instance ti JOIN dag_run dr "
            "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id WHERE dr.backfill_id = ?",
            (backfill_id,),
        )


def parse_db_time(value: str | None) -> float | None:
    """Epoch seconds of a UTC timestamp as Airflow stores it in SQLite."""
    if not value:
        return None
    stamp = dt.datetime.fromisoformat(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


# ------------------------------------------------------------------------------------------------ environment


def build_environment(opts: Options, home: Path, api_port: int, emulator_url: str) -> dict[str, str]:
    """A hermetic environment: nothing ``AIRFLOW*`` leaks in from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    from cryptography.fernet import Fernet

    hosts_mode = opts.hosts > 1
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
        },
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "e2e_backfill.HostSplitLocalExecutor" if hosts_mode else "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(opts.parallelism),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS": "e2e_backfill.SQLITE_CONNECT_ARGS",
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


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, procs: Processes, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        procs.check_alive()
        if time.monotonic() > deadline:
            raise E2EError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


# ------------------------------------------------------------------------------------------------ expectations


def expected_records(
    opts: Options, spec: BackfillSpec, interval: tuple[dt.date, dt.date], emulator_config: dict[str, Any]
) -> list[Any]:
    """What the emulator serves for one data interval, computed independently with ``emulator.data``.

    Catalog delta: the changes dated inside ``[start, end)`` (the API serves ``date-of-reference`` onwards,
    up to ``today`` or only that day, by ``delta_semantics``; the DAG bounds it by the interval end).
    Order Status: every order of the country, a snapshot.
    """
    from airflow_provider_schneider.emulator import data

    seed, products = int(emulator_config["seed"]), int(emulator_config["products"])
    start, end = interval
    if spec.pull_task == "pull_catalog_delta":
        if start > opts.today:
            return []
        served = data.delta(seed, start, start if opts.delta_semantics == "on" else opts.today, "all", products)
        return [change for change in served if str(change["changeDate"]) < end.isoformat()]
    orders = int(emulator_config["orders_per_country"])
    return [data.order(seed, COUNTRY, i) for i in range(orders)]


def record_key(spec: BackfillSpec, record: dict[str, Any]) -> str:
    if spec.pull_task == "pull_catalog_delta":
        return f"{record.get('commercialReference')}|{record.get('changeDate')}|{record.get('changeType')}"
    return str(record.get("orderNumber"))


def run_interval(run: sqlite3.Row) -> tuple[dt.datetime, dt.datetime]:
    return dt.datetime.fromisoformat(run["data_interval_start"]), dt.datetime.fromisoformat(run["data_interval_end"])


def interval_stem(run: sqlite3.Row) -> str:
    """The operator's default output name for a run's data interval (operators/base.py ``interval_key``).

    Without a compression suffix: the example DAGs may write ``.jsonl`` or ``.jsonl.gz``.
    """
    start, end = run_interval(run)
    return f"{start:%Y%m%dT%H%M%S}__{end:%Y%m%dT%H%M%S}.jsonl"


def read_records(path: Path) -> list[Any]:
    import gzip

    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------ one phase


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class PhaseResult:
    name: str
    wall_s: float = 0.0
    task_span_s: float = 0.0
    dag_runs: int = 0
    dag_runs_succeeded: int = 0
    task_runs: int = 0
    pull_task_runs: int = 0
    tries: list[int] = field(default_factory=list)
    token_requests: int = 0
    min_token_gap_s: float | None = None
    overlapping_token_requests: int = 0  # issued less than half a usable lifetime after the previous one
    ideal_token_requests: int = 0
    api_calls: int = 0
    unauthorized: int = 0
    peak_concurrency: int = 0
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    records: int = 0
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(f"{self.name}: {name}", bool(ok), detail))


class E2ERun:
    def __init__(self, opts: Options):
        self.opts = opts
        self.home = opts.workdir / "airflow_home"
        self.procs = Processes(opts.workdir)
        self.db = MetadataDb(self.home / "airflow.db")
        self.env: dict[str, str] = {}
        self.emulator: Any = None
        self.api_port = 0
        self.timings: dict[str, float] = {}
        self.phases: list[PhaseResult] = []
        self.checks: list[Check] = []
        self.specs = [opts.catalog, opts.orders]
        self.deadline = time.monotonic() + opts.timeout
        self.backfills: dict[str, int] = {}

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise E2EError(f"overall timeout of {self.opts.timeout:.0f} s reached")
        return left

    # -- start-up ---------------------------------------------------------------------------------------

    def start(self) -> None:
        from airflow_provider_schneider.emulator.client import EmulatorProcess

        t0 = time.monotonic()
        prepare_home(self.home, self.specs)
        self.emulator = EmulatorProcess(
            token_lifetime=self.opts.token_lifetime,
            latency_ms=self.opts.latency_ms,
            token_latency_ms=self.opts.token_latency_ms,
            seed=SEED,
        ).start()
        self.emulator.client.configure(today=self.opts.today.isoformat(), delta_semantics=self.opts.delta_semantics)
        self.api_port = free_port()
        self.env = build_environment(self.opts, self.home, self.api_port, self.emulator.url)
        airflow_cli(["db", "migrate"], self.env, timeout=min(300, self.remaining()))
        self.timings["migrate_s"] = time.monotonic() - t0

        t1 = time.monotonic()
        # Parse the DAG files once into the metadata DB (what the dag processor does on its first loop), so
        # the DAGs can be unpaused and backfilled before any component runs (see ``create_backfills``).
        airflow_cli(["dags", "reserialize"], self.env, timeout=min(180, self.remaining()))
        self._check_dags_parsed()
        pattern = "^(" + "|".join(spec.dag_id for spec in self.specs) + ")$"
        airflow_cli(["dags", "unpause", "--treat-dag-id-as-regex", "--yes", pattern], self.env)
        self.timings["parse_unpause_s"] = time.monotonic() - t1

    def _check_dags_parsed(self) -> None:
        errors = self.db.rows("SELECT filename, stacktrace FROM import_error")
        if errors:
            raise E2EError(f"DAG import error in {errors[0]['filename']}:\n{errors[0]['stacktrace']}")
        parsed = {row["dag_id"] for row in self.db.rows("SELECT DISTINCT dag_id FROM serialized_dag")}
        missing = [spec.dag_id for spec in self.specs if spec.dag_id not in parsed]
        if missing:
            raise E2EError(f"DAGs not found after parsing {self.home / 'dags'}: {missing}")

    def start_components(self) -> None:
        """API server (the tasks' execution API) first, then the dag processor and the scheduler."""
        airflow = [sys.executable, "-m", "airflow"]
        api = [*airflow, "api-server", "--port", str(self.api_port), "--workers", "1"]
        self.procs.start("api-server", api, self.env)
        health = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
        wait_for("the API server", lambda: http_ok(health), min(180, self.remaining()), self.procs)
        self.procs.start("dag-processor", [*airflow, "dag-processor"], self.env)
        self.procs.start("scheduler", [*airflow, "scheduler"], self.env)

    # -- a phase: create the backfills, wait, check ----------------------------------------------------

    def create_backfills(self) -> dict[str, int]:
        """``airflow backfill create`` per DAG, then the components start and the scheduler runs the backfills.

        The backfills are created while no component runs: on SQLite, Airflow 3.3 creates each backfill run
        in a SAVEPOINT, which fails at once with "database is locked" when another process commits in
        between (a snapshot conflict that no busy timeout waits out; every component commits a heartbeat
        every few seconds). PostgreSQL has no such limit. ``airflow tasks clear`` has no SAVEPOINT and
        works under load (the rerun phase uses it while the scheduler runs).
        """
        previous = {spec.dag_id: self.db.latest_backfill(spec.dag_id) for spec in self.specs}
        for spec in self.specs:
            args = ["backfill", "create", "--dag-id", spec.dag_id, "--from-date", spec.start.isoformat()]
            args += ["--to-date", spec.end.isoformat(), "--max-active-runs", str(2 * self.opts.parallelism)]
            airflow_cli(args, self.env, timeout=min(180, self.remaining()))
        for spec in self.specs:
            row = self.db.latest_backfill(spec.dag_id)
            before = previous[spec.dag_id]
            if row is None or (before is not None and row["id"] == before["id"]):
                raise E2EError(f"airflow backfill create made no backfill for {spec.dag_id}")
            self.backfills[spec.dag_id] = int(row["id"])
        self.start_components()
        return self.backfills

    def clear_backfills(self) -> dict[str, int]:
        """Clear and rerun: ``airflow tasks clear`` over each backfill's range while the scheduler runs."""
        for spec in self.specs:
            args = ["tasks", "clear", spec.dag_id, "--start-date", f"{spec.start}T00:00:00+00:00"]
            args += ["--end-date", f"{spec.end}T23:59:59+00:00", "--yes"]
            airflow_cli(args, self.env, timeout=min(180, self.remaining()))
        return self.backfills

    def run_phase(self, name: str, trigger: Callable[[], dict[str, int]], expected_try: int) -> PhaseResult:
        """Trigger the runs, wait for them, then check runs, outputs, tokens and concurrency."""
        result = PhaseResult(name)
        client = self.emulator.client
        client.reset_counters()
        started = time.time()
        backfills = trigger()
        wait_for("the backfills to finish", lambda: self._finished(backfills), self.remaining(), self.procs, 1.0)
        tis = [ti for bid in backfills.values() for ti in self.db.task_instances(bid)]
        runs = {dag_id: self.db.runs(bid) for dag_id, bid in backfills.items()}
        self._measure(result, tis, runs, client.stats(), started)
        self._check_runs(result, tis, runs, expected_try)
        self._check_outputs(result, runs, started, client.config())
        self._check_tokens(result)
        self.phases.append(result)
        return result

    @property
    def usable_lifetime(self) -> float:
        return self.opts.token_lifetime - self.opts.effective_leeway

    def _measure(
        self,
        result: PhaseResult,
        tis: list[sqlite3.Row],
        runs: dict[str, list[sqlite3.Row]],
        stats: dict[str, Any],
        started: float,
    ) -> None:
        starts = [t for t in (parse_db_time(ti["start_date"]) for ti in tis) if t is not None]
        ends = [t for t in (parse_db_time(ti["end_date"]) for ti in tis) if t is not None]
        last_end = max(ends, default=time.time())
        result.wall_s = last_end - started
        # Tokens are needed only while tasks run: the ideal counts usable token lifetimes over the span from
        # the first task start to the last task end (stricter than the phase's wall time, start-up included).
        result.task_span_s = last_end - min(starts, default=started)
        result.ideal_token_requests = math.ceil(result.task_span_s / self.usable_lifetime)
        result.dag_runs = sum(len(r) for r in runs.values())
        result.dag_runs_succeeded = sum(1 for r in runs.values() for run in r if run["state"] == "success")
        result.task_runs = len(tis)
        pull_tasks = {spec.pull_task for spec in self.specs}
        result.pull_task_runs = sum(1 for ti in tis if ti["task_id"] in pull_tasks)
        result.tries = sorted({int(ti["try_number"]) for ti in tis})
        result.token_requests = int(stats["token_requests"])
        issued_at = sorted(float(t) for t in stats.get("token_request_times", []))
        gaps = [b - a for a, b in itertools.pairwise(issued_at)]
        result.min_token_gap_s = min(gaps) if gaps else None
        result.overlapping_token_requests = sum(1 for gap in gaps if gap < self.usable_lifetime / 2)
        result.api_calls = int(stats["api_calls"])
        result.unauthorized = int(stats["unauthorized"])
        result.peak_concurrency = int(stats["peak_concurrency"])

    def _check_runs(
        self, result: PhaseResult, tis: list[sqlite3.Row], runs: dict[str, list[sqlite3.Row]], expected_try: int
    ) -> None:
        expected_runs = sum(spec.days for spec in self.specs)
        result.check(
            "DAG runs succeeded",
            result.dag_runs_succeeded == expected_runs == result.dag_runs,
            f"{result.dag_runs_succeeded}/{expected_runs}",
        )
        failed = [
            f"{ti['dag_id']}/{ti['run_id']}/{ti['task_id']}={ti['state']}" for ti in tis if ti["state"] != "success"
        ]
        result.check(
            "task runs succeeded",
            not failed and result.task_runs == 2 * expected_runs,
            f"{result.task_runs - len(failed)}/{2 * expected_runs}" + (f" failed: {failed[:5]}" if failed else ""),
        )
        result.check("each task ran once (no retry)", result.tries == [expected_try], f"try numbers {result.tries}")
        for spec in self.specs:
            got = sorted(run["logical_date"][:10] for run in runs[spec.dag_id])
            want = [d.isoformat() for d in spec.logical_dates]
            result.check(f"{spec.dag_id} logical dates", got == want, f"{len(got)} runs {want[0]} .. {want[-1]}")

    def _check_tokens(self, result: PhaseResult) -> None:
        usable = self.usable_lifetime
        result.check(
            "token requests <= ideal",
            0 < result.token_requests <= result.ideal_token_requests,
            f"{result.token_requests} <= ceil({result.task_span_s:.1f} s of tasks / {usable:g} s) "
            f"= {result.ideal_token_requests}",
        )
        result.check(
            "token renewed during the phase",
            result.token_requests >= 2,
            f"{result.token_requests} tokens over {result.task_span_s:.0f} s of {self.opts.token_lifetime} s tokens",
        )
        if self.opts.hosts == 1 and result.min_token_gap_s is not None:
            # One host: the file lock makes refreshes single flight, so no two requests come closer than the
            # usable lifetime (1 s of slack for the emulator's own timing). Across hosts only the Variable is
            # shared, without a lock: two hosts can then refresh at the same moment (see docs/backfills.md).
            result.check(
                "single flight: token requests >= lifetime - leeway apart",
                result.min_token_gap_s >= usable - 1.0,
                f"closest two {result.min_token_gap_s:.1f} s apart (usable lifetime {usable:g} s)",
            )
        result.check(
            "token requests < pulling task runs",
            result.token_requests < result.pull_task_runs,
            f"{result.token_requests} < {result.pull_task_runs}",
        )
        result.check("no 401 at the API", result.unauthorized == 0, f"{result.unauthorized} unauthorized")
        cap = min(self.opts.concurrency_cap, SCHNEIDER_CONCURRENCY_LIMIT)
        result.check(
            "peak concurrency <= cap",
            0 < result.peak_concurrency <= cap,
            f"{result.peak_concurrency} <= {cap} (parallelism {self.opts.parallelism} x max_concurrency "
            f"{self.opts.max_concurrency}, Schneider limit {SCHNEIDER_CONCURRENCY_LIMIT})",
        )

    def _finished(self, backfills: dict[str, int]) -> bool:
        done = True
        for dag_id, bid in backfills.items():
            spec = next(s for s in self.specs if s.dag_id == dag_id)
            runs = self.db.runs(bid)
            retrying = [ti for ti in self.db.task_instances(bid) if ti["state"] in ("up_for_retry", "failed")]
            if retrying:
                ti = retrying[0]
                raise E2EError(
                    f"task {ti['dag_id']}/{ti['run_id']}/{ti['task_id']} is {ti['state']}; its log is under "
                    f"{self.home / 'logs' / ('dag_id=' + ti['dag_id']) / ('run_id=' + ti['run_id'])}"
                )
            if len(runs) < spec.days or any(run["state"] not in ("success", "failed") for run in runs):
                done = False
        return done

    def _check_outputs(
        self, result: PhaseResult, runs: dict[str, list[sqlite3.Row]], started: float, emulator_config: dict[str, Any]
    ) -> None:
        for spec in self.specs:
            folder = self.home / "schneider_data" / spec.dag_id / spec.pull_task
            present = {p.name: p for p in folder.iterdir()} if folder.is_dir() else {}
            wanted: dict[str, tuple[dt.date, dt.date]] = {}
            for run in runs[spec.dag_id]:
                start, end = run_interval(run)
                wanted[interval_stem(run)] = (start.date(), end.date())
            files = {stem: present.get(stem) or present.get(stem + ".gz") for stem in wanted}
            found = {stem: path for stem, path in files.items() if path is not None}
            extra = sorted(set(present) - {path.name for path in found.values()})
            missing = sorted(stem for stem in wanted if stem not in found)
            result.check(
                f"{spec.dag_id} one file per interval",
                bool(wanted) and not extra and not missing,
                f"{len(found)}/{len(wanted)} files"
                + (f", extra {extra[:3]}" if extra else "")
                + (f", missing {missing[:3]}" if missing else ""),
            )
            mismatched, stale, duplicates, records = [], [], [], 0
            seen_across: dict[str, str] = {}
            for stem, path in sorted(found.items()):
                rows = read_records(path)
                records += len(rows)
                if rows != expected_records(self.opts, spec, wanted[stem], emulator_config):
                    mismatched.append(path.name)
                keys = [record_key(spec, r) for r in rows]
                if len(keys) != len(set(keys)):
                    duplicates.append(path.name)
                if spec.pull_task == "pull_catalog_delta":
                    for key in keys:  # a change belongs to exactly one interval
                        if key in seen_across:
                            duplicates.append(f"{key} in {seen_across[key]} and {path.name}")
                        seen_across[key] = path.name
                if path.stat().st_mtime < started:
                    stale.append(path.name)
                result.files[str(path.relative_to(self.home))] = sha256(path)
            result.records += records
            compared = len(found)
            complete = bool(wanted) and compared == len(wanted)
            result.check(
                f"{spec.dag_id} records match the emulator",
                complete and not mismatched,
                f"{records} records in {compared} files" + (f", mismatched {mismatched[:3]}" if mismatched else ""),
            )
            result.check(
                f"{spec.dag_id} no duplicates",
                complete and not duplicates,
                f"{duplicates[:3]}" if duplicates else "none",
            )
            result.check(
                f"{spec.dag_id} files written in this phase",
                complete and not stale,
                f"{len(stale)} older than the phase" if stale else "all written after the phase started",
            )

    # -- secrets ---------------------------------------------------------------------------------------

    def secrets_scan(self, tokens: list[str]) -> Check:
        """Every file the run left (task logs, component output, outputs, DB, cache) against every secret."""
        basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        needles = {"client secret": CLIENT_SECRET, "Basic header": basic, "api key": API_KEY}
        needles.update({f"token {i + 1}": token for i, token in enumerate(tokens)})
        encoded = {label: value.encode() for label, value in needles.items()}
        files = {p for p in self.opts.workdir.rglob("*") if p.is_file() and p.suffix != ".py"}
        hits: list[str] = []
        task_logs = 0
        for path in sorted(files):
            if "logs" in path.relative_to(self.opts.workdir).parts and "dag_id=" in str(path):
                task_logs += 1
            blob = path.read_bytes()
            hits += [f"{label} in {path.relative_to(self.opts.workdir)}" for label, v in encoded.items() if v in blob]
        detail = f"{len(files)} files ({task_logs} task logs), {len(tokens)} issued tokens + 3 secrets: "
        return Check(
            "secrets scan",
            not hits and task_logs > 0 and bool(tokens),
            detail + (f"{len(hits)} hits {hits[:5]}" if hits else "0 hits"),
        )

    # -- the whole run ---------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self.start()
            t = time.monotonic()
            first = self.run_phase("backfill", self.create_backfills, expected_try=1)
            self.timings["backfill_s"] = time.monotonic() - t
            if self.opts.rerun:
                t = time.monotonic()
                second = self.run_phase("rerun", self.clear_backfills, expected_try=2)
                self.timings["rerun_s"] = time.monotonic() - t
                changed = sorted(k for k in first.files if second.files.get(k) != first.files[k])
                self.checks.append(
                    Check(
                        "rerun: outputs identical (sha256)",
                        not changed and first.files.keys() == second.files.keys(),
                        f"{len(first.files) - len(changed)}/{len(first.files)} files identical"
                        + (f", changed {changed[:3]}" if changed else ""),
                    )
                )
            tokens = self.emulator.client.issued_tokens()
        finally:
            self.stop()
        self.checks.append(self.secrets_scan(tokens))  # after the stop: every log is complete

    def stop(self) -> None:
        """Stop everything; a second Ctrl-C or SIGTERM meanwhile cannot cut the clean-up short."""
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.procs.stop_all()
            if self.emulator is not None:
                self.emulator.stop()
            _kill_marked(self.opts.workdir)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def all_checks(self) -> list[Check]:
        return [c for phase in self.phases for c in phase.checks] + self.checks


# ------------------------------------------------------------------------------------------------ report


def summary(run: E2ERun, total_s: float, error: str | None) -> dict[str, Any]:
    opts = run.opts
    checks = run.all_checks()
    return {
        "ok": error is None and bool(checks) and all(c.ok for c in checks),
        "error": error,
        "duration_s": round(total_s, 1),
        "timings_s": {k: round(v, 1) for k, v in run.timings.items()},
        "config": {
            "executor": "LocalExecutor" + (f" split over {opts.hosts} hosts" if opts.hosts > 1 else ""),
            "parallelism": opts.parallelism,
            "max_concurrency": opts.max_concurrency,
            "token_lifetime_s": opts.token_lifetime,
            "effective_leeway_s": opts.effective_leeway,
            "token_cache": opts.token_cache,
            "latency_ms": opts.latency_ms,
            "token_latency_ms": opts.token_latency_ms,
            "delta_semantics": opts.delta_semantics,
            "today": opts.today.isoformat(),
            "backfills": {s.dag_id: [s.start.isoformat(), s.end.isoformat(), s.days] for s in run.specs},
        },
        "phases": [
            {
                "name": p.name,
                "wall_s": round(p.wall_s, 1),
                "task_span_s": round(p.task_span_s, 1),
                "dag_runs": p.dag_runs,
                "dag_runs_succeeded": p.dag_runs_succeeded,
                "task_runs": p.task_runs,
                "pull_task_runs": p.pull_task_runs,
                "try_numbers": p.tries,
                "token_requests": p.token_requests,
                "min_token_gap_s": None if p.min_token_gap_s is None else round(p.min_token_gap_s, 1),
                "overlapping_token_requests": p.overlapping_token_requests,
                "ideal_token_requests": p.ideal_token_requests,
                "per_task_token_requests": p.pull_task_runs,
                "api_calls": p.api_calls,
                "unauthorized": p.unauthorized,
                "peak_concurrency": p.peak_concurrency,
                "concurrency_cap": min(opts.concurrency_cap, SCHNEIDER_CONCURRENCY_LIMIT),
                "output_files": len(p.files),
                "records": p.records,
            }
            for p in run.phases
        ],
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "workdir": str(opts.workdir),
    }


def print_table(result: dict[str, Any]) -> None:
    cfg = result["config"]
    print()
    print(
        f"Schneider provider end to end: {cfg['executor']}, parallelism {cfg['parallelism']}, "
        f"max_concurrency {cfg['max_concurrency']}, token lifetime {cfg['token_lifetime_s']} s "
        f"(leeway {cfg['effective_leeway_s']:g} s), token cache {cfg['token_cache']}, "
        f"emulator latency {cfg['latency_ms']:g} ms (token {cfg['token_latency_ms']:g} ms)"
    )
    for dag_id, (start, end, days) in cfg["backfills"].items():
        print(f"  backfill {dag_id}: {start} .. {end} ({days} intervals)")
    header = (
        "phase",
        "wall s",
        "task span s",
        "DAG runs ok",
        "task runs",
        "token requests",
        "ideal",
        "per-task",
        "overlapping",
    )
    header += ("api calls", "peak/cap")
    rows = [
        (
            p["name"],
            p["wall_s"],
            p["task_span_s"],
            f"{p['dag_runs_succeeded']}/{p['dag_runs']}",
            p["task_runs"],
            p["token_requests"],
            p["ideal_token_requests"],
            p["per_task_token_requests"],
            p["overlapping_token_requests"],
            p["api_calls"],
            f"{p['peak_concurrency']}/{p['concurrency_cap']}",
        )
        for p in result["phases"]
    ]
    widths = [max(len(str(v)) for v in column) for column in zip(header, *rows, strict=True)]
    print()
    for row in (header, *rows):
        print("  " + " | ".join(f"{v!s:>{w}}" for v, w in zip(row, widths, strict=True)))
    print()
    for check in result["checks"]:
        print(f"  [{'PASS' if check['ok'] else 'FAIL'}] {check['name']}: {check['detail']}")
    timings = ", ".join(f"{k[:-2]} {v} s" for k, v in result["timings_s"].items())
    print()
    print(
        f"duration {result['duration_s']} s ({timings}); {'OK' if result['ok'] else 'FAILED'}"
        + (f": {result['error']}" if result["error"] else "")
    )


# ------------------------------------------------------------------------------------------------ executor


def __getattr__(name: str) -> Any:
    """``e2e_backfill.HostSplitLocalExecutor`` for ``--hosts N``, built on first use (this module stays light)."""
    if name != "HostSplitLocalExecutor":
        raise AttributeError(name)
    from airflow.executors.local_executor import LocalExecutor

    class HostSplitLocalExecutor(LocalExecutor):
        """LocalExecutor whose worker processes stand for N hosts: each host has its own token file cache.

        Workers are forked, so the cache directory set in ``os.environ`` around the fork is what that
        worker's task processes see; process memory is per task anyway. Only the Airflow Variable tier is
        shared between "hosts", exactly as with Celery or Kubernetes workers.
        """

        _spawned = 0

        def _spawn_worker(self) -> None:
            hosts = int(os.environ.get(HOSTS_ENV, "2"))
            host_dir = Path(os.environ[HOSTS_BASE_ENV]) / f"host-{self._spawned % hosts}" / "token_cache"
            self._spawned += 1
            previous = os.environ.get(CACHE_DIR_ENV)
            os.environ[CACHE_DIR_ENV] = str(host_dir)
            try:
                super()._spawn_worker()
            finally:
                if previous is None:
                    os.environ.pop(CACHE_DIR_ENV, None)
                else:
                    os.environ[CACHE_DIR_ENV] = previous

    globals()[name] = HostSplitLocalExecutor
    return HostSplitLocalExecutor


# ------------------------------------------------------------------------------------------------ main


def parse_args(argv: list[str] | None) -> tuple[Options, bool]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--intervals", type=int, default=30, help="catalog delta intervals to backfill (>= 30)")
    p.add_argument("--catalog-start", default="2026-10-01", help="first logical date of the catalog backfill")
    p.add_argument("--order-intervals", type=int, default=5, help="order status intervals to backfill")
    p.add_argument("--order-start", default="2026-11-01", help="first logical date of the order status backfill")
    p.add_argument("--parallelism", type=int, default=4, help="LocalExecutor task slots")
    p.add_argument("--max-concurrency", type=int, default=2, help="connection max_concurrency (calls per task)")
    p.add_argument("--page-size", type=int, default=50, help="connection page_size (Order Status pages)")
    p.add_argument("--token-lifetime", type=int, default=20, help="emulator token lifetime, seconds")
    p.add_argument("--token-leeway", type=float, default=5.0, help="connection token_leeway, seconds")
    p.add_argument(
        "--token-refresh-spread", type=float, default=0.5, help="connection token_refresh_spread (share of leeway)"
    )
    p.add_argument("--latency-ms", type=float, default=150.0, help="emulator latency per API call")
    p.add_argument("--token-latency-ms", type=float, default=300.0, help="emulator latency per token request")
    p.add_argument("--today", default=None, help="pin the emulator's today (default: day after the catalog range)")
    p.add_argument("--delta-semantics", choices=("since", "on"), default="since", help="emulator delta semantics")
    p.add_argument("--hosts", type=int, default=1, help="split executor workers over N hosts (separate file caches)")
    p.add_argument("--token-cache", default="memory,file,variable", help="connection token_cache tiers")
    p.add_argument("--no-rerun", dest="rerun", action="store_false", help="skip the clear-and-rerun phase")
    p.add_argument("--timeout", type=float, default=600.0, help="overall timeout, seconds")
    p.add_argument("--workdir", type=Path, default=None, help="work directory (default: a new temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (always kept on failure)")
    a = p.parse_args(argv)
    catalog = BackfillSpec(
        "schneider_product_catalog_delta", "pull_catalog_delta", dt.date.fromisoformat(a.catalog_start), a.intervals
    )
    orders = BackfillSpec(
        "schneider_order_status_daily", "pull_orders", dt.date.fromisoformat(a.order_start), a.order_intervals
    )
    today = dt.date.fromisoformat(a.today) if a.today else catalog.end + dt.timedelta(days=1)
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="schneider-e2e-"))
    workdir.mkdir(parents=True, exist_ok=True)
    opts = Options(
        workdir=workdir,
        catalog=catalog,
        orders=orders,
        parallelism=a.parallelism,
        max_concurrency=a.max_concurrency,
        page_size=a.page_size,
        token_lifetime=a.token_lifetime,
        token_leeway=a.token_leeway,
        token_refresh_spread=a.token_refresh_spread,
        latency_ms=a.latency_ms,
        token_latency_ms=a.token_latency_ms,
        today=today,
        delta_semantics=a.delta_semantics,
        hosts=a.hosts,
        token_cache=a.token_cache,
        timeout=a.timeout,
        rerun=a.rerun,
    )
    return opts, a.keep


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so the ``finally`` blocks stop every process we started."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    opts, keep = parse_args(argv)
    # Inherited by every process started below (emulator included): lets anyone find leftovers of this run.
    os.environ[WORKDIR_ENV] = str(opts.workdir)
    run = E2ERun(opts)
    started = time.monotonic()
    error: str | None = None
    print(f"e2e: work directory {opts.workdir}", flush=True)
    try:
        with terminate_on_sigterm():
            run.run()
    except KeyboardInterrupt as exc:
        error = f"interrupted ({exc or 'Ctrl-C'})"
    except E2EError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - report any failure in the summary, after the clean-up ran
        import traceback

        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
    result = summary(run, time.monotonic() - started, error)
    print_table(result)
    if result["ok"] and not keep:
        shutil.rmtree(opts.workdir, ignore_errors=True)
        result["workdir"] = None
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
