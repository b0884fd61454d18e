"""Deferred order sensors under a real scheduler and triggerer: how the triggerer polls while they wait.

One DAG of N order sensors that start in the triggerer (``start_from_trigger``) and end there
(``end_from_trigger``), so no worker runs at all and the triggerer is all that is measured. The emulator
answers each call after ``latency_ms``; its country has ``orders`` orders. Measured: the calls and the
calls in flight at the gateway while every sensor waits, the triggerer's threads and memory, the token
requests, and how long after the last status flip the last sensor is done. ``trigger`` picks the trigger
class (the provider's, or the thread-pool baseline in :mod:`.legacy_trigger`).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from schneider_e2e.environment import build_environment
from schneider_e2e.metadata import MetadataDb
from schneider_e2e.options import CLIENT_SECRET, EMULATOR_PROFILE, parse_args
from schneider_e2e.services import E2EError, Processes, airflow_cli, free_port, http_ok, wait_for

DAG_ID = "schneider_deferred_wait"
BASELINE = "schneider_e2e.legacy_trigger.ThreadPoolOrderStatusTrigger"

DAG_TEMPLATE = '''"""{n} order sensors started and ended in the triggerer (by scripts/schneider_e2e/deferred.py)."""

import datetime

from airflow.sdk import DAG

from airflow_provider_schneider.sensors.order_status import SchneiderOrderStatusSensor

ORDERS = {orders!r}

with DAG("{dag_id}", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False):
    for number in ORDERS:
        sensor = SchneiderOrderStatusSensor(
            task_id=f"wait_{{number}}",
            country="FR",
            order_number=number,
            target_statuses=["Shipped"],
            poke_interval={poke},
            timeout=1800,
            start_from_trigger=True,
            end_from_trigger={end!r},
        )
        if {trigger!r}:
            sensor.start_trigger_args.trigger_cls = {trigger!r}
'''


@dataclass
class DeferredResult:
    sensors: int
    trigger: str
    latency_ms: float
    poke_s: float
    deferred_after_s: float
    polling_after_s: float
    window_s: float
    api_calls_in_window: int
    calls_per_poke_interval: float
    peak_in_flight: int
    reaction_s: float
    succeeded: int
    token_requests: int
    triggerer_threads: list[int]
    triggerer_rss_mb: float
    secrets_in_logs: int


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(status.parent.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _proc_status(pid: int) -> dict[str, str]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return dict(line.split(":", 1) for line in lines if ":" in line)


class DeferredRun:
    def __init__(
        self,
        workdir: Path,
        sensors: int,
        latency_ms: float,
        poke: float,
        trigger: str,
        orders: int,
        end_in_triggerer: bool = True,
    ):
        self.workdir, self.sensors, self.latency_ms, self.poke = workdir, sensors, latency_ms, poke
        self.end_in_triggerer = end_in_triggerer
        self.trigger, self.orders = trigger, orders
        self.home = workdir / "airflow_home"
        self.procs = Processes(workdir)
        self.db = MetadataDb(self.home / "airflow.db")
        self.numbers = [f"FR{i:08d}" for i in range(1, self.orders + 1, max(1, self.orders // sensors))][:sensors]

    def states(self) -> dict[str, int]:
        rows = self.db.rows("SELECT state, count(*) AS n FROM task_instance WHERE dag_id = ? GROUP BY state", (DAG_ID,))
        return {str(row["state"]): int(row["n"]) for row in rows}

    def run(self, timeout: float = 900) -> DeferredResult:
        from airflow_provider_schneider.emulator.client import EmulatorProcess

        deadline = time.monotonic() + timeout
        (self.home / "dags").mkdir(parents=True)
        (self.home / "dags" / f"{DAG_ID}.py").write_text(
            DAG_TEMPLATE.format(
                n=self.sensors,
                orders=self.numbers,
                dag_id=DAG_ID,
                poke=self.poke,
                trigger=self.trigger,
                end=self.end_in_triggerer,
            )
        )
        opts, _ = parse_args(["--workdir", str(self.workdir), "--page-size", "100", "--token-lifetime", "3600"])
        emulator = EmulatorProcess(
            latency_ms=self.latency_ms, orders_per_country=self.orders, profile=EMULATOR_PROFILE, token_lifetime=3600
        ).start()
        try:
            client = emulator.client
            for number in self.numbers:
                client.set_order_status("FR", number, "Open")
            api_port = free_port()
            env = build_environment(opts, self.home, api_port, str(emulator.url))
            env["AIRFLOW__CORE__PARALLELISM"] = "4"
            airflow_cli(["db", "migrate"], env, timeout=300)
            airflow_cli(["dags", "reserialize"], env, timeout=300)
            errors = self.db.rows("SELECT filename, stacktrace FROM import_error")
            if errors:
                raise E2EError(f"DAG import error:\n{errors[0]['stacktrace']}")
            airflow_cli(["dags", "unpause", DAG_ID], env)
            airflow_cli(["dags", "trigger", DAG_ID], env)
            airflow = [sys.executable, "-m", "airflow"]
            self.procs.start("api-server", [*airflow, "api-server", "--port", str(api_port), "--workers", "1"], env)
            health = f"http://127.0.0.1:{api_port}/api/v2/monitor/health"
            wait_for("the API server", lambda: http_ok(health), 180, self.procs)
            self.procs.start("scheduler", [*airflow, "scheduler"], env)
            triggerer = self.procs.start("triggerer", [*airflow, "triggerer"], env)
            started = time.monotonic()
            wait_for(
                f"{self.sensors} deferred sensors",
                lambda: self.states().get("deferred", 0) == self.sensors,
                max(1.0, deadline - time.monotonic()),
                self.procs,
                every=0.5,
            )
            deferred_after = time.monotonic() - started
            # Deferred in the DB is not running in the triggerer yet (500 triggers take a while to start):
            # the window opens once calls flow, and after a settle of three poke intervals.
            wait_for(
                "the triggerer's first call",
                lambda: client.stats()["api_calls"] > 0,
                max(1.0, deadline - time.monotonic()),
                self.procs,
                every=0.5,
            )
            polling_after = time.monotonic() - started
            time.sleep(3 * self.poke + self.latency_ms / 1000 * 4)
            token_requests = int(client.stats()["token_requests"])
            client.reset_counters()
            window_start = time.monotonic()
            time.sleep(max(15.0, 3 * self.poke))
            stats = client.stats()
            window = time.monotonic() - window_start
            tree = _tree(triggerer.pid)
            threads = sorted((int(_proc_status(pid).get("Threads", "0")) for pid in tree), reverse=True)
            rss = sum(int(_proc_status(pid).get("VmRSS", "0 kB").split()[0]) for pid in tree) / 1024
            for number in self.numbers:
                client.set_order_status("FR", number, "Shipped")
            flipped = time.monotonic()
            wait_for(
                "every sensor done",
                lambda: self.states().get("deferred", 0) == 0,
                max(1.0, deadline - time.monotonic()),
                self.procs,
                every=0.2,
            )
            reaction = time.monotonic() - flipped
            # Ended in the triggerer: succeeded; resumed on a worker: every trigger's event came (out of
            # "deferred"), the worker runs that follow are not measured.
            states = self.states()
            succeeded = states.get("success", 0) if self.end_in_triggerer else self.sensors - states.get("deferred", 0)
            calls = int(stats["api_calls"])
            secrets = [CLIENT_SECRET, *client.issued_tokens()]
            logs = "".join(p.read_text(errors="replace") for p in self.workdir.rglob("*.log"))
            logs += "".join(p.read_text(errors="replace") for p in (self.home / "logs").rglob("*") if p.is_file())
            return DeferredResult(
                sensors=self.sensors,
                trigger="thread pool (baseline)" if self.trigger else "coalesced (provider)",
                latency_ms=self.latency_ms,
                poke_s=self.poke,
                deferred_after_s=round(deferred_after, 1),
                polling_after_s=round(polling_after, 1),
                window_s=round(window, 1),
                api_calls_in_window=calls,
                calls_per_poke_interval=round(calls * self.poke / window, 1),
                peak_in_flight=int(stats["peak_concurrency"]),
                reaction_s=round(reaction, 1),
                succeeded=succeeded,
                token_requests=token_requests + int(stats["token_requests"]),
                triggerer_threads=threads,
                triggerer_rss_mb=round(rss, 0),
                secrets_in_logs=sum(logs.count(s) for s in secrets),
            )
        finally:
            self.procs.stop_all()
            emulator.stop()


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sensors", type=int, default=100)
    p.add_argument("--latency-ms", type=float, default=2000)
    p.add_argument("--poke", type=float, default=5)
    p.add_argument("--orders", type=int, default=1234, help="orders of the country (1,234: 13 pages of 100)")
    p.add_argument("--baseline", action="store_true", help="the thread-pool trigger the provider had before")
    p.add_argument(
        "--resume-on-worker",
        action="store_true",
        help="the sensors resume on a worker after the event (no end_from_trigger); measured up to the event",
    )
    p.add_argument("--timeout", type=float, default=900)
    p.add_argument("--workdir", type=Path, default=None)
    a = p.parse_args(argv)
    workdir = a.workdir or Path(tempfile.mkdtemp(prefix="schneider-deferred-"))
    trigger = BASELINE if a.baseline else ""
    run = DeferredRun(workdir, a.sensors, a.latency_ms, a.poke, trigger, a.orders, not a.resume_on_worker)
    result = run.run(a.timeout)
    print("DEFERRED_RESULT " + json.dumps(asdict(result)), flush=True)
    return 0
