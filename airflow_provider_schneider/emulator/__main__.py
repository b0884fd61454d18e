"""``python -m airflow_provider_schneider.emulator``: serve until SIGTERM/SIGINT, then exit 0."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from .config import PROFILES, EmulatorConfig
from .server import EmulatorServer


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = EmulatorConfig()
    p = argparse.ArgumentParser(
        prog="python -m airflow_provider_schneider.emulator",
        description="Local emulator of Schneider Electric's distributor API gateway (no credentials needed).",
    )
    p.add_argument("--host", default=defaults.host)
    p.add_argument("--port", type=int, default=defaults.port, help="0 picks a free port")
    p.add_argument("--token-lifetime", type=float, default=defaults.token_lifetime, help="seconds")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--orders-per-country", type=int, default=defaults.orders_per_country)
    p.add_argument("--products", type=int, default=defaults.products, help="catalogue size")
    p.add_argument("--latency-ms", type=float, default=defaults.latency_ms, help="added to every API call")
    p.add_argument("--token-latency-ms", type=float, default=defaults.token_latency_ms)
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
        client_id=ns.client_id,
        client_secret=ns.client_secret,
        api_key=ns.api_key,
        profile=ns.profile,
        required_scope=ns.required_scope,
        verbose=ns.verbose,
    )


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    try:
        server = EmulatorServer(config_from_args(ns))
        server.start()
    except (ValueError, OSError) as exc:
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
