"""Cancel scopes: end the calls a fan-out started when its consumer goes away (timeout, SIGTERM, an error).

A scope is bound to the worker threads of one fan-out. Cancelling it shuts down the sockets of the calls in
flight under it (so a thread stuck in ``recv`` returns at once), makes any later attempt under it fail
before it starts, and wakes retry back-off sleeps. Threads are never joined: a stuck thread cannot hold up
the task that is ending.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from airflow_provider_schneider.exceptions import SchneiderError


class PullCancelled(SchneiderError):
    """The call belonged to a pull that is being torn down (its consumer stopped or failed)."""


class CancelScope:
    """Cancellation shared by the threads of one fan-out."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._on_cancel: set[Callable[[], None]] = set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            callbacks = list(self._on_cancel)
        for callback in callbacks:
            callback()

    def add_callback(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` on cancel (at once if already cancelled)."""
        with self._lock:
            if not self._event.is_set():
                self._on_cancel.add(callback)
                return
        callback()

    def remove_callback(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._on_cancel.discard(callback)

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; ``True`` if the scope was cancelled meanwhile."""
        return self._event.wait(seconds)


_local = threading.local()


def current_scope() -> CancelScope | None:
    return getattr(_local, "scope", None)


@contextlib.contextmanager
def within(scope: CancelScope | None) -> Iterator[None]:
    """Run the block with ``scope`` as this thread's cancel scope."""
    previous = current_scope()
    _local.scope = scope
    try:
        yield
    finally:
        _local.scope = previous


def check_cancelled(what: str) -> None:
    scope = current_scope()
    if scope is not None and scope.cancelled:
        raise PullCancelled(f"{what} not started: the pull it belongs to was cancelled")


def cancellable_sleep(seconds: float) -> None:
    """``time.sleep`` that a cancelled scope interrupts (used for retry back-off)."""
    scope = current_scope()
    if scope is None:
        time.sleep(seconds)
    elif scope.wait(seconds):
        raise PullCancelled("retry abandoned: the pull it belongs to was cancelled")
