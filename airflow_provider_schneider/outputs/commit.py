"""Moving a complete output into place: a file in one rename, a part set that owns only its files, and commits
that a kill at any point cannot leave half done.

A part set carries a marker, ``_schneider_set.json``, that lists its parts. A commit replaces a target folder
only when everything in it belongs to the previous set (the parts its marker lists, or, for a folder written
before markers existed, nothing but ``part-NNNNN.<ext>`` files); a folder holding anything else is refused
with :class:`OutputConflict` and nothing in it is touched. Both backends follow that one rule.

- Local filesystems: the staged folder and the target are exchanged in one atomic step (Linux
  ``renameat2(RENAME_EXCHANGE)``): at every instant the target is the old set or the new one; the old set then
  sits under the staged (writer-tagged) name and is removed. Where the exchange is not supported (NFS, other
  systems) two renames run under a journal object; a kill between them leaves the journal, and the next commit
  into that folder (or the next writer of it, when it starts) undoes the half-done one first.
- Object stores have no rename: under the commit lock, a journal names the staged set and the parts it
  replaces; each part is copied into place, the new marker last but one, then the old parts the new set does
  not have are deleted. A killed commit is finished by the next writer of the target from its journal (the
  staged objects are removed only once every copy is done).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from airflow_provider_schneider.outputs.location import shown_uri
from airflow_provider_schneider.outputs.ownership import (
    PART_NAME,
    SET_MARKER,
    owned_parts,
    read_text,
)
from airflow_provider_schneider.outputs.storage import TAG_PATTERN, WriterTag, is_local, remove_tree
from airflow_provider_schneider.process import SYSTEM_CLOCK, Clock, flock_within

log = logging.getLogger(__name__)

JOURNAL_SUFFIX = ".commit-journal.json"
#: Where time decides the commit locks (tests put a fake clock here).
CLOCK: Clock = SYSTEM_CLOCK
#: Object-store set commits: the lock is confirmed by reading it back after this many seconds ...
COMMIT_LOCK_SETTLE = 0.5
#: ... a lock older than this belongs to a writer that died mid-commit ...
COMMIT_LOCK_STALE = 900.0
#: ... and a writer waits at most this long for another's commit.
COMMIT_LOCK_WAIT = 900.0


# -- files --------------------------------------------------------------------------------------------------------


def commit_file(temporary: Any, target: Any) -> None:
    """Move one staged file into place: readers see the old object or the new one, never a mix."""
    if is_local(target):
        os.replace(temporary.path, target.path)  # atomic within one filesystem
    else:
        # Object stores have no rename: a server-side copy (atomic per object), then the delete.
        temporary.rename(target)


# -- local folders --------------------------------------------------------------------------------------------------

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange(first: str, second: str) -> bool:
    """Swap two paths atomically (``renameat2`` with ``RENAME_EXCHANGE``); ``False`` where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, os.strerror(code), first)


