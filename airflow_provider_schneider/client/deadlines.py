"""The deadline of a blocking attempt: a watchdog thread shuts the attempt's sockets down when time is up.

``requests``' read timeout is per socket read; a thread blocked in ``recv`` on a dripping server only
returns when the socket is shut down under it. One daemon thread per process keeps a heap of the attempts'
deadlines; it ends when no attempt has been in flight for a while (and starts again with the next one).
"""

from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time

from urllib3.connection import HTTPConnection

from airflow_provider_schneider.process import STATE


class AttemptGuard:
    """Watches the connections one attempt uses; :meth:`fire` shuts their sockets down."""

    def __init__(self, seconds: float):
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.fired: str | None = None  # "deadline" or "cancelled"
        self._connections: list[HTTPConnection] = []
        self._lock = threading.Lock()
        self._done = False

    def watch(self, connection: HTTPConnection) -> None:
        """Watch ``connection``; if the guard already fired, shut it and refuse to go on: a request must not
        leave after its pull was cancelled or its deadline passed (the cancel may land between the attempt's
        own check and the socket being opened, when there was nothing yet to shut)."""
        with self._lock:
            if self._done:
                return
            connection._schneider_guard = self  # type: ignore[attr-defined]
            if connection not in self._connections:
                self._connections.append(connection)
            fired = self.fired
        if fired:
            shutdown(connection)
            raise ConnectionAbortedError(f"request not sent: the attempt ended ({fired})")

    def fire(self, why: str) -> None:
        with self._lock:
            if self._done or self.fired:
                return
            self.fired = why
            connections = [c for c in self._connections if getattr(c, "_schneider_guard", None) is self]
        for connection in connections:
            shutdown(connection)

    @property
    def done(self) -> bool:
        return self._done

    def close(self) -> None:
        """The attempt is over: a late deadline must not touch its (pooled, maybe reused) connections."""
        with self._lock:
            self._done = True
            self._connections.clear()  # the heap keeps the guard until its deadline; not the connections


def shutdown(connection: HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    if sock is not None:
        try:  # the plain socket's shutdown, also for TLS: wakes a blocked reader without touching SSL state
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


#: The deadline thread ends after this long without an attempt in flight (a triggerer that renews a token
#: once an hour keeps no thread for it); the next attempt starts it again.
_WATCHDOG_IDLE_EXIT = 2.0


class _Watchdog:
    """One daemon thread firing guards whose deadline passed (a heap; finished guards are dropped)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, AttemptGuard]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, guard: AttemptGuard) -> None:
        with self._cond:
            heapq.heappush(self._heap, (guard.deadline, next(self._counter), guard))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="schneider-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        idle_since: float | None = None
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].done:  # finished attempts: nothing left to fire
                    heapq.heappop(self._heap)
                if not self._heap:
                    now = time.monotonic()
                    idle_since = now if idle_since is None else idle_since
                    if now - idle_since >= _WATCHDOG_IDLE_EXIT:  # no call for a while: no thread kept
                        self._thread = None
                        return
                    self._cond.wait(_WATCHDOG_IDLE_EXIT)
                    continue
                idle_since = None
                deadline, _, guard = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(min(delay, _WATCHDOG_IDLE_EXIT))
                    continue
                heapq.heappop(self._heap)
            guard.fire("deadline")


_local = threading.local()


def watchdog() -> _Watchdog:
    """The process's one deadline thread (in :data:`~airflow_provider_schneider.process.STATE`, which a fork
    resets: a forked child starts its own)."""
    with STATE.lock:
        if STATE.watchdog is None:
            STATE.watchdog = _Watchdog()
        watchdog: _Watchdog = STATE.watchdog
        return watchdog


def current_guard() -> AttemptGuard | None:
    """The guard of the attempt this thread is in (guards nest: a token fetch inside an API attempt)."""
    return getattr(_local, "guard", None)


def set_current_guard(guard: AttemptGuard | None) -> None:
    _local.guard = guard
