"""Where outputs live: storage paths, writer-owned temporaries and when a leftover one may go (commits:
:mod:`.commit`).

Every writer stages under names that carry its own tag (host, process, start time, random part and, inside a
task, the task instance and try), so two writers of one target (a zombie and its retry, two DAGs sharing a
path) never touch each other's temporaries. A leftover temporary is removed only when provably stale: it
belongs to an earlier try of the same task instance (Airflow starts a retry once the try before it ended, on
whichever host), or its writer ran on this host and that process is gone, or it was last modified longer ago
than :data:`STALE_AFTER` (a live local writer keeps touching its file; an object-store upload is invisible
until it completes).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
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

from airflow_provider_schneider.exceptions import SchneiderConfigError
from airflow_provider_schneider.outputs.location import shown_uri

log = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial"
#: Staged chunks of a resumable pull: ``.<target name>.resume-<task>-<first>-<last>-<nonce>.jsonl`` (``.jsonl.gz``
#: before format 3: still recognised, so a stale one is cleaned up).
RESUME_INFIX = ".resume-"
#: A temporary nobody has modified for this long belongs to a writer that is gone (seconds; 24 h).
STALE_AFTER = 24 * 3600.0
_LOCAL_PROTOCOLS = ("file", "local", "")
#: A writer's tag as it ends a temporary's name: ``w-<host>-<pid>-<start>-<random>[-t<ti>-<try>].partial``.
TAG_PATTERN = re.compile(
    r"w-(?P<host>[A-Za-z0-9-]{1,40}-[0-9a-f]{8})-(?P<pid>\d+)-(?P<started>\d+)-[0-9a-f]{8}"
    r"(?:-t(?P<ti>[0-9a-f]{12})-(?P<try>\d{1,6}))?" + re.escape(PARTIAL_SUFFIX)
)
_TAG = re.compile(r"\." + TAG_PATTERN.pattern + "$")
#: What may follow ``.<target name>.`` in the name of one of the target's own hidden siblings.
_SIBLING = re.compile(
    r"(?:replaced\.)?"
    + TAG_PATTERN.pattern
    + r"|resume-[0-9a-f]{12}-.+\.jsonl(?:\.gz)?|commit-journal\.json(?:\.tmp)?|commit-lock"
)
#: Fsspec implementations Airflow's providers bring, per scheme: what to install when one is missing.
_FILESYSTEM_PACKAGES = {
    "s3": "apache-airflow-providers-amazon[s3fs]",
    "s3a": "apache-airflow-providers-amazon[s3fs]",
    "gs": "apache-airflow-providers-google",
    "gcs": "apache-airflow-providers-google",
    "abfs": "apache-airflow-providers-microsoft-azure",
    "abfss": "apache-airflow-providers-microsoft-azure",
    "az": "apache-airflow-providers-microsoft-azure",
    "adl": "apache-airflow-providers-microsoft-azure",
    "sftp": "apache-airflow-providers-sftp",
}


class MissingFilesystem(SchneiderConfigError):
    """No filesystem implementation is installed for the output's scheme."""


def to_storage_path(uri: str, conn_id: str | None = None, *, where: str = "output") -> Any:
    """An ``ObjectStoragePath`` for schemes Airflow knows (file, and s3/gs/... from installed providers);
    any other fsspec scheme (``memory://``, ``sftp://`` ...) through ``universal_pathlib`` directly. A scheme
    with no filesystem installed is a :class:`MissingFilesystem` naming ``where`` and what to install."""
    from airflow.sdk import ObjectStoragePath

    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme and scheme not in _LOCAL_PROTOCOLS:
        from airflow.sdk.io.fs import has_fs

        if not has_fs(scheme):
            _require_fsspec(scheme, uri, where)
            from upath import UPath

            return UPath(uri)
    path = ObjectStoragePath(uri, conn_id=conn_id) if conn_id else ObjectStoragePath(uri)
    if scheme and scheme not in _LOCAL_PROTOCOLS:
        try:
            path.fs  # noqa: B018 - the provider's filesystem imports its package here
        except ImportError as exc:
            raise _missing(scheme, uri, where, exc) from None
    return path


def _require_fsspec(scheme: str, uri: str, where: str) -> None:
    import fsspec  # type: ignore[import-untyped]

    try:
        fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError) as exc:
        raise _missing(scheme, uri, where, exc) from None


