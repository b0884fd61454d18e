"""Helpers for the token tests: real child processes that use SchneiderHook, and the token Variables.

Run as ``python -m tests.support.tokens '<json spec>'`` a child builds a hook from the ``AIRFLOW_CONN_*``
environment it inherits, does the work of the spec and prints one ``TOKEN_CHILD {json}`` line per result.
Children never print a token, only :func:`~airflow_provider_schneider.tokens.manager.token_id` of it.
"""

from __future__ import annotations

import configparser
import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.support.fakes import FakeClock
from tests.support.metadata import metadata_connection

REPO = Path(__file__).resolve().parents[2]  # the checkout
RESULT_MARK = "TOKEN_CHILD "
ORDERS_PATH = "/v1/supply-chain/partner-order-status/orders/{country}"
TOKEN_LOG_LINE = "Requested a new Schneider token"
VARIABLE_PREFIX = "schneider_token_cache_"


# -- parent side ------------------------------------------------------------------------------------------


def child_command(spec: dict[str, Any]) -> list[str]:
    return [sys.executable, "-m", "tests.support.tokens", json.dumps(spec)]


def parse_results(stdout: str) -> list[dict[str, Any]]:
    results = []
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARK):
            try:
                results.append(json.loads(line[len(RESULT_MARK) :]))
            except ValueError:
                raise AssertionError(f"unreadable child output line {line!r}") from None
    return results


def start_child(spec: dict[str, Any]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        child_command(spec), cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish_child(proc: subprocess.Popen[str], timeout: float = 180) -> tuple[list[dict[str, Any]], str]:
    """Wait for a child; returns its results and its stderr (its log). Fails loudly if it failed."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"child exited with {proc.returncode}:\n{err[-4000:]}")
    return parse_results(out), err


def run_child(spec: dict[str, Any], timeout: float = 180) -> tuple[list[dict[str, Any]], str]:
    return finish_child(start_child(spec), timeout)


def wait_for(predicate: Any, what: str, timeout: float = 120.0, every: float = 0.02) -> None:
    """Poll until ``predicate()`` is true; a hang guard, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {timeout:.0f}s")
        time.sleep(every)


def expected_order_digest(country: str, count: int) -> str:
    """sha256 of the order numbers 0..count-1 of ``country``, one per line (the emulator's numbering)."""
    from airflow_provider_schneider.emulator import data

    return _digest(data.order_number(country, i) for i in range(count))


def _digest(numbers: Any) -> str:
    return hashlib.sha256("\n".join(numbers).encode()).hexdigest()


def metadata_db() -> str:
    url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert url.startswith("sqlite:///"), url
    return url[len("sqlite:///") :]


def delete_token_variables() -> None:
    """Remove this provider's token Variables, so a test starts with an empty cluster tier."""
    with metadata_connection(metadata_db()) as db:
        db.execute("DELETE FROM variable WHERE key LIKE ? ESCAPE '\\'", (VARIABLE_PREFIX.replace("_", "\\_") + "%",))


def token_variables() -> dict[str, str]:
    """``{key: value}`` of the token Variables as the provider wrote them (Airflow's own Fernet removed)."""
    with metadata_connection(metadata_db()) as db:
        rows = db.execute("SELECT key, val, is_encrypted FROM variable WHERE key LIKE ?", (VARIABLE_PREFIX + "%",))
        found = {key: (val, bool(encrypted)) for key, val, encrypted in rows}
    return {key: _airflow_decrypt(val) if encrypted else val for key, (val, encrypted) in found.items()}


def _airflow_decrypt(value: str) -> str:
    from cryptography.fernet import Fernet, MultiFernet

    keys = os.environ.get("AIRFLOW__CORE__FERNET_KEY")
    if not keys:
        config = configparser.ConfigParser(interpolation=None)
        config.read(Path(os.environ["AIRFLOW_HOME"]) / "airflow.cfg")
        keys = config.get("core", "fernet_key")
    return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()]).decrypt(value).decode()


def issued_tokens(emulator: Any) -> list[str]:
    """Every token the emulator issued since its last reset (to scan outputs and files for them)."""
    return list(emulator.request("GET", "/_emulator/tokens").json()["tokens"])


class FakeVariableApi:
    """``airflow.sdk.Variable`` of one process, last writer wins; each call costs ``latency`` seconds of the
    ``clock`` (a slow API server without real sleeps). ``calls`` lists ``(action, key, clock time)``."""

    def __init__(self, clock: FakeClock | None = None, latency: float = 0.0):
        self.values: dict[str, str] = {}
        self.calls: list[tuple[str, str, float]] = []
        self.clock = clock
        self.latency = latency

    def _call(self, action: str, key: str) -> None:
        if self.clock is not None:
            self.clock.now += self.latency
        self.calls.append((action, key, self.clock.now if self.clock is not None else time.time()))

    def get(self, key: str, default: Any = None) -> Any:
        self._call("get", key)
        return self.values.get(key, default)

    def set(self, key: str, value: str, description: str | None = None) -> None:
        self._call("set", key)
        self.values[key] = value

    def delete(self, key: str) -> None:
        self._call("delete", key)
        self.values.pop(key, None)


