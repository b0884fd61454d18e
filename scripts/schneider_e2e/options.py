"""What a run is: the backfills, the emulator's knobs, the connection's token settings (command line)."""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
CACHE_DIR_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_TOKEN_CACHE_DIR"
HOSTS_ENV = "SCHNEIDER_E2E_HOSTS"
HOSTS_BASE_ENV = "SCHNEIDER_E2E_HOSTS_BASE"
WORKDIR_ENV = "SCHNEIDER_E2E_WORKDIR"
CLIENT_ID, CLIENT_SECRET, API_KEY = "demo-client", "demo-secret", "demo-api-key"
SEED, COUNTRY = 42, "FR"
#: The gateway dialect the emulator speaks in the end-to-end runs (string-typed token answers, ``fault``
#: errors, throttles sent as 500): the stricter of the two, see airflow_provider_schneider/emulator/README.md.
EMULATOR_PROFILE = "apigee"
MAX_LEEWAY_SHARE = 0.25  # as tokens/token.py: a leeway never eats more than a quarter of a token
SCHNEIDER_CONCURRENCY_LIMIT = 10

DESCRIPTION = "End to end with a real scheduler: backfill the example DAGs against the emulator, check, rerun."


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
    #: The connection's ``client_max_in_flight`` (``None``: the provider's default, 10).
    client_max_in_flight: int | None = None

    @property
    def effective_leeway(self) -> float:
        """The earliest a process may renew before expiry: capped leeway, stretched by the full spread."""
        return min(self.token_leeway, self.token_lifetime * MAX_LEEWAY_SHARE) * (1 + self.token_refresh_spread)

    @property
    def usable_lifetime(self) -> float:
        return self.token_lifetime - self.effective_leeway

    @property
    def concurrency_cap(self) -> int:
        return self.parallelism * self.max_concurrency


def parse_args(argv: list[str] | None) -> tuple[Options, bool]:
    p = argparse.ArgumentParser(description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter)
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
    p.add_argument(
        "--client-max-in-flight", type=int, default=None, help="connection client_max_in_flight (0: no host cap)"
    )
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
        client_max_in_flight=a.client_max_in_flight,
    )
    return opts, a.keep
