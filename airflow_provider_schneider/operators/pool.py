"""The cluster-wide share of Schneider's 10 calls: an Airflow pool, named once for the whole deployment.

On one host the provider's slot files hold the client's calls in flight to ``client_max_in_flight``
(:mod:`..client.host`); across hosts only the scheduler can, through a pool of ``slots x max_concurrency <=
10``. DAG parsing cannot ask whether a pool exists (no metadata database in Airflow 3's parser), and a task
in a pool that does not exist is never scheduled, so the operators use a pool only when the deployment names
it: ``[schneider] pool`` (``AIRFLOW__SCHNEIDER__POOL=schneider``, the name docs/cluster.md creates). A pull
that runs under a multi-host executor in Airflow's default pool says once, per task, what to do.
"""

from __future__ import annotations

from typing import Any

#: Where a deployment names the pool every Schneider operator uses unless given another.
POOL_SECTION, POOL_OPTION = "schneider", "pool"
#: The name docs/cluster.md creates (``airflow pools set schneider 5 ...``).
DOCUMENTED_POOL = "schneider"
#: Executors whose tasks run on several hosts: the host-wide cap alone cannot hold the client's limit.
MULTI_HOST_EXECUTORS = (
    "CeleryExecutor",
    "KubernetesExecutor",
    "CeleryKubernetesExecutor",
    "LocalKubernetesExecutor",
    "EdgeExecutor",
)


def _conf() -> Any:
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # Airflow 3.1
        from airflow.configuration import conf
    return conf


def configured_pool() -> str | None:
    """The deployment's pool for Schneider operators (``[schneider] pool``), or ``None``."""
    value = str(_conf().get(POOL_SECTION, POOL_OPTION, fallback="") or "").strip()
    return value or None


def with_default_pool(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the deployment's pool unless the DAG author chose one (also in ``default_args``)."""
    given = "pool" in kwargs or "pool" in (kwargs.get("default_args") or {})
    pool = None if given else configured_pool()
    return {**kwargs, "pool": pool} if pool else kwargs


def runs_on_several_hosts() -> bool:
    executors = str(_conf().get("core", "executor", fallback="") or "")
    return any(name.strip().split(".")[-1].split(":")[-1] in MULTI_HOST_EXECUTORS for name in executors.split(","))


def warn_without_pool(operator: Any) -> None:
    """Say, once per task run, that calls across hosts are not capped when the task is in the default pool."""
    if getattr(operator, "pool", None) not in (None, "", "default_pool") or not runs_on_several_hosts():
        return
    operator.log.warning(
        "This deployment runs tasks on several hosts, and this task is in Airflow's default pool: the provider "
        "caps the client's calls in flight per host (client_max_in_flight), not across hosts. Create a pool, "
        'e.g. `airflow pools set %s 5 "Schneider API"` (slots x max_concurrency <= 10), and name it in '
        "[%s] %s (AIRFLOW__SCHNEIDER__POOL=%s) so every Schneider operator uses it (docs/cluster.md)",
        DOCUMENTED_POOL,
        POOL_SECTION,
        POOL_OPTION,
        DOCUMENTED_POOL,
    )
