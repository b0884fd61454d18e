"""Where outputs live and how they move into place: storage paths, writer-owned temporaries, atomic commits.

Every writer stages under names that carry its own tag (host, process, start time, random part), so two
writers of one target (a zombie and its retry, two DAGs sharing a path) never touch each other's
temporaries. A leftover temporary is removed only when provably stale: its writer ran on this host and that
process is gone, or it was last modified longer ago than :data:`STALE_AFTER` (a live local writer keeps
touching its file; an object-store upload is invisible until it completes).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
#: Staged chunks of a resumable pull: ``.<target name>.resume-<task>-<first>-<last>-<nonce>.jsonl.gz``.
RESUME_INFIX = ".resume-"
#: A temporary nobody has modified for this long belongs to a writer that is gone (seconds; 24 h).
STALE_AFTER = 24 * 3600.0
_LOCAL_PROTOCOLS = ("file", "local", "")
_TAG = re.compile(
    r"\.w-(?P<host>[A-Za-z0-9-]{1,40}-[0-9a-f]{8})-(?P<pid>\d+)-(?P<started>\d+)-[0-9a-f]{8}"
    + re.escape(PARTIAL_SUFFIX)
    + "$"
)


def to_storage_path(uri: str, conn_id: str | None = None) -> Any:
    """An ``ObjectStoragePath`` for schemes Airflow knows (file, and s3/gs/... from installed providers);
    any other fsspec scheme (``memory://``, ``sftp://`` ...) through ``universal_pathlib`` directly."""
    from airflow.sdk import ObjectStoragePath

    scheme = uri.split("://", 1)[0] if "://" in uri else ""
    if scheme and scheme not in _LOCAL_PROTOCOLS:
        from airflow.sdk.io.fs import has_fs

        if not has_fs(scheme):
            from upath import UPath

            return UPath(uri)
    return ObjectStoragePath(uri, conn_id=conn_id) if conn_id else ObjectStoragePath(uri)


def is_local(path: Any) -> bool:
    return getattr(path, "protocol", "") in _LOCAL_PROTOCOLS


def _namespace_facts() -> str:
    """What tells this host's processes apart from another's that shares the name: containers with one
    hostname (host networking) have their own PID namespace, machines their own boot id."""
    facts = []
    with contextlib.suppress(OSError), open("/proc/sys/kernel/random/boot_id") as boot:
        facts.append(boot.read().strip())
    with contextlib.suppress(OSError):
        facts.append(os.readlink("/proc/self/ns/pid"))
    return "|".join(facts)


@functools.lru_cache(maxsize=1)
def _host_label() -> str:
    """A readable prefix of the hostname plus a hash of the full name, boot id and PID namespace: two hosts
    (or containers) never share a label, so a PID is only ever looked up where it lives."""
    name = socket.gethostname()
    readable = re.sub(r"[^A-Za-z0-9]+", "-", name)[:24].strip("-") or "host"
    digest = hashlib.sha256(f"{name}|{_namespace_facts()}".encode()).hexdigest()[:8]
    return f"{readable}-{digest}"


@dataclass(frozen=True)
class WriterTag:
    """The identity one writer stamps on its temporaries: ``.w-<host>-<pid>-<start>-<random>.partial``."""

    host: str
    pid: int
    started: int
    nonce: str

    @classmethod
    def new(cls) -> WriterTag:
        return cls(_host_label(), os.getpid(), int(time.time()), secrets.token_hex(4))

    @property
    def suffix(self) -> str:
        return f".w-{self.host}-{self.pid}-{self.started}-{self.nonce}{PARTIAL_SUFFIX}"

    def temporary(self, target: Any) -> Any:
        """The temporary sibling of ``target`` this writer stages into (hidden: a leading dot)."""
        return target.parent / f".{target.name}{self.suffix}"


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


_MTIME_KEYS = ("mtime", "LastModified", "last_modified", "updated", "created")


def _modified_at(path: Any) -> float | None:
    """When ``path`` was last written, or ``None`` when the store does not say. Local files: ``st_mtime``;
    object stores: the backend's own key in ``fs.info`` (a prefix, i.e. a folder, has none: unknown, never
    0, so it is never taken for ancient)."""
    with contextlib.suppress(Exception):
        if is_local(path):
            return float(os.stat(path.path).st_mtime)
        info = path.fs.info(path.path)
        for key in _MTIME_KEYS:
            value = info.get(key)
            if value:
                stamp = float(value.timestamp()) if hasattr(value, "timestamp") else float(value)
                return stamp if stamp > 0 else None
    return None


def is_provably_stale(path: Any, *, now: float | None = None, stale_after: float = STALE_AFTER) -> bool:
    """True only for a temporary whose writer cannot still be writing it (see the module docstring)."""
    match = _TAG.search(path.name)
    if match is not None and is_local(path) and match["host"] == _host_label() and _process_gone(int(match["pid"])):
        return True
    modified = _modified_at(path)
    return modified is not None and (now or time.time()) - modified > stale_after


def stale_temporaries(target: Any, own: WriterTag | None = None) -> Iterator[Any]:
    """Temporaries of ``target`` (any writer's) that are provably stale, never ``own``'s; also the staged
    chunks of a resumable pull nobody resumed (by age only: their owner is a task instance, not a process)."""
    with contextlib.suppress(Exception):
        for candidate in target.parent.glob(f".{target.name}.*{PARTIAL_SUFFIX}"):
            if own is not None and candidate.name.endswith(own.suffix):
                continue
            if is_provably_stale(candidate):
                yield candidate
    with contextlib.suppress(Exception):
        for chunk in target.parent.glob(f".{target.name}{RESUME_INFIX}*.jsonl.gz"):
            if is_provably_stale(chunk):  # no writer tag in a chunk's name: the age rule decides
                yield chunk


def remove_stale_temporaries(target: Any, own: WriterTag | None = None) -> int:
    removed = 0
    for stale in list(stale_temporaries(target, own)):
        log.info("Removing leftover temporary %s (its writer is gone)", stale)
        with contextlib.suppress(Exception):
            remove_tree(stale)
            removed += 1
    return removed


def remove_tree(path: Any) -> None:
    """Delete a file or a folder of files (local or object store)."""
    if is_local(path):
        if os.path.isdir(path.path):
            shutil.rmtree(path.path, ignore_errors=True)
        elif os.path.lexists(path.path):
            os.unlink(path.path)
        return
    if path.is_dir():
        path.fs.rm(path.path, recursive=True)
    elif path.exists():
        path.unlink()


def sync_file(raw: Any) -> None:
    """Make a local file's bytes durable before it is committed (object stores are durable once uploaded)."""
    fileno = getattr(raw, "fileno", None)
    if fileno is not None:
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            raw.flush()
            os.fsync(fileno())


def commit_file(temporary: Any, target: Any) -> None:
    """Move one staged file into place: readers see the old object or the new one, never a mix."""
    if is_local(target):
        os.replace(temporary.path, target.path)  # atomic within one filesystem
    else:
        # Object stores have no rename: a server-side copy (atomic per object), then the delete.
        temporary.rename(target)


@contextlib.contextmanager
def _local_commit_lock(target: Any) -> Iterator[None]:
    """Serialise set commits into one local folder across processes: ``flock`` on the parent directory
    itself (no lock file left behind; commits are two renames, so waiting on a sibling's is brief)."""
    import fcntl

    fd = os.open(os.path.dirname(target.path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def commit_folder(staged: Any, target: Any, tag: WriterTag) -> None:
    """Replace the folder ``target`` by the complete folder ``staged`` (a part set).

    Local filesystems: under a per-target lock, the old folder is renamed aside, the new one renamed in,
    the old one deleted; concurrent writers commit one after the other, the folder is always one writer's
    whole set (between the two renames it is absent for an instant). Object stores: under a commit lock
    (:func:`_object_store_commit_lock`), each part is copied into place, then parts of an earlier, longer
    set are deleted; a reader listing the folder during the commit can see both (docs/outputs.md).
    """
    if is_local(target):
        with _local_commit_lock(target):
            aside = target.parent / f".{target.name}.replaced{tag.suffix}"
            had_old = os.path.isdir(target.path)
            if had_old:
                os.rename(target.path, aside.path)
            try:
                os.rename(staged.path, target.path)
            except BaseException:
                if had_old:
                    os.rename(aside.path, target.path)  # the previous set stays as it was
                raise
            if had_old:
                shutil.rmtree(aside.path, ignore_errors=True)
        return
    with _object_store_commit_lock(target, tag):
        names = set()
        for part in sorted(staged.iterdir(), key=lambda p: p.name):
            names.add(part.name)
            part.rename(target / part.name)
        with contextlib.suppress(FileNotFoundError):
            for existing in target.iterdir():
                if existing.name.startswith("part-") and existing.name not in names:
                    existing.unlink()
    remove_tree(staged)


#: Object-store set commits: the lock is confirmed by reading it back after this many seconds ...
COMMIT_LOCK_SETTLE = 0.5
#: ... a lock older than this belongs to a writer that died mid-commit ...
COMMIT_LOCK_STALE = 900.0
#: ... and a writer waits at most this long for another's commit.
COMMIT_LOCK_WAIT = 900.0


def _read_lock(lock: Any) -> dict[str, Any] | None:
    with contextlib.suppress(Exception):
        value = json.loads(lock.read_text())
        if isinstance(value, dict) and isinstance(value.get("at"), (int, float)):
            return value
    return None


@contextlib.contextmanager
def _object_store_commit_lock(target: Any, tag: WriterTag) -> Iterator[None]:
    """One set commit at a time per target on an object store, which has no rename and no compare-and-set:
    write a lock object naming this writer, wait :data:`COMMIT_LOCK_SETTLE`, read it back (S3 and GCS read
    what was last written); the writer whose name is there commits, the others wait. Two writers that both
    find no lock and write within the settle delay: the last write wins, the other sees it and waits."""
    lock = target.parent / f".{target.name}.commit-lock"
    me = tag.suffix
    deadline = time.monotonic() + COMMIT_LOCK_WAIT
    while True:
        holder = _read_lock(lock)
        if holder is None or time.time() - float(holder["at"]) > COMMIT_LOCK_STALE:
            lock.write_text(json.dumps({"holder": me, "at": time.time()}))
            time.sleep(COMMIT_LOCK_SETTLE)
            if (_read_lock(lock) or {}).get("holder") == me:
                break
        if time.monotonic() > deadline:
            raise TimeoutError(f"another writer has been committing {target} for over {COMMIT_LOCK_WAIT:.0f} s")
        time.sleep(COMMIT_LOCK_SETTLE)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            if (_read_lock(lock) or {}).get("holder") == me:
                lock.unlink()
