"""schneider.* metrics through Airflow's own metrics facade, received over UDP on loopback from a real
``airflow dags test`` run with ``[metrics] statsd_on``: the names a StatsD or OpenTelemetry backend sees."""

from __future__ import annotations

import re
import socket
import threading

import pytest

from tests.support.faults import FAST_RETRIES, on_page

DAG_ID = "schneider_order_status_daily"


class StatsdListener:
    """A UDP socket on loopback that keeps every StatsD line it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            self.lines += data.decode(errors="replace").splitlines()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def counters(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for line in self.lines:
            match = re.fullmatch(r"airflow\.(schneider\.[\w.]+):(\d+)\|c(?:\|@[\d.]+)?", line)
            if match:
                totals[match[1]] = totals.get(match[1], 0) + int(match[2])
        return totals

    def timers(self, name: str) -> list[float]:
        return [float(m[1]) for line in self.lines if (m := re.fullmatch(rf"airflow\.{name}:([\d.]+)\|ms", line))]


@pytest.fixture
def statsd():
    listener = StatsdListener()
    yield listener
    listener.close()


def test_a_real_task_run_sends_the_schneider_metrics_over_statsd(emulator, run_dag, schneider_conn, statsd):
    emulator.configure(orders_per_country=45)
    schneider_conn(**{**FAST_RETRIES, "page_size": 10, "token_cache": "memory,file"})
    emulator.add_fault(**on_page(3, kind="status", status=429, retry_after="0"))
    emulator.add_fault(**on_page(4, kind="status", status=500, code="policies.ratelimit.SpikeArrestViolation"))
    env = {
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
    }
    result = run_dag(DAG_ID, "2026-11-12", conf={"country": "FR"}, env=env)
    assert result.succeeded, result.output[-3000:]

    counters = statsd.counters()
    assert counters["schneider.token.requests"] == 1
    assert counters["schneider.http.requests.200"] == 5  # pages 1..5
    assert counters["schneider.http.requests.429"] == 1 and counters["schneider.http.requests.500"] == 1
    assert counters["schneider.http.retries"] == 2 and counters["schneider.http.throttled"] == 2
    assert counters["schneider.pull.pages"] == 5 and counters["schneider.pull.records"] == 45
    assert len(statsd.timers("schneider.http.duration")) == 7  # one per HTTP answer
    names = {line.split(":", 1)[0] for line in statsd.lines if line.startswith("airflow.schneider.")}
    allowed = re.compile(
        r"airflow\.schneider\.(token\.requests|token\.reused\.(memory|file|variable)|http\.requests\.\d{3}"
        r"|http\.(retries|throttled|duration)|pull\.(records|pages))"
    )
    assert all(allowed.fullmatch(name) for name in names), names  # a fixed vocabulary, nothing unbounded