def use_fake_variables(monkeypatch: Any, api: FakeVariableApi) -> FakeVariableApi:
    """Make the provider's cluster tier use ``api``, as inside a running task (the Task SDK's Variable)."""
    import airflow.sdk

    from airflow_provider_schneider.tokens import tiers as token_tiers

    monkeypatch.setattr(airflow.sdk, "Variable", api)
    monkeypatch.setattr(token_tiers, "in_task_context", lambda: True)
    return api


# -- child side -------------------------------------------------------------------------------------------


def _emit(result: dict[str, Any]) -> None:
    """One ``write`` per line: forked siblings share the pipe, and a short write to a pipe is atomic."""
    sys.stdout.flush()
    os.write(sys.stdout.fileno(), f"{RESULT_MARK}{json.dumps(result)}\n".encode())


def _one_call(conn_id: str, country: str = "FR") -> dict[str, Any]:
    """What a short task does: build the hook, make one cheap authenticated call."""
    from airflow_provider_schneider.hooks.schneider import SchneiderHook
    from airflow_provider_schneider.tokens.token import token_id

    hook = SchneiderHook(conn_id)
    body = hook.request("GET", ORDERS_PATH.format(country=country), params={"page": 1, "page-size": 1})
    manager = hook.token_manager
    assert manager is not None
    return {
        "pid": os.getpid(),
        "source": manager.last_source,
        "token_requests": manager.token_requests,
        "token_id": token_id(manager.get_token()),
        "records": body["pagination"]["totalNumberOfRecords"],
    }


def _pull(spec: dict[str, Any]) -> dict[str, Any]:
    """A paginated Order Status pull; reports what a sink would need to prove completeness."""
    from airflow_provider_schneider.hooks.schneider import SchneiderHook

    hook = SchneiderHook(spec.get("conn_id", "schneider_default"))
    country = spec.get("country", "FR")
    numbers = [
        record["orderNumber"]
        for record in hook.iter_records(
            ORDERS_PATH.format(country=country), records_field="orderList", page_size=spec.get("page_size", 10)
        )
    ]
    manager = hook.token_manager
    assert manager is not None
    return {
        "count": len(numbers),
        "unique": len(set(numbers)),
        "digest": _digest(numbers),
        "token_requests": manager.token_requests,
    }


def _swarm(spec: dict[str, Any]) -> None:
    """Fork ``count`` task processes (as Airflow's supervisor forks a task) and wait for them all.

    The provider is imported here, once, before forking, so the children's start is cheap and they meet
    the start signal together; none of them (nor this parent) holds a token before its first round.
    """
    pids = []
    for index in range(spec["count"]):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                _swarm_child(Path(spec["dir"]), index, spec["rounds"])
                code = 0
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        pids.append(pid)
    failed = [pid for pid in pids if os.waitpid(pid, 0)[1] != 0]
    if failed:
        raise SystemExit(f"{len(failed)} swarm children failed")


def _swarm_child(barrier: Path, index: int, rounds: list[str]) -> None:
    """Say ready, then per round wait for the start signal file and make one call."""
    (barrier / f"ready-{index}").touch()
    for number, conn_id in enumerate(rounds):
        go = barrier / f"go-{number}"
        while not go.exists():
            time.sleep(0.001)
        try:
            result = {"round": number, "ok": True, **_one_call(conn_id)}
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
            result = {"round": number, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
        _emit(result)
        (barrier / f"done-{number}-{index}").touch()


def main(argv: list[str]) -> None:
    import airflow_provider_schneider.hooks.schneider  # noqa: F401 - Airflow sets up logging on import...

    # ...so ours goes after it: the tests read the provider's INFO lines from stderr.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s", force=True)
    spec = json.loads(argv[0])
    mode = spec["mode"]
    if mode == "swarm":
        _swarm(spec)
    elif mode == "call":
        _emit(_one_call(spec.get("conn_id", "schneider_default")))
    elif mode == "pull":
        _emit(_pull(spec))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])


def settings_for(cache_dir: Path, **extra: Any) -> Any:
    """Settings of a ``schneider_default`` connection with a host cache in ``cache_dir`` (no Airflow needed)."""
    from airflow_provider_schneider.config.settings import settings_from_connection

    extra = {"token_cache_dir": str(cache_dir), "token_leeway": 5, **extra}
    conn = SimpleNamespace(
        conn_id="schneider_default",
        host="http://127.0.0.1:9",
        login="demo-client",
        password="demo-secret",
        port=None,
        schema=None,
        extra_dejson=extra,
    )
    return settings_from_connection(conn)
