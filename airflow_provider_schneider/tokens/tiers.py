"""The token cache's tiers: process memory, an encrypted host file, an encrypted Airflow Variable.

Shared tiers hold only ciphertext sealed by :mod:`.sealing` (keyed by the client secret and the cache key).
Anything unreadable (corrupt, truncated, foreign, implausible) is a miss and gets overwritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from airflow_provider_schneider.process import STATE, SYSTEM_CLOCK, Clock, flock_within, private_directory
from airflow_provider_schneider.tokens.sealing import MAX_ENTRY_BYTES, CacheKey, TokenCipher
from airflow_provider_schneider.tokens.token import Token, same_token

log = logging.getLogger(__name__)

VARIABLE_PREFIX = "schneider_token_cache_"
LEASE_VARIABLE_PREFIX = "schneider_token_lease_"


class CacheTier(Protocol):
    """What the token manager asks of a tier."""

    name: str
    #: The last :meth:`read` found an entry it could not use (corrupt, foreign, another secret).
    unreadable: bool
    #: Reads cost a call to another service (bounded by ``token_wait_timeout``), not a local lookup.
    remote: bool

    def status(self) -> str | None:
        """``None`` when the tier can be used now, else why not (said in the token-request log line)."""

    def read(self) -> Token | None: ...

    def write(self, token: Token) -> None: ...

    def discard(self, token: Token) -> None:
        """Remove the entry only if it still holds ``token`` (a fresher one stored meanwhile is kept)."""


class MemoryTier:
    """Process-wide: every hook instance in this process shares the token."""

    name = "memory"
    unreadable = False
    remote = False

    def __init__(self, key: CacheKey, cipher: TokenCipher):
        self._slot = f"{key.digest}/{cipher.fingerprint}"

    def status(self) -> str | None:
        return None

    def read(self) -> Token | None:
        token = STATE.tokens.get(self._slot)
        return token if isinstance(token, Token) else None

    def write(self, token: Token) -> None:
        STATE.tokens[self._slot] = token

    def discard(self, token: Token) -> None:
        with STATE.lock:
            if same_token(STATE.tokens.get(self._slot), token):
                del STATE.tokens[self._slot]


class FileTier:
    """One encrypted file per credential on this host (0600, in a 0700 directory), replaced atomically.

    ``locked()`` is the host-wide refresh lock (``flock`` on a sibling ``.lock`` file). Needs a local
    file system: ``flock`` is not reliable on every network file system.
    """

    name = "file"
    remote = False

    def __init__(self, directory: Path, key: CacheKey, cipher: TokenCipher):
        self.directory = directory
        self.path = directory / f"{key.digest}.token"
        self.lock_path = directory / f"{key.digest}.lock"
        self._cipher = cipher
        #: The last read found an entry it could not use (corrupt, truncated, foreign key or rotated secret).
        self.unreadable = False

    def status(self) -> str | None:
        return None

    @classmethod
    def create(cls, directory: Path, key: CacheKey, cipher: TokenCipher) -> FileTier | None:
        """The tier, or ``None`` (with a warning) when the directory cannot be made private and writable."""
        try:
            private_directory(directory)
        except OSError as exc:
            log.warning("Schneider token file cache disabled: %s", exc)
            return None
        return cls(directory, key, cipher)

    def read(self) -> Token | None:
        self.unreadable = False
        try:  # never follow a planted symlink, never block on a planted FIFO
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError:
            self.unreadable = True
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise IsADirectoryError("not a regular file")
            blob = os.read(fd, MAX_ENTRY_BYTES + 1)  # a regular file gives the whole (small) entry at once
        except OSError:  # a directory, FIFO, device or socket where the entry belongs
            blob = b"?"
        finally:
            os.close(fd)
        token = self._cipher.open(blob)
        self.unreadable = token is None and bool(blob)
        return token

    def write(self, token: Token) -> None:
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".token")  # created 0600
        except OSError as exc:
            log.warning("Could not write Schneider token file cache %s: %s", self.path, exc)
            return
        try:
            with os.fdopen(fd, "w") as handle:  # owns the descriptor from here: closed once, whatever happens
                blob = self._cipher.seal(token)
                if blob is None:
                    raise ValueError("entry too large")
                handle.write(blob)
            os.replace(tmp, self.path)
        except (OSError, ValueError) as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if isinstance(exc, OSError):
                log.warning("Could not write Schneider token file cache %s: %s", self.path, exc)

    def discard(self, token: Token) -> None:
        """Call with :meth:`locked` held, so no peer can store a fresher token between compare and delete."""
        if same_token(self.read(), token):
            with contextlib.suppress(OSError):
                self.path.unlink()

    @contextlib.contextmanager
    def locked(self, timeout: float, clock: Clock = SYSTEM_CLOCK) -> Iterator[bool]:
        """Hold the host-wide refresh lock; yields ``False`` if it could not be had within ``timeout``.

        The kernel drops an ``flock`` when its holder dies, so a timeout means a live peer is stuck (on a
        slow token endpoint or Variable API): the caller then carries on without the lock rather than fail.
        """
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise OSError(f"{self.lock_path} is not a regular file")
        except OSError as exc:
            log.warning("Schneider token cache lock %s unavailable: %s", self.lock_path, exc)
            yield False
            return
        try:
            if not flock_within(fd, timeout, clock, longest_pause=0.05):
                log.warning(
                    "Waited %.0fs for another process to refresh the Schneider token (lock %s); "
                    "continuing without the lock",
                    timeout,
                    self.lock_path,
                )
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def in_task_context() -> bool:
    """True where the Task SDK can reach the API server (a running task, ``dag.test()``, a triggerer)."""
    try:
        from airflow.sdk.execution_time import task_runner
    except ImportError:  # pragma: no cover - Task SDK missing
        return False
    return getattr(task_runner, "SUPERVISOR_COMMS", None) is not None


class VariableTier:
    """Cluster-wide through an Airflow Variable (Task SDK), so every worker host reuses one token.

    Used only inside a running task: elsewhere (a plain script, the scheduler, a DAG file) Variable writes
    have no channel, so the tier stays off and the other tiers carry on. Inside a task, the first failing
    call turns it off for this process (a cache must never break a pull); a slow Variable API only delays
    the one process per host that holds the refresh lock, and only once per token lifetime.

    The Variable API has no compare-and-swap: ``discard`` reads, compares, then deletes, so a peer's write
    landing in between can be lost. The worst case is one extra token request, never a wrong token.
    """

    name = "variable"
    remote = True

    def __init__(self, key: CacheKey, cipher: TokenCipher):
        self.variable_key = f"{VARIABLE_PREFIX}{key.digest}"
        self._cipher = cipher
        self.unavailable_reason: str | None = None
        self.unreadable = False

    def status(self) -> str | None:
        """``None`` when usable, else why not (shown in the token-request log line)."""
        if self.unavailable_reason is not None:
            return self.unavailable_reason
        return None if in_task_context() else "outside a task"

    def _call(self, action: str, fn: Callable[[], object]) -> object:
        if self.status() is not None:
            return None
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - a cache must never break a pull
            self.unavailable_reason = f"{action} failed: {type(exc).__name__}"
            log.warning(
                "Schneider token cluster cache (Airflow Variable %s) off for this process: %s failed (%s)",
                self.variable_key,
                action,
                type(exc).__name__,
            )
            return None

    def read(self) -> Token | None:
        from airflow.sdk import Variable

        blob = self._call("read", lambda: Variable.get(self.variable_key, default=None))
        token = self._cipher.open(blob) if isinstance(blob, str) else None
        self.unreadable = token is None and bool(blob)
        return token

    def write(self, token: Token) -> None:
        from airflow.sdk import Variable

        blob = self._cipher.seal(token)
        if blob is None:
            return
        self._call(
            "write",
            lambda: Variable.set(
                self.variable_key,
                blob,
                description="airflow-provider-schneider: encrypted OAuth token cache (safe to delete)",
            ),
        )

    def discard(self, token: Token) -> None:
        from airflow.sdk import Variable

        if same_token(self.read(), token):
            self._call("delete", lambda: Variable.delete(self.variable_key))

    def lease_store(self) -> VariableLeaseStore:
        """The Variable holding the cross-host renewal lease of this credential (see :mod:`.lease`)."""
        return VariableLeaseStore(self, f"{LEASE_VARIABLE_PREFIX}{self.variable_key[len(VARIABLE_PREFIX) :]}")


class VariableLeaseStore:
    """A lease value in its own Variable, through the tier's guarded calls: a failure turns the tier off."""

    def __init__(self, tier: VariableTier, key: str):
        self.tier = tier
        self.key = key

    @property
    def ok(self) -> bool:
        return self.tier.status() is None

    def get(self) -> str | None:
        from airflow.sdk import Variable

        value = self.tier._call("lease read", lambda: Variable.get(self.key, default=None))
        return value if isinstance(value, str) else None

    def set(self, value: str) -> None:
        from airflow.sdk import Variable

        description = "airflow-provider-schneider: token renewal lease, no secret (safe to delete)"
        self.tier._call("lease write", lambda: Variable.set(self.key, value, description=description))

    def delete(self) -> None:
        from airflow.sdk import Variable

        self.tier._call("lease delete", lambda: Variable.delete(self.key))
