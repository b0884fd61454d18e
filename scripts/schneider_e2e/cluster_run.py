"""The cluster run: CeleryExecutor on PostgreSQL and Redis, three worker hosts, outputs on S3, five phases.

Phases (each starts from empty token caches and no token Variable, the workers restarted with its knobs):
``backfill`` (``airflow backfill create``), ``rerun`` (``airflow tasks clear``: identical objects), ``control``
(cross-host lease off), ``pod-per-task`` (lease on, a fresh token cache directory per task run); then
``resume`` (a paged pull whose first try fails at page k, resumed by its retry: see ``cluster_resume``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schneider_e2e import cluster_checks, cluster_resume
from schneider_e2e.cluster_dag import DAG_ID, POD_PER_TASK_ENV, POOL
from schneider_e2e.cluster_report import print_table, summary
from schneider_e2e.cluster_services import (
    Postgres,
    cluster_environment,
    ensure_debian_packages,
    start_redis,
    start_s3,
    worker_environment,
)
from schneider_e2e.measure import Check, PhaseResult, check_tokens, measure, secrets_scan
from schneider_e2e.metadata import PostgresMetadataDb
from schneider_e2e.options import EMULATOR_PROFILE, SEED, BackfillSpec, Options
from schneider_e2e.services import E2EError, Processes, airflow_cli, free_port, http_ok, kill_marked, wait_for

LEASE_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_TOKEN_CLUSTER_LEASE"
#: name, cross-host lease, pod per task, expected try number
PHASES = [("backfill", True, False, 1), ("rerun", True, False, 2), ("control", False, False, 3)]
PHASES += [("pod-per-task", True, True, 4)]


@dataclass
class ClusterOptions:
    base: Options
    workers: int
    worker_concurrency: int
    pool_slots: int
    phases: list[str]


class _All:
    """``check_alive`` over several process groups (for ``wait_for``)."""

    def __init__(self, *groups: Processes):
        self.groups = groups

    def check_alive(self) -> None:
        for group in self.groups:
            group.check_alive()


class ClusterRun:
    def __init__(self, copts: ClusterOptions):
        self.copts = copts
        self.opts = copts.base
        self.workdir = self.opts.workdir
        self.services = Processes(self.workdir)
        self.core = Processes(self.workdir)
        self.workers = Processes(self.workdir)
        self.alive = _All(self.services, self.core, self.workers)
        self.postgres: Postgres | None = None
        self.emulator: Any = None
        self.spec = BackfillSpec(DAG_ID, cluster_checks.PULL_TASK, self.opts.catalog.start, self.opts.catalog.days)
        self.hosts = {f"worker{i + 1}": self.workdir / "hosts" / f"worker{i + 1}" for i in range(copts.workers)}
        self.phases: list[PhaseResult] = []
        self.per_worker: dict[str, dict[str, dict[str, int]]] = {}
        self.extra: dict[str, dict[str, Any]] = {}
        self.checks: list[Check] = []
        self.timings: dict[str, float] = {}
        self.backfill_id = 0
        self.deadline = time.monotonic() + self.opts.timeout

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise E2EError(f"overall timeout of {self.opts.timeout:.0f} s reached")
        return left

    # -- start-up -----------------------------------------------------------------------------------------

    def start(self) -> None:
        from airflow_provider_schneider.emulator.client import EmulatorProcess

        t0 = time.monotonic()
        ensure_debian_packages()
        (self.workdir / "dags").mkdir(parents=True)
        shutil.copy2(Path(cluster_checks.__file__).with_name("cluster_dag.py"), self.workdir / "dags" / f"{DAG_ID}.py")
        cluster_resume.install(self.workdir / "dags")
        self.postgres = Postgres(self.services)
        self.postgres.start()
        broker = start_redis(self.services, self.workdir)
        self.s3_url = start_s3(self.services, sys.executable)
        self.emulator = EmulatorProcess(
            token_lifetime=self.opts.token_lifetime,
            latency_ms=self.opts.latency_ms,
            token_latency_ms=self.opts.token_latency_ms,
            seed=SEED,
            profile=EMULATOR_PROFILE,
        ).start()
        self.emulator.client.configure(today=self.opts.today.isoformat(), delta_semantics=self.opts.delta_semantics)
        self.api_port = free_port()
        extra = {
            "max_concurrency": self.opts.max_concurrency,
            "page_size": self.opts.page_size,
            "token_leeway": self.opts.token_leeway,
            "token_refresh_spread": self.opts.token_refresh_spread,
            "token_cache": self.opts.token_cache,
        }
        self.env = cluster_environment(
            workdir=self.workdir,
            db_url=self.postgres.url,
            broker_url=broker,
            s3_url=self.s3_url,
            emulator_url=self.emulator.url,
            api_port=self.api_port,
            extra=extra,
            parallelism=self.copts.workers * self.copts.worker_concurrency,
            worker_concurrency=self.copts.worker_concurrency,
        )
        self.db = PostgresMetadataDb(f"host=127.0.0.1 port={self.postgres.port} user=postgres dbname=airflow")
        self.timings["services_s"] = time.monotonic() - t0
        t1 = time.monotonic()
        airflow_cli(["db", "migrate"], self.env, timeout=min(300, self.remaining()))
        airflow_cli(["dags", "reserialize"], self.env, timeout=min(180, self.remaining()))
        cap = f"Schneider API: {self.copts.pool_slots} tasks x max_concurrency {self.opts.max_concurrency}"
        airflow_cli(["pools", "set", POOL, str(self.copts.pool_slots), cap], self.env)
        airflow_cli(["dags", "unpause", "--yes", DAG_ID], self.env)
        self.timings["migrate_s"] = time.monotonic() - t1
        t2 = time.monotonic()
        airflow = [sys.executable, "-m", "airflow"]
        self.core.start(
            "api-server", [*airflow, "api-server", "--port", str(self.api_port), "--workers", "1"], self.env
        )
        health = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
        wait_for("the API server", lambda: http_ok(health), min(180, self.remaining()), self.alive)
        for name in ("dag-processor", "scheduler", "triggerer"):
            self.core.start(name, [*airflow, name], self.env)
        self.timings["components_s"] = time.monotonic() - t2

    def start_workers(self, lease: bool, pod_per_task: bool) -> None:
        knobs = {LEASE_ENV: "on" if lease else "off", POD_PER_TASK_ENV: "1" if pod_per_task else "0"}
        for name, host_dir in self.hosts.items():
            env = worker_environment(self.env, host_dir, name, knobs)
            args = [sys.executable, "-m", "airflow", "celery", "worker", "-H", f"{name}@%h", "--skip-serve-logs"]
            args += ["--concurrency", str(self.copts.worker_concurrency)]
            self.workers.start(name, args, env)
        deadline = time.monotonic() + min(120, self.remaining())
        while not all(
            f"{name}@" in (self.workdir / f"{name}.log").read_text(errors="replace") and "ready" in self._log(name)
            for name in self.hosts
        ):
            self.alive.check_alive()
            if time.monotonic() > deadline:
                raise E2EError("the Celery workers did not become ready")
            time.sleep(0.5)

    def _log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def reset_token_state(self) -> None:
        """Each phase starts cold: no token in any host cache, no token or lease Variable."""
        for host_dir in self.hosts.values():
            for sub in ("token_cache", "pods"):
                shutil.rmtree(host_dir / sub, ignore_errors=True)
                (host_dir / sub).mkdir(parents=True, mode=0o700)
        self.db.rows("DELETE FROM variable WHERE key LIKE ?", ("schneider_token_%",))

    # -- phases -------------------------------------------------------------------------------------------

    def trigger(self, name: str) -> None:
        spec = self.spec
        if name == "backfill":
            args = ["backfill", "create", "--dag-id", DAG_ID, "--from-date", spec.start.isoformat()]
            args += ["--to-date", spec.end.isoformat(), "--max-active-runs", "16"]
            airflow_cli(args, self.env, timeout=min(180, self.remaining()))
            row = self.db.latest_backfill(DAG_ID)
            if row is None:
                raise E2EError("airflow backfill create made no backfill")
            self.backfill_id = int(row["id"])
        else:
            args = ["tasks", "clear", DAG_ID, "--start-date", f"{spec.start}T00:00:00+00:00"]
            args += ["--end-date", f"{spec.end}T23:59:59+00:00", "--yes"]
            airflow_cli(args, self.env, timeout=min(180, self.remaining()))

    def finished(self, expected_try: int) -> bool:
        if not self.backfill_id:
            return False
        tis = self.db.task_instances(self.backfill_id)
        failed = [ti for ti in tis if ti["state"] in ("failed", "up_for_retry", "upstream_failed")]
        if failed:
            ti = failed[0]
            raise E2EError(f"task {ti['run_id']}/{ti['task_id']}[{ti['map_index']}] is {ti['state']}")
        runs = self.db.runs(self.backfill_id)
        done = len(runs) == self.spec.days and all(run["state"] == "success" for run in runs)
        expected = self.spec.days * (len(cluster_checks.CHANGE_TYPES) + 1)
        return done and len(tis) == expected and all(int(ti["try_number"]) == expected_try for ti in tis)

    def run_phase(self, name: str, lease: bool, pod_per_task: bool, expected_try: int) -> PhaseResult:
        t0 = time.monotonic()
        self.workers.stop_all()
        self.reset_token_state()
        self.start_workers(lease, pod_per_task)
        result = PhaseResult(name)
        client = self.emulator.client
        client.reset_counters()
        started = time.time()
        self.trigger(name)
        wait_for(f"the {name} phase", lambda: self.finished(expected_try), self.remaining(), self.alive, 1.0)
        tis = self.db.task_instances(self.backfill_id)
        runs = self.db.runs(self.backfill_id)
        measure(result, self.opts, [self.spec], tis, {DAG_ID: runs}, client.stats(), started)
        result.check("DAG runs succeeded", result.dag_runs_succeeded == self.spec.days, f"{result.dag_runs_succeeded}")
        result.check("each task ran once (no retry)", result.tries == [expected_try], f"try numbers {result.tries}")
        cluster_checks.check_s3_outputs(result, self.s3_url, runs, client.config(), self.opts.today)
        check_tokens(result, self.opts, single_flight_spacing=False)
        if not lease:  # the control shows what the lease saves: its token count is reported, not judged
            result.checks = [c for c in result.checks if "token requests <= ideal" not in c.name]
        workers = cluster_checks.per_worker(tis, self.hosts, expected_try)
        total = sum(w["token_requests"] for w in workers.values())
        result.check("token requests in worker logs = at the emulator", total == result.token_requests, f"{total}")
        other, intervals = cluster_checks.read_back_hosts(tis)
        self.per_worker[name] = workers
        self.extra[name] = {"read_back_elsewhere": f"{other}/{intervals}", "lease": lease, "pod": pod_per_task}
        self.phases.append(result)
        self.timings[f"{name}_s"] = time.monotonic() - t0
        return result

    def run(self) -> None:
        tokens: list[str] = []
        try:
            self.start()
            for name, lease, pod, expected_try in PHASES:
                if name in self.copts.phases:
                    self.run_phase(name, lease, pod, expected_try)
            for later in self.phases[1:]:
                first = self.phases[0]
                changed = sorted(k for k in first.files if later.files.get(k) != first.files[k])
                self.checks.append(
                    Check(
                        f"{later.name}: objects identical to the first phase (sha256)",
                        not changed and first.files.keys() == later.files.keys(),
                        f"{len(first.files) - len(changed)}/{len(first.files)} identical",
                    )
                )
            if "resume" in self.copts.phases:
                if not self.phases:
                    self.start_workers(True, False)
                self.checks += cluster_resume.run_phase(self)
            ok, detail = cluster_checks.prove_s3_atomicity(self.s3_url)
            self.checks.append(Check("S3 atomicity: a failed pull leaves no object at its target", ok, detail))
            tokens = self.emulator.client.issued_tokens()
        finally:
            self.stop()
        roots = (self.postgres.root,) if self.postgres else ()
        self.checks.append(secrets_scan(self.workdir, tokens, roots))

    def stop(self) -> None:
        import signal

        previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.workers.stop_all()
            self.core.stop_all()
            if self.emulator is not None:
                self.emulator.stop()
            self.services.stop_all()
            kill_marked(self.workdir)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def all_checks(self) -> list[Check]:
        return [c for phase in self.phases for c in phase.checks] + self.checks


def parse_args(argv: list[str] | None) -> tuple[ClusterOptions, bool]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--intervals", type=int, default=30, help="daily intervals to backfill (x 4 mapped pulls)")
    p.add_argument("--start", default="2026-10-01", help="first logical date")
    p.add_argument("--workers", type=int, default=3, help="Celery worker hosts")
    p.add_argument("--worker-concurrency", type=int, default=2, help="task slots per worker")
    p.add_argument("--pool-slots", type=int, default=5, help="slots of the 'schneider' pool")
    p.add_argument("--max-concurrency", type=int, default=2, help="connection max_concurrency")
    p.add_argument("--token-lifetime", type=int, default=20)
    p.add_argument("--token-leeway", type=float, default=5.0)
    p.add_argument("--token-refresh-spread", type=float, default=0.5)
    p.add_argument("--latency-ms", type=float, default=20.0)
    p.add_argument("--token-latency-ms", type=float, default=300.0, help="token endpoint latency (a real one's)")
    every = [*(name for name, *_ in PHASES), "resume"]
    p.add_argument("--phases", default=",".join(every), help="comma-separated subset")
    p.add_argument("--timeout", type=float, default=1500.0)
    p.add_argument("--workdir", type=Path, default=None)
    p.add_argument("--keep", action="store_true", help="keep the work directory (always kept on failure)")
    a = p.parse_args(argv)
    start = dt.date.fromisoformat(a.start)
    catalog = BackfillSpec(DAG_ID, cluster_checks.PULL_TASK, start, a.intervals)
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="schneider-cluster-"))
    workdir.mkdir(parents=True, exist_ok=True)
    base = Options(
        workdir=workdir,
        catalog=catalog,
        orders=catalog,
        parallelism=a.pool_slots,
        max_concurrency=a.max_concurrency,
        page_size=50,
        token_lifetime=a.token_lifetime,
        token_leeway=a.token_leeway,
        token_refresh_spread=a.token_refresh_spread,
        latency_ms=a.latency_ms,
        token_latency_ms=a.token_latency_ms,
        today=catalog.end + dt.timedelta(days=1),
        delta_semantics="since",
        hosts=a.workers,
        token_cache="memory,file,variable",
        timeout=a.timeout,
        rerun=True,
    )
    phases = [name.strip() for name in a.phases.split(",") if name.strip()]
    return ClusterOptions(base, a.workers, a.worker_concurrency, a.pool_slots, phases), a.keep


def main(argv: list[str] | None = None) -> int:
    import os

    from schneider_e2e.options import WORKDIR_ENV
    from schneider_e2e.services import terminate_on_sigterm

    copts, keep = parse_args(argv)
    os.environ[WORKDIR_ENV] = str(copts.base.workdir)
    run = ClusterRun(copts)
    started = time.monotonic()
    error: str | None = None
    print(f"e2e cluster: work directory {copts.base.workdir}", flush=True)
    try:
        with terminate_on_sigterm():
            run.run()
    except KeyboardInterrupt as exc:
        error = f"interrupted ({exc or 'Ctrl-C'})"
    except E2EError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - reported in the summary, after the clean-up ran
        import traceback

        traceback.print_exc()
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if run.postgres is not None:
            run.postgres.cleanup()
    result = summary(run, time.monotonic() - started, error)
    print_table(result)
    if result["ok"] and not keep:
        shutil.rmtree(copts.base.workdir, ignore_errors=True)
        result["workdir"] = None
    print(json.dumps(result, sort_keys=True), flush=True)
    return 0 if result["ok"] else 1
