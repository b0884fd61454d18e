"""Token reuse across task runs, processes and workers: one token request per credential per lifetime.

Tiers, cheapest first: process memory -> host file cache (shared by a worker's processes, locked) ->
cluster cache (an Airflow Variable, shared by all workers through the Task SDK) -> token endpoint.
Shared tiers hold only ciphertext: Fernet with a key derived (HKDF-SHA256) from the client secret, so a
cache entry is useless without the secret, and rotating the secret orphans old entries by itself.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from airflow_provider_schneider.auth import Token
from airflow_provider_schneider.exceptions import SchneiderTokenEndpointError
from airflow_provider_schneider.settings import SchneiderSettings

log = logging.getLogger(__name__)

VARIABLE_PREFIX = "schneider_token_cache_"
_KDF_SALT = b"airflow-provider-schneider/token-cache/v1"


@dataclass(frozen=True)
class CacheKey:
    """Identity of a token: token URL + client id + scope. Same credentials share; others never do."""

    token_url: str
    client_id: str
    scope: str

    @property
    def digest(self) -> str:
        raw = "\n".join((self.token_url, self.client_id, self.scope)).encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    @classmethod
    def for_settings(cls, settings: SchneiderSettings) -> CacheKey:
        return cls(settings.token_url, settings.client_id or "", settings.scope or "")


class TokenCipher:
    """Authenticated encryption of cache entries, keyed by the client secret and the cache key."""

    def __init__(self, client_secret: str, key: CacheKey):
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=_KDF_SALT, info=key.digest.encode()).derive(
            client_secret.encode()
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def seal(self, token: Token) -> str:
        return self._fernet.encrypt(json.dumps(token.to_json()).encode()).decode()

    def open(self, blob: str | bytes | None) -> Token | None:
        """The token in ``blob``, or ``None`` if it is empty, corrupt, truncated or sealed with another key."""
        if not blob:
            return None
        try:
            data = json.loads(self._fernet.decrypt(blob.encode() if isinstance(blob, str) else blob))
        except (InvalidToken, ValueError, TypeError):
            return None
        return Token.from_json(data)


class CacheTier(Protocol):
    name: str

    def read(self) -> Token | None: ...

    def write(self, token: Token) -> None: ...

    def discard(self, token: Token) -> None:
        """Remove the entry only if it still holds ``token`` (a fresher one stored meanwhile is kept)."""


_MEMORY: dict[str, Token] = {}
_MEMORY_GUARD = threading.Lock()
_PROCESS_LOCKS: dict[str, threading.Lock] = {}


def _process_lock(digest: str) -> threading.Lock:
    with _MEMORY_GUARD:
        return _PROCESS_LOCKS.setdefault(digest, threading.Lock())


class MemoryTier:
    """Process-wide: every hook instance in this process shares the token."""

    name = "memory"

    def __init__(self, key: CacheKey):
        self._digest = key.digest

    def read(self) -> Token | None:
        return _MEMORY.get(self._digest)

    def write(self, token: Token) -> None:
        _MEMORY[self._digest] = token

    def discard(self, token: Token) -> None:
        with _MEMORY_GUARD:
            if _MEMORY.get(self._digest) == token:
                del _MEMORY[self._digest]


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "airflow-provider-schneider" / "tokens"


class FileTier:
    """One encrypted file per credential on this host (mode 0600), replaced atomically; flock for refresh."""

    name = "file"

    def __init__(self, directory: Path, key: CacheKey, cipher: TokenCipher):
        self.directory = directory
        self.path = directory / f"{key.digest}.token"
        self.lock_path = directory / f"{key.digest}.lock"
        self._cipher = cipher

    @classmethod
    def create(cls, directory: Path, key: CacheKey, cipher: TokenCipher) -> FileTier | None:
        """The tier, or ``None`` (with a warning) when the directory cannot be made private and writable."""
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not os.access(directory, os.W_OK | os.X_OK):
                raise PermissionError(f"{directory} is not writable")
        except OSError as exc:
            log.warning("Schneider token file cache disabled: %s", exc)
            return None
        return cls(directory, key, cipher)

    def read(self) -> Token | None:
        try:
            return self._cipher.open(self.path.read_bytes())
        except OSError:
            return None

    def write(self, token: Token) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".token")  # created 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(self._cipher.seal(token))
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            log.warning("Could not write Schneider token file cache %s: %s", self.path, exc)

    def discard(self, token: Token) -> None:
        if self.read() == token:
            with contextlib.suppress(OSError):
                self.path.unlink()

    @contextlib.contextmanager
    def locked(self, timeout: float) -> Iterator[None]:
        """Hold the host-wide refresh lock, so only one process per host asks for a token."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise SchneiderTokenEndpointError(
                            f"Timed out after {timeout:.0f}s waiting for another process to refresh the "
                            f"Schneider token (lock {self.lock_path})"
                        ) from None
                    time.sleep(0.02)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class VariableTier:
    """Cluster-wide through an Airflow Variable (Task SDK), so every worker host reuses one token.

    Only usable inside a running task (or anything else with Task SDK comms); outside, the first failure
    turns the tier off for this manager and the other tiers carry on.
    """

    name = "variable"

    def __init__(self, key: CacheKey, cipher: TokenCipher):
        self.variable_key = f"{VARIABLE_PREFIX}{key.digest}"
        self._cipher = cipher
        self.available = True

    def _guard(self, action: str, fn: Callable[[], object]) -> object:
        if not self.available:
            return None
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - a cache must never break a pull
            self.available = False
            log.info(
                "Schneider token cluster cache (Airflow Variable) unavailable for %s: %s", action, type(exc).__name__
            )
            return None

    def read(self) -> Token | None:
        from airflow.sdk import Variable

        blob = self._guard("read", lambda: Variable.get(self.variable_key, default=None))
        return self._cipher.open(blob) if isinstance(blob, str) else None

    def write(self, token: Token) -> None:
        from airflow.sdk import Variable

        self._guard(
            "write",
            lambda: Variable.set(
                self.variable_key,
                self._cipher.seal(token),
                description="airflow-provider-schneider: encrypted OAuth token cache (safe to delete)",
            ),
        )

    def discard(self, token: Token) -> None:
        from airflow.sdk import Variable

        if self.read() == token:
            self._guard("delete", lambda: Variable.delete(self.variable_key))


