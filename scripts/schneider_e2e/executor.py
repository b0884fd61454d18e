"""``--hosts N``: a LocalExecutor whose worker processes stand for N hosts with separate token file caches."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from schneider_e2e.options import CACHE_DIR_ENV, HOSTS_BASE_ENV, HOSTS_ENV


def __getattr__(name: str) -> Any:
    """``HostSplitLocalExecutor`` for ``--hosts N``, built on first use (this module stays light)."""
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
