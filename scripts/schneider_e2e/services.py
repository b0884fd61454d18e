"""Processes the run starts (each in its own process group, all stopped at the end) and small helpers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from schneider_e2e.options import WORKDIR_ENV


class E2EError(RuntimeError):
    """The run could not complete (a component died, a command failed, a timeout)."""


# ------------------------------------------------------------------------------------------------ processes


class Processes:
    """Long-running components, each in its own process group; ``stop_all`` always reaps every one."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self._stop_signals: dict[int, int] = {}

    def start(
        self, name: str, args: list[str], env: dict[str, str], stop_signal: int = signal.SIGTERM
    ) -> subprocess.Popen[bytes]:
        """Start ``args``; its output goes to ``<name>.log`` (appended to, for a restarted component)."""
        log_path = self.log_dir / f"{name}.log"
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.started.append((name, proc, log_path))
        self._stop_signals[proc.pid] = stop_signal
        return proc

    def forget(self, proc: subprocess.Popen[bytes]) -> None:
        """Drop a process that has exited (so ``check_alive`` no longer reports it)."""
        self.started = [entry for entry in self.started if entry[1] is not proc]
        self._stop_signals.pop(proc.pid, None)

    def check_alive(self) -> None:
        for name, proc, log_path in self.started:
            if proc.poll() is not None:
                raise E2EError(f"{name} exited with status {proc.returncode}; last lines:\n{tail(log_path)}")

    def stop_all(self, grace: float = 20.0) -> None:
        for _name, proc, _log in reversed(self.started):
            _signal_group(proc, self._stop_signals.get(proc.pid, signal.SIGTERM))
        deadline = time.monotonic() + grace
        for _name, proc, _log in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for _name, proc, _log in self.started:
            _signal_group(proc, signal.SIGKILL)  # stragglers of the group (task processes, api workers)
            if proc.poll() is None:
                proc.wait()
        self.started.clear()
        self._stop_signals.clear()


def marked_pids(workdir: Path) -> list[int]:
    """Processes of this run found by the marker in their environment: also those that left our process
    groups (executor workers and task supervisors may start sessions of their own)."""
    marker = f"{WORKDIR_ENV}={workdir}\0".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
    return pids


def kill_marked(workdir: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while (pids := marked_pids(workdir)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def airflow_cli(args: list[str], env: dict[str, str], timeout: float = 180) -> str:
    """Run ``airflow ARGS`` to completion in its own process group; its output, or E2EError on failure."""
    cmd = [sys.executable, "-m", "airflow", *args]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except BaseException:
        _signal_group(proc, signal.SIGKILL)
        proc.wait()
        raise
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise E2EError(f"airflow {' '.join(args)} failed ({proc.returncode}):\n{text[-3000:]}")
    return text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_ok(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=3) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


def wait_for(what: str, predicate: Callable[[], bool], timeout: float, procs: Processes, every: float = 0.5) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        procs.check_alive()
        if time.monotonic() > deadline:
            raise E2EError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@contextlib.contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so the ``finally`` blocks stop every process we started."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