class TokenManager:
    """Hands out a fresh token from the cheapest tier that has one; refreshes one at a time."""

    def __init__(self, settings: SchneiderSettings, fetch: Callable[[], Token]):
        if not settings.client_secret:
            raise ValueError("TokenManager needs a client secret (API-key connections have no token)")
        self.settings = settings
        self._fetch = fetch
        self.key = CacheKey.for_settings(settings)
        self._lock = _process_lock(self.key.digest)
        self._current: Token | None = None
        self.token_requests = 0
        cipher = TokenCipher(settings.client_secret, self.key)
        tiers = settings.token_cache
        self.memory = MemoryTier(self.key) if "memory" in tiers else None
        directory = Path(settings.token_cache_dir) if settings.token_cache_dir else default_cache_dir()
        self.file = FileTier.create(directory, self.key, cipher) if "file" in tiers else None
        self.variable = VariableTier(self.key, cipher) if "variable" in tiers else None

    @property
    def shared_tiers(self) -> list[CacheTier]:
        return [t for t in (self.file, self.variable) if t is not None]

    def _fresh(self, token: Token | None) -> bool:
        return token is not None and token.is_fresh(self.settings.token_leeway)

    def get_token(self) -> Token:
        """A token that stays valid for at least the leeway; at most one refresh per host at a time."""
        if self._fresh(self._current):
            return self._current  # type: ignore[return-value]
        with self._lock:
            missed: list[str] = []
            token = self._lookup(missed, [self.memory, *self.shared_tiers])
            if token is None:
                with self.file.locked(self.settings.token_wait_timeout) if self.file else contextlib.nullcontext():
                    # Re-check after the lock: another process may have refreshed while we waited.
                    token = self._lookup([], self.shared_tiers) or self._refresh(missed)
            self._current = token
            return token

    def _lookup(self, missed: list[str], tiers: list[CacheTier | None]) -> Token | None:
        for index, tier in enumerate(tiers):
            if tier is None:
                continue
            token = tier.read()
            if self._fresh(token):
                for cheaper in tiers[:index]:  # promote into the cheaper tiers that missed
                    if cheaper is not None:
                        cheaper.write(token)  # type: ignore[arg-type]
                return token
            missed.append(tier.name)
        return None

    def _refresh(self, missed: list[str]) -> Token:
        token = self._fetch()
        self.token_requests += 1
        for tier in (self.memory, *self.shared_tiers):
            if tier is not None:
                tier.write(token)
        log.info(
            "Requested a new Schneider token for connection '%s' (cache miss: %s); valid until %s UTC",
            self.settings.conn_id,
            ", ".join(dict.fromkeys(missed)) or "no cache tiers enabled",
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(token.expires_at)),
        )
        return token

    def invalidate(self, token: Token) -> None:
        """Forget ``token`` (after a 401) in every tier that still holds exactly this token."""
        with self._lock:
            if self._current == token:
                self._current = None
            for tier in (self.memory, *self.shared_tiers):
                if tier is not None:
                    tier.discard(token)