def _missing(scheme: str, uri: str, where: str, cause: BaseException) -> MissingFilesystem:
    package = _FILESYSTEM_PACKAGES.get(scheme)
    hint = f"pip install '{package}'" if package else f"install the fsspec implementation of '{scheme}://'"
    return MissingFilesystem(
        f"{where}: no filesystem for {scheme}:// is installed, so {shown_uri(uri)} cannot be written ({cause}); {hint} "
        "in the environment of every worker"
    )


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
class TaskTry:
    """The task instance (a short hash of dag, run, task and map index) and try a writer works for."""

    key: str
    try_number: int

    @property
    def label(self) -> str:
        return f"-t{self.key}-{self.try_number}"


@dataclass(frozen=True)
class WriterTag:
    """The identity one writer stamps on its temporaries:
    ``.w-<host>-<pid>-<start>-<random>[-t<task instance>-<try>].partial``."""

    host: str
    pid: int
    started: int
    nonce: str
    task_try: TaskTry | None = None

    @classmethod
    def new(cls, task_try: TaskTry | None = None) -> WriterTag:
        return cls(_host_label(), os.getpid(), int(time.time()), secrets.token_hex(4), task_try)

    @property
    def suffix(self) -> str:
        owner = self.task_try.label if self.task_try else ""
        return f".w-{self.host}-{self.pid}-{self.started}-{self.nonce}{owner}{PARTIAL_SUFFIX}"

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


def is_provably_stale(
    path: Any, *, now: float | None = None, stale_after: float = STALE_AFTER, own: WriterTag | None = None
) -> bool:
    """True only for a temporary whose writer cannot still be writing it (see the module docstring)."""
    match = _TAG.search(path.name)
    if match is not None and own is not None and own.task_try is not None and match["ti"] == own.task_try.key:
        if int(match["try"]) < own.task_try.try_number:
            return True  # an earlier try of this task instance: Airflow ended it before starting ours
    if match is not None and is_local(path) and match["host"] == _host_label() and _process_gone(int(match["pid"])):
        return True
    modified = _modified_at(path)
    return modified is not None and (now or time.time()) - modified > stale_after


def hidden_siblings(target: Any) -> Iterator[Any]:
    """The hidden siblings ``target`` itself makes (temporaries, asides, staged chunks, journal, lock): listed
    and matched by an anchored grammar, never globbed (a target name may hold glob characters:
    ``orders[1].jsonl``) and never by prefix alone (``.a.b.w-...`` belongs to ``a.b``, not to ``a``)."""
    prefix = f".{target.name}."

    def ours(name: str) -> bool:
        return name.startswith(prefix) and _SIBLING.fullmatch(name[len(prefix) :]) is not None

    if is_local(target):
        try:
            with os.scandir(os.path.dirname(target.path) or ".") as listing:
                names = sorted(entry.name for entry in listing if ours(entry.name))
        except OSError:
            names = []
        yield from (target.parent / name for name in names)
        return
    with contextlib.suppress(Exception):
        for child in target.parent.iterdir():
            if ours(child.name):
                yield child


def stale_temporaries(target: Any, own: WriterTag | None = None) -> Iterator[Any]:
    """Temporaries of ``target`` (any writer's) that are provably stale, never ``own``'s; also the staged
    chunks of a resumable pull nobody resumed (by age only: their owner is a task instance, not a process)."""
    for candidate in hidden_siblings(target):
        name = candidate.name
        if name.endswith(PARTIAL_SUFFIX):
            if own is not None and name.endswith(own.suffix):
                continue
            if is_provably_stale(candidate, own=own):
                yield candidate
        elif RESUME_INFIX in name and name.endswith((".jsonl", ".jsonl.gz")) and is_provably_stale(candidate):
            yield candidate  # no writer tag in a chunk's name: the age rule decides


def remove_stale_temporaries(target: Any, own: WriterTag | None = None) -> int:
    removed = 0
    for stale in list(stale_temporaries(target, own)):
        log.info("Removing leftover temporary %s (its writer is gone)", stale)
        with contextlib.suppress(Exception):
            remove_tree(stale)
            removed += 1
    return removed


def remove_tree(path: Any) -> None:
    """Delete a file or a folder of files (local or object store); a symbolic link itself, never its target."""
    if is_local(path):
        if os.path.isdir(path.path) and not os.path.islink(path.path):
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
