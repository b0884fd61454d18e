"""``python -m airflow_provider_schneider.emulator``: serve until SIGTERM/SIGINT, then exit 0.

Exit 2 when it cannot start (bad option, or the port is taken). Asked to bind a port that an Airflow component
listens on by default, it warns on stderr first: the docs' port is :data:`DOCUMENTED_PORT`.
"""

from __future__ import annotations

import argparse
import errno
import signal
import sys
import threading
from collections.abc import Sequence

from .config import PROFILES, EmulatorConfig
from .server import EmulatorServer

#: The port every doc, script and example uses; no Airflow component listens on it by default.
DOCUMENTED_PORT = 8765

#: TCP ports Airflow components listen on by default (Airflow 3.3): who, its setting, and what goes wrong when
#: the emulator holds the port on the same host.
AIRFLOW_PORTS: dict[int, tuple[str, str]] = {
    8080: (
        "Airflow's api-server ([api] port, also `airflow standalone`)",
        "tasks send their Execution API calls to http://localhost:8080/execution/ by default, so they reach "
        "this emulator and every task fails (or the api-server cannot start)",
    ),
    8793: (
        "Airflow's worker log server ([logging] worker_log_server_port)",
        "the scheduler (LocalExecutor) or Celery worker cannot serve task logs, so the UI cannot show the log "
        "of a running task",
    ),
    8794: (
        "Airflow's triggerer log server ([logging] trigger_log_server_port)",
        "the triggerer cannot serve its logs, so the UI cannot show what a deferred task's trigger logged",
    ),
    8974: (
        "Airflow's scheduler health check ([scheduler] scheduler_health_check_server_port)",
        "a scheduler with [scheduler] enable_health_check = True cannot serve /health",
    ),
    5555: (
        "Celery Flower (`airflow celery flower`, [celery] flower_port)",
        "Flower cannot start",
    ),
}


def airflow_port_warning(port: int) -> str | None:
    """The warning for binding ``port``, or None when no Airflow component uses it by default."""
    if port not in AIRFLOW_PORTS:
        return None
    who, harm = AIRFLOW_PORTS[port]
    return (
        f"schneider-emulator: warning: port {port} is {who}. If Airflow runs on this host, {harm}. "
        f"Use --port {DOCUMENTED_PORT} (the documented port) or --port 0 (any free port)."
    )


def port_in_use_message(host: str, port: int) -> str:
    """What to say when the bind fails because something already listens on ``host:port``."""
    owner = f" (by default {AIRFLOW_PORTS[port][0]} listens there)" if port in AIRFLOW_PORTS else ""
    return (
        f"schneider-emulator: cannot start: port {port} on {host} is already in use{owner}. "
        f"Stop that process or choose another port: --port {DOCUMENTED_PORT} (the documented port) "
        "or --port 0 (any free port)."
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = EmulatorConfig()
    p = argparse.ArgumentParser(
        prog="python -m airflow_provider_schneider.emulator",
        description="Local emulator of Schneider Electric's distributor API gateway (no credentials needed).",
    )
    p.add_argument("--host", default=defaults.host)
    p.add_argument(
        "--port",
        type=int,
        default=defaults.port,
        help=f"0 (default) picks a free port; the docs use {DOCUMENTED_PORT}. Avoid Airflow's ports "
        f"({', '.join(str(port) for port in sorted(AIRFLOW_PORTS))}): the emulator warns if asked for one",
    )
    p.add_argument("--token-lifetime", type=float, default=defaults.token_lifetime, help="seconds")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--orders-per-country", type=int, default=defaults.orders_per_country)
    p.add_argument("--products", type=int, default=defaults.products, help="catalogue size")
    p.add_argument("--latency-ms", type=float, default=defaults.latency_ms, help="added to every API call")
    p.add_argument("--token-latency-ms", type=float, default=defaults.token_latency_ms)
    p.add_argument(
        "--rate",
        type=float,
        default=defaults.rate_limit,
        help="spike arrest: more API calls than this in any second are refused (Apigee's fault, as a 500)",
    )
    p.add_argument("--client-id", default=defaults.client_id)
    p.add_argument("--client-secret", default=defaults.client_secret)
    p.add_argument("--api-key", default=defaults.api_key)
    p.add_argument(
        "--profile",
        choices=PROFILES,
        default=defaults.profile,
        help="answer shapes: textbook OAuth + Schneider errors (default) or an Apigee-style gateway",
    )
    p.add_argument("--required-scope", default=defaults.required_scope, help="token requests must ask this scope")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return p.parse_args(argv)


def config_from_args(ns: argparse.Namespace) -> EmulatorConfig:
    lifetime = int(ns.token_lifetime) if float(ns.token_lifetime).is_integer() else ns.token_lifetime
    return EmulatorConfig(
        host=ns.host,
        port=ns.port,
        token_lifetime=lifetime,
        seed=ns.seed,
        orders_per_country=ns.orders_per_country,
        products=ns.products,
        latency_ms=ns.latency_ms,
        token_latency_ms=ns.token_latency_ms,
        rate_limit=ns.rate,
        client_id=ns.client_id,
        client_secret=ns.client_secret,
        api_key=ns.api_key,
        profile=ns.profile,
        required_scope=ns.required_scope,
        verbose=ns.verbose,
    )


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    warning = airflow_port_warning(ns.port)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    try:
        server = EmulatorServer(config_from_args(ns))
        server.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(port_in_use_message(ns.host, ns.port), file=sys.stderr)
        else:
            print(f"schneider-emulator: cannot start: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"schneider-emulator: cannot start: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    print(f"schneider-emulator listening on {server.url}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
