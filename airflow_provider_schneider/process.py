"""What this provider keeps per process, in one place: the token memory tier, the refresh locks, the tokens
a process saw rejected, the transport's deadline thread, warnings said once; the clock time decides by,
and the one way a process waits for a lock another process holds.

One fork handler keeps a forked task process from inheriting a lock another thread of its parent was
holding (or a deadline thread it does not have); tests start each case from a clean slate with
:meth:`ProcessState.reset`. Stdlib only.
"""

from __future__ import annotations

import os
import threading
import time
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


class ProcessState:
    """The provider's process-wide state. Read through :data:`STATE`; never replaced, only reset."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget everything: what a new process starts with (tests call this between cases)."""
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

    def after_fork(self) -> None:
        """In a forked child: fresh locks (a parent thread may have held one) and no inherited thread."""
        self.lock = threading.Lock()
        self.refresh_locks = {}
        self.watchdog = None

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