@contextlib.contextmanager
def _local_commit_lock(target: Any) -> Iterator[None]:
    """Serialise set commits into one local folder across processes: ``flock`` on the parent directory itself
    (nothing left behind), or, where a directory cannot be locked (NFS emulates ``flock`` with ``fcntl``
    locks, which want a file open for writing), on ``.<name>.commit-lock``. Waits at most
    :data:`COMMIT_LOCK_WAIT`: a process holding the lock forever (anyone who can read the folder could)
    makes the commit fail, never hang."""
    import fcntl

    fd = os.open(os.path.dirname(target.path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            _flock_within(fd, COMMIT_LOCK_WAIT, target)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.ETIMEDOUT):
                raise
            # Never close a number twice: were the open below to fail, the ``finally`` would close a descriptor
            # that another thread (SQLite's, say) may have been handed meanwhile.
            closing, fd = fd, -1
            os.close(closing)
            lock_path = os.path.join(os.path.dirname(target.path) or ".", f".{target.name}.commit-lock")
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            _flock_within(fd, COMMIT_LOCK_WAIT, target)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        if fd >= 0:
            os.close(fd)


def _flock_within(fd: int, seconds: float, target: Any) -> None:
    if not flock_within(fd, seconds, CLOCK):
        raise TimeoutError(
            errno.ETIMEDOUT, f"another process has held the commit lock of {shown_uri(target)} for over {seconds:.0f} s"
        )


def journal_of(target: Any) -> Any:
    return target.parent / f".{target.name}{JOURNAL_SUFFIX}"


def _write_journal(target: Any, record: Mapping[str, Any]) -> None:
    journal = journal_of(target)
    if is_local(target):
        temporary = f"{journal.path}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, journal.path)
    else:
        journal.write_text(json.dumps(record))


def _read_journal(target: Any) -> dict[str, Any] | None:
    text = read_text(journal_of(target))
    with contextlib.suppress(ValueError, TypeError):
        value = json.loads(text) if text else None
        if isinstance(value, dict):
            return value
    return None


def _sibling(target: Any, name: Any, kind: str) -> Any | None:
    """A sibling a journal names, only if it is this target's writer-tagged staging folder (``kind``
    ``"staged"``) or aside (``"aside"``): a forged journal can point at nothing else."""
    if not isinstance(name, str) or "/" in name:
        return None
    prefix = f".{target.name}." + ("replaced." if kind == "aside" else "")
    rest = name[len(prefix) :] if name.startswith(prefix) else None
    if rest is None or not TAG_PATTERN.fullmatch(rest):
        return None
    return target.parent / name


def _recover_local(target: Any) -> None:
    """Undo a two-rename commit killed half way (call with the commit lock held)."""
    record = _read_journal(target)
    if record is None:
        return
    aside, staged = _sibling(target, record.get("aside"), "aside"), _sibling(target, record.get("staged"), "staged")
    if aside is not None and os.path.isdir(aside.path):
        if os.path.lexists(target.path):
            remove_tree(aside)  # the new set made it in: finish
        else:
            os.rename(aside.path, target.path)  # killed between the renames: the old set comes back
            log.warning("Restored %s: a commit of a new part set was interrupted between its two renames", target)
    if staged is not None and os.path.lexists(staged.path) and os.path.lexists(target.path):
        remove_tree(staged)  # the interrupted writer's staged set: it is gone, nobody will commit it
    for leftover in (journal_of(target).path, f"{journal_of(target).path}.tmp"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)


def _commit_local_folder(staged: Any, target: Any, tag: WriterTag, where: str) -> None:
    with _local_commit_lock(target):
        _recover_local(target)
        owned_parts(target, where)
        if not os.path.lexists(target.path):
            os.rename(staged.path, target.path)
            return
        if exchange(staged.path, target.path):
            remove_tree(staged)  # the staged name now holds the previous set
            return
        aside = target.parent / f".{target.name}.replaced{tag.suffix}"
        _write_journal(target, {"aside": aside.name, "staged": staged.name})
        os.rename(target.path, aside.path)
        try:
            os.rename(staged.path, target.path)
        except BaseException:
            os.rename(aside.path, target.path)  # the previous set stays as it was
            os.unlink(journal_of(target).path)
            raise
        remove_tree(aside)
        os.unlink(journal_of(target).path)


# -- object-store folders -----------------------------------------------------------------------------------------


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
    deadline = CLOCK.monotonic() + COMMIT_LOCK_WAIT
    while True:
        holder = _read_lock(lock)
        now = CLOCK.time()
        age = now - float(holder["at"]) if holder is not None else 0.0
        # A lock older than COMMIT_LOCK_STALE is a dead writer's; one from the future was never a writer's.
        if holder is None or age > COMMIT_LOCK_STALE or age < -COMMIT_LOCK_SETTLE * 4:
            lock.write_text(json.dumps({"holder": me, "at": CLOCK.time()}))
            CLOCK.sleep(COMMIT_LOCK_SETTLE)
            if (_read_lock(lock) or {}).get("holder") == me:
                break
        if CLOCK.monotonic() > deadline:
            raise TimeoutError(f"another writer has been committing {target} for over {COMMIT_LOCK_WAIT:.0f} s")
        CLOCK.sleep(COMMIT_LOCK_SETTLE)
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            if (_read_lock(lock) or {}).get("holder") == me:
                lock.unlink()


def _names(values: Any) -> list[str]:
    """Part names of a journal: nothing but ``part-NNNNN.<ext>`` is ever copied or deleted for one."""
    return [v for v in values if isinstance(v, str) and PART_NAME.match(v)] if isinstance(values, list) else []


def _finish_object_store(target: Any, record: Mapping[str, Any]) -> None:
    """Run (or finish) the copy of a staged set into ``target`` as ``record`` (a journal) describes it."""
    staged = _sibling(target, record.get("staged"), "staged")
    new, old = _names(record.get("new")), _names(record.get("old"))
    if staged is not None:
        for name in [*new, SET_MARKER]:
            source = staged / name
            with contextlib.suppress(FileNotFoundError):
                if source.exists():
                    source.rename(target / name)
    for name in sorted(set(old) - set(new)):
        with contextlib.suppress(FileNotFoundError):
            (target / name).unlink()
    if staged is not None:
        with contextlib.suppress(Exception):
            remove_tree(staged)
    with contextlib.suppress(FileNotFoundError):
        journal_of(target).unlink()


def _recover_object_store(target: Any) -> None:
    record = _read_journal(target)
    if record is not None:
        log.warning("Finishing an interrupted commit of a part set into %s", target)
        _finish_object_store(target, record)


def _commit_object_store_folder(staged: Any, target: Any, tag: WriterTag, where: str) -> None:
    with _object_store_commit_lock(target, tag):
        _recover_object_store(target)
        old = owned_parts(target, where)
        new = sorted(p.name for p in staged.iterdir() if p.name != SET_MARKER)
        record = {"staged": staged.name, "new": new, "old": sorted(old)}
        _write_journal(target, record)
        _finish_object_store(target, record)


def commit_folder(staged: Any, target: Any, tag: WriterTag, where: str = "output") -> None:
    """Replace the part set at ``target`` by the complete, marked set in ``staged`` (see the module docs)."""
    if is_local(target):
        _commit_local_folder(staged, target, tag, where)
    else:
        _commit_object_store_folder(staged, target, tag, where)


def recover(target: Any) -> None:
    """Finish or undo a set commit into ``target`` that a killed writer left half done (a writer calls this
    when it starts, so the target is whole again before the pull, not only at the next commit)."""
    if _read_journal(target) is None:
        return
    if is_local(target):
        with _local_commit_lock(target):
            _recover_local(target)
    else:
        with _object_store_commit_lock(target, WriterTag.new()):
            _recover_object_store(target)
