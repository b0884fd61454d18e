"""The cluster's services on loopback: PostgreSQL, Redis, an S3 server (moto), and the Airflow environment
of every component and worker "host" (own AIRFLOW_HOME, HOME, token cache directory, hostname).

PostgreSQL and Redis come from Debian packages (installed if missing), run in the foreground as children
of the run (PostgreSQL as the ``postgres`` user: ``postgres`` refuses root) on a private data directory and
free ports, and are stopped with everything else.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from schneider_e2e.options import CACHE_DIR_ENV, CLIENT_ID, CLIENT_SECRET, SCRIPTS
from schneider_e2e.services import E2EError, Processes, free_port, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")
DEBIAN_PACKAGES = {"postgresql": PG_BIN / "postgres", "redis-server": Path("/usr/bin/redis-server")}
S3_BUCKET = "schneider-e2e"
S3_CONN_ID = "schneider_e2e_s3"
#: moto's fixed test credentials: not a secret (the S3 server accepts any).
S3_KEY, S3_SECRET = "testing", "testing"


def ensure_debian_packages() -> None:
    """``apt-get install`` PostgreSQL and Redis when their binaries are missing (as in a fresh CI image)."""
    binaries = {"postgresql": _postgres_bin(), "redis-server": DEBIAN_PACKAGES["redis-server"]}
    missing = [name for name, binary in binaries.items() if not binary.exists()]
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, stdout=subprocess.DEVNULL)


def _postgres_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    return versions[-1] if versions else PG_BIN / "postgres"


class Postgres:
    """A private PostgreSQL cluster in a temporary directory owned by ``postgres``, on a free loopback port."""

    def __init__(self, procs: Processes):
        self.procs = procs
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="schneider-e2e-pg-"))
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/airflow"

    def _as_postgres(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)

    def start(self, timeout: float = 60) -> None:
        bindir = _postgres_bin().parent
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
        data, sockets = self.root / "data", self.root / "sockets"
        subprocess.run(
            self._as_postgres(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        subprocess.run(self._as_postgres("mkdir", "-p", str(sockets)), check=True)
        args = [str(bindir / "postgres"), "-D", str(data), "-p", str(self.port), "-k", str(sockets)]
        args += ["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off"]
        args += ["-c", "full_page_writes=off", "-c", "max_connections=300"]
        self.procs.start("postgres", self._as_postgres(*args), dict(os.environ), stop_signal=signal.SIGINT)
        psql = [str(bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAc"]
        wait_for("PostgreSQL", lambda: _ok([*psql, "SELECT 1"]), timeout, self.procs)
        subprocess.run([*psql, "CREATE DATABASE airflow"], check=True, stdout=subprocess.DEVNULL)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def _ok(cmd: list[str]) -> bool:
    return subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False).returncode == 0


def start_redis(procs: Processes, workdir: Path) -> str:
    port = free_port()
    args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir)]
    procs.start("redis", args, dict(os.environ))
    wait_for("Redis", lambda: _ok(["redis-cli", "-p", str(port), "ping"]), 30, procs)
    return f"redis://127.0.0.1:{port}/0"


def start_s3(procs: Processes, python: str) -> str:
    """moto's S3-compatible server on loopback, with the run's bucket."""
    port = free_port()
    moto = str(Path(python).parent / "moto_server")
    procs.start("s3", [moto, "-H", "127.0.0.1", "-p", str(port)], {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"})
    url = f"http://127.0.0.1:{port}"
    wait_for("the S3 server", lambda: _s3_client(url) is not None and _make_bucket(url), 60, procs)
    return url


def _s3_client(url: str) -> Any:
    import boto3

    return boto3.client(
        "s3", endpoint_url=url, aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET, region_name="us-east-1"
    )


def _make_bucket(url: str) -> bool:
    try:
        _s3_client(url).create_bucket(Bucket=S3_BUCKET)
    except Exception as exc:  # noqa: BLE001 - not up yet
        return "BucketAlready" in type(exc).__name__ or "BucketAlready" in str(exc)
    return True


def s3_client(url: str) -> Any:
    return _s3_client(url)


def cluster_environment(
    *,
    workdir: Path,
    db_url: str,
    broker_url: str,
    s3_url: str,
    emulator_url: str,
    api_port: int,
    extra: dict[str, Any],
    parallelism: int,
    worker_concurrency: int,
) -> dict[str, str]:
    """What every component shares (workers add their own host identity with :func:`worker_environment`)."""
    import secrets

    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    home = workdir / "airflow_home"
    connection = {"conn_type": "schneider", "host": emulator_url, "login": CLIENT_ID, "password": CLIENT_SECRET}
    storage = {
        "conn_type": "aws",
        "login": S3_KEY,
        "password": S3_SECRET,
        "extra": {"endpoint_url": s3_url, "region_name": "us-east-1"},
    }
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(workdir / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            # Airflow's own advice for a loaded machine: a task's first Execution API call (PATCH .../run) can
            # take over the 5 s default on a busy 2-core host, and its retry then meets "already running".
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "schneider_e2e.cluster_hosts.hostname",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
            "AIRFLOW__CELERY__BROKER_URL": broker_url,
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db_url,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker_concurrency),
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(24),
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(64),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "300",
            "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "300",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW_CONN_SCHNEIDER_DEFAULT": json.dumps({**connection, "extra": extra}),
            f"AIRFLOW_CONN_{S3_CONN_ID.upper()}": json.dumps(storage),
            "AIRFLOW_PROVIDER_SCHNEIDER_OUTPUT_BASE": f"s3://{S3_BUCKET}/data",
            CACHE_DIR_ENV: str(home / "token_cache"),
            "PYTHONPATH": os.pathsep.join(p for p in (str(SCRIPTS), env.get("PYTHONPATH")) if p),
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    return env


def worker_environment(base: dict[str, str], host_dir: Path, name: str, knobs: dict[str, str]) -> dict[str, str]:
    """A separate host as far as the provider can tell: own AIRFLOW_HOME (pid file, task logs), HOME and
    XDG cache, token cache directory, task-instance hostname."""
    for sub in ("airflow_home", "home", "home/.cache", "token_cache", "pods"):
        (host_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    return {
        **base,
        "AIRFLOW_HOME": str(host_dir / "airflow_home"),
        "HOME": str(host_dir / "home"),
        "XDG_CACHE_HOME": str(host_dir / "home" / ".cache"),
        CACHE_DIR_ENV: str(host_dir / "token_cache"),
        "SCHNEIDER_E2E_HOSTNAME": name,
        "SCHNEIDER_E2E_POD_BASE": str(host_dir / "pods"),
        **knobs,
    }


def wait_port_free(port: int, timeout: float = 10) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) != 0:
                return
        time.sleep(0.2)
    raise E2EError(f"port {port} still in use")
