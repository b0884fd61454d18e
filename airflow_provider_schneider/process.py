"""What this provider keeps per process, in one place: the token memory tier, the refresh locks, the tokens
a process saw rejected, the transport's deadline thread, the host's call slots and pacing files it opened,
warnings said once; the clock time decides by, the host's private cache folder, and the one way a process
waits for a lock another process holds.

One fork handler keeps a forked task process from inheriting a lock another thread of its parent was
holding (or a deadline thread it does not have); tests start each case from a clean slate with
:meth:`ProcessState.reset`. Stdlib only.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any, Protocol


class Clock(Protocol):
    """Where time decides: wall time (token expiry, leases), monotonic time (deadlines) and sleeping."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock (tests pass a fake one with the same three methods)."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK: Clock = SystemClock()


def flock_within(fd: int, seconds: float, clock: Clock = SYSTEM_CLOCK, *, longest_pause: float = 0.25) -> bool:
    """Take an exclusive ``flock`` on ``fd``, polling with a growing pause; ``False`` once ``seconds`` passed
    without it (the kernel drops a dead holder's lock, so a timeout means a live holder is stuck). Other
    ``OSError``s (a filesystem that cannot lock this kind of file) propagate."""
    import fcntl

    deadline = clock.monotonic() + seconds
    pause = 0.005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if clock.monotonic() > deadline:
                return False
            clock.sleep(pause)
            pause = min(pause * 2, longest_pause)


def default_cache_dir() -> Path:
    """The host cache folder of token files (and, under ``calls/``, the call slots of each client)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "airflow-provider-schneider" / "tokens"


def private_directory(directory: Path) -> Path:
    """Make ``directory`` (0700) and refuse one someone else could redirect: it must not be a symlink and must
    be ours; inside a world-writable folder (``/tmp``) no component may be a symlink or another user's.
    ``OSError`` says why not."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = Path(os.path.abspath(directory))
    leaf = os.lstat(path)
    if stat.S_ISLNK(leaf.st_mode):
        raise PermissionError(f"{path} is a symlink; point token_cache_dir at a real directory")
    if leaf.st_uid != os.geteuid():
        raise PermissionError(f"{path} belongs to another user (uid {leaf.st_uid})")
    for component in [path, *path.parents][:-1]:
        parent_mode = os.stat(component.parent).st_mode
        if not parent_mode & stat.S_IWOTH:
            continue
        info = os.lstat(component)
        if stat.S_ISLNK(info.st_mode):
            raise PermissionError(f"{component} is a symlink inside world-writable {component.parent}")
        if info.st_uid not in (os.geteuid(), 0):
            raise PermissionError(f"{component} inside world-writable {component.parent} belongs to uid {info.st_uid}")
    if stat.S_IMODE(leaf.st_mode) & 0o077:
        os.chmod(directory, 0o700)
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(f"{directory} is not writable")
    return directory


class ProcessState:
    """The provider's process-wide state. Read through :data:`STATE`; never replaced, only reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything: what a new process starts with (tests call this between cases)."""
        for host in getattr(self, "hosts", {}).values():
            host.forget()  # closing its files releases the slots this process held
        self.lock = threading.Lock()
        #: The memory token tier: ``"<cache key digest>/<secret fingerprint>"`` -> token.
        self.tokens: dict[str, Any] = {}
        #: One refresh lock per credential (single flight between the threads of this process).
        self.refresh_locks: dict[str, threading.Lock] = {}
        #: Per credential, ids of tokens the gateway answered 401 to -> when this process first saw that.
        self.rejected: dict[str, dict[str, float]] = {}
        #: Things said once per process (a ``token_type`` that is not "bearer", ...).
        self.said: set[str] = set()
        #: The transport's deadline watchdog (a thread), started on first use.
        self.watchdog: Any = None
        #: Per client folder: the host's call slots and pacing file as this process opened them
        #: (:mod:`airflow_provider_schneider.client.host`).
        self.hosts: dict[str, Any] = {}

    def after_fork(self) -> None:
        """In a forked child: fresh locks (a parent thread may have held one) and no inherited thread."""
        self.lock = threading.Lock()
        self.refresh_locks = {}
        self.watchdog = None
        inherited, self.hosts = self.hosts, {}
        for host in inherited.values():  # the parent's open files: a lock on them is the parent's, not ours
            host.forget()

    def refresh_lock(self, key: str) -> threading.Lock:
        with self.lock:
            return self.refresh_locks.setdefault(key, threading.Lock())

    def say_once(self, what: str) -> bool:
        """``True`` the first time ``what`` is asked about in this process."""
        with self.lock:
            if what in self.said:
                return False
            self.said.add(what)
            return True


STATE = ProcessState()
os.register_at_fork(after_in_child=STATE.after_fork)
