"""One end-to-end run: start the emulator and Airflow, backfill, check, clear and rerun, stop everything."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from schneider_e2e.environment import build_environment, prepare_home
from schneider_e2e.measure import Check, PhaseResult, check_outputs, check_runs, check_tokens, measure, secrets_scan
from schneider_e2e.metadata import MetadataDb
from schneider_e2e.options import EMULATOR_PROFILE, SEED, WORKDIR_ENV, Options, parse_args
from schneider_e2e.report import print_table, summary
from schneider_e2e.services import (
    E2EError,
    Processes,
    airflow_cli,
    free_port,
    http_ok,
    kill_marked,
    terminate_on_sigterm,
    wait_for,
)


class E2ERun:
    """The LocalExecutor/SQLite run: one host (or ``--hosts N`` simulated ones), a scheduler, two backfills."""

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
            profile=EMULATOR_PROFILE,
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
        for attempt in range(3):
            api = [*airflow, "api-server", "--port", str(self.api_port), "--workers", "1"]
            proc = self.procs.start("api-server", api, self.env)
            health = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
            try:
                wait_for("the API server", lambda u=health: http_ok(u), min(180, self.remaining()), self.procs)
                break
            except E2EError:
                # The port was free when picked, but another process on the machine may take it before the
                # API server binds it: pick another one and start again (the scheduler is not running yet).
                if attempt == 2 or proc.poll() is None or "address already in use" not in str(self._api_log()):
                    raise
                self.procs.forget(proc)
                self.api_port = free_port()
                self.env = build_environment(self.opts, self.home, self.api_port, self.emulator.url)
        self.procs.start("dag-processor", [*airflow, "dag-processor"], self.env)
        self.procs.start("scheduler", [*airflow, "scheduler"], self.env)

    def _api_log(self) -> str:
        return (self.opts.workdir / "api-server.log").read_text(errors="replace").lower()

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
        measure(result, self.opts, self.specs, tis, runs, client.stats(), started)
        check_runs(result, self.specs, tis, runs, expected_try)
        check_outputs(result, self.opts, self.specs, self.home, runs, started, client.config())
        check_tokens(result, self.opts, single_flight_spacing=self.opts.hosts == 1)
        self.phases.append(result)
        return result

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
        self.checks.append(secrets_scan(self.opts.workdir, tokens))  # after the stop: every log is complete

    def stop(self) -> None:
        """Stop everything; a second Ctrl-C or SIGTERM meanwhile cannot cut the clean-up short."""
        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.procs.stop_all()
            if self.emulator is not None:
                self.emulator.stop()
            kill_marked(self.opts.workdir)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def all_checks(self) -> list[Check]:
        return [c for phase in self.phases for c in phase.checks] + self.checks


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
