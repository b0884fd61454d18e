"""What the processes of one host share per client: at most N calls in flight, a cool-down after a throttle,
and (optionally) a calls-per-second pace.

Schneider allows 10 parallel calls per client, and a deployment is many processes (task runs, mapped tasks,
a backfill's parallel runs): a per-task cap cannot hold that. The host's share lives in a folder per client
(API host + client id, as a digest) under the private token cache folder:

- ``slot-000`` .. ``slot-NNN``: a call holds an exclusive ``flock`` on one slot file for as long as it is at
  the gateway. The kernel drops the lock when a process dies, so a killed task never leaks a slot. ``flock``
  belongs to an open file, so the threads of one process keep a set of the slots their process holds (a
  second ``flock`` through the same open file would just succeed), and a forked child never uses its parent's
  open files (:meth:`HostCalls.forget`).
- ``pace``: 16 bytes mapped into every process: when the host's cool-down ends, and the next free moment of
  the shared token bucket. Read without a lock on every call (two aligned 8-byte doubles); written under
  ``flock``. Wall-clock seconds, so every process of the host reads one clock; every wait taken from the
  file is capped, so a clock jump or a garbage value cannot stall a call longer than the cap.

Stdlib only; a folder that cannot be made private turns the host share off with a warning (the per-process
limits still hold).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import mmap
import os
import random
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from airflow_provider_schneider.client.cancellation import cancellable_sleep, check_cancelled
from airflow_provider_schneider.exceptions import SchneiderError
from airflow_provider_schneider.process import STATE, default_cache_dir, private_directory

log = logging.getLogger(__name__)

_PACE = struct.Struct("=dd")  # cool_until, next_free (wall seconds)
#: Longest pause between two looks at the slots while all are taken.
_LONGEST_POLL = 0.01


class SlotWaitTimeout(SchneiderError):
    """Every slot of the host stayed taken for the whole wait."""


def client_folder(api_base_url: str, client: str, cache_dir: str | None) -> Path:
    """The folder of one client's host share (the client id or api key only as part of a digest)."""
    digest = hashlib.sha256(f"{api_base_url}\n{client}".encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return Path(cache_dir or default_cache_dir()) / "calls" / digest


class HostCalls:
    """This process's handle on one client's host share: ``size`` slot files and the pace file."""

    def __init__(self, folder: Path, size: int):
        self.folder, self.size = folder, size
        self._lock = threading.Lock()
        self._fds: dict[int, int] = {}
        self._held: set[int] = set()
        fd = os.open(folder / "pace", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            if os.fstat(fd).st_size < _PACE.size:
                os.ftruncate(fd, _PACE.size)
            self._pace = mmap.mmap(fd, _PACE.size)
        except BaseException:
            os.close(fd)
            raise
        self._pace_fd = fd

    @classmethod
    def open(cls, folder: Path, size: int) -> HostCalls | None:
        """The process's handle on ``folder`` (one per folder and process), or ``None`` when the folder cannot
        be made private (said once)."""
        key = f"{folder}#{size}"
        with STATE.lock:
            found = STATE.hosts.get(key)
            if found is not None:
                return found
            try:
                private_directory(folder)
                found = STATE.hosts[key] = cls(folder, size)
            except OSError as exc:
                if key not in STATE.said:
                    STATE.said.add(key)
                    log.warning(
                        "Schneider: the host-wide cap on calls in flight is off for this client (%s); only each "
                        "task's max_concurrency applies",
                        exc,
                    )
                return None
        return found

    # -- slots ------------------------------------------------------------------------------------------------

    def _fd(self, index: int) -> int:
        fd = self._fds.get(index)
        if fd is None:
            path = self.folder / f"slot-{index:03d}"
            fd = self._fds[index] = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        return fd

    def try_take(self) -> int | None:
        """A free slot, now, or ``None``."""
        start = random.randrange(self.size)
        with self._lock:
            for step in range(self.size):
                index = (start + step) % self.size
                if index in self._held:
                    continue
                try:
                    fcntl.flock(self._fd(index), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                self._held.add(index)
                return index
        return None

    def release(self, index: int) -> None:
        with self._lock:
            if index in self._held:
                self._held.discard(index)
                fcntl.flock(self._fds[index], fcntl.LOCK_UN)

    @contextlib.contextmanager
    def slot(self, wait: float, what: str) -> Iterator[None]:
        """Hold one slot for the block; wait at most ``wait`` seconds for one (then :class:`SlotWaitTimeout`)."""
        index = self.try_take()
        if index is None:
            index = self._wait_for_slot(wait, what)
        try:
            yield
        finally:
            self.release(index)

    def _wait_for_slot(self, wait: float, what: str) -> int:
        deadline = time.monotonic() + wait
        pause = 0.001
        while True:
            check_cancelled(what)
            index = self.try_take()
            if index is not None:
                return index
            if time.monotonic() > deadline:
                raise SlotWaitTimeout(
                    f"{what}: all {self.size} calls this client may have in flight on this host stayed busy for "
                    f"{wait:g} s (client_max_in_flight; other tasks of this host use the same client)"
                )
            cancellable_sleep(pause * (0.5 + random.random()))
            pause = min(pause * 2, _LONGEST_POLL)

    # -- the pace file ---------------------------------------------------------------------------------------------

    def cool_down_left(self, now: float, longest: float) -> float:
        """Seconds until the host's cool-down ends (0 if none; at most ``longest``)."""
        cool_until, _ = _PACE.unpack_from(self._pace)
        left = cool_until - now
        return min(left, longest) if left == left and left > 0 else 0.0

    def cool_down(self, seconds: float) -> None:
        """Nobody on this host calls this client for ``seconds`` (or longer, if another process asked so)."""
        with self._pace_locked():
            cool_until, next_free = _PACE.unpack_from(self._pace)
            until = time.time() + seconds
            if not cool_until == cool_until or until > cool_until:
                _PACE.pack_into(self._pace, 0, until, next_free)

    def reserve(self, rate: float, longest: float) -> float:
        """Reserve the next moment the host's token bucket (``rate`` calls per second, no burst) allows a call;
        the seconds to wait for it (at most ``longest``)."""
        with self._pace_locked():
            cool_until, next_free = _PACE.unpack_from(self._pace)
            now = time.time()
            if not next_free == next_free or not now - 1 <= next_free <= now + longest:  # garbage or a clock jump
                next_free = now
            moment = max(now, next_free)
            _PACE.pack_into(self._pace, 0, cool_until, moment + 1.0 / rate)
        return moment - now

    @contextlib.contextmanager
    def _pace_locked(self) -> Iterator[None]:
        fcntl.flock(self._pace_fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._pace_fd, fcntl.LOCK_UN)

    # -- the end ---------------------------------------------------------------------------------------------------

    def forget(self) -> None:
        """In a forked child: close the parent's open files without unlocking them (a lock on them is the
        parent's), so this process opens its own."""
        for fd in [*self._fds.values(), self._pace_fd]:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(Exception):
            self._pace.close()
        self._fds, self._held = {}, set()
