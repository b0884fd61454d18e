"""What a part set owns: the marker a committed set carries, and the check that a target folder holds nothing
but the previous set's parts before a commit replaces it.

A committed set's folder holds ``_schneider_set.json``, the list of its parts. A folder holding anything the
previous set did not list (or, for a folder written before markers existed, anything but
``part-NNNNN.<ext>`` files) is refused with :class:`OutputConflict`: a commit never deletes what it did
not write. A marker naming anything but parts is no marker of ours.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_schneider.exceptions import SchneiderConfigError
from airflow_provider_schneider.outputs.location import RESERVED_NAME, shown_uri
from airflow_provider_schneider.outputs.storage import is_local

#: The marker a committed part set carries (readers skip names starting with ``_``: pyarrow, Spark, Hive).
SET_MARKER = RESERVED_NAME
#: The only names a part set has (a marker or a journal naming anything else is not ours).
PART_NAME = re.compile(r"^part-\d{5}\.(jsonl|csv|parquet)(\.gz)?$")
#: A marker is a list of part names: more than this is no marker of ours.
MAX_MARKER_BYTES = 64 * 1024 * 1024


class OutputConflict(SchneiderConfigError):
    """The target holds something this provider did not write (or of another kind): nothing is replaced."""


# -- ownership ----------------------------------------------------------------------------------------------------


def set_marker(parts: Sequence[Mapping[str, Any]], **facts: Any) -> str:
    """The marker of a set: its parts (name, records, bytes, sha256) in order, plus ``facts``."""
    return json.dumps({"schneider_set": 1, "parts": list(parts), **facts}, sort_keys=True, indent=1)


def _marked_parts(text: str | None) -> set[str] | None:
    """Part names a marker lists; ``None`` when ``text`` is no marker of ours."""
    if text is None:
        return None
    try:
        value = json.loads(text)
        names = {str(p["name"]) for p in value["parts"]} if value.get("schneider_set") == 1 else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if names is None or not all(PART_NAME.match(n) for n in names):
        return None  # a marker naming anything but parts was not written by a set of ours
    return names


def read_text(path: Any) -> str | None:
    """The text of a small control file (a marker, a journal); ``None`` when there is none or it is no text
    of ours (too large, not UTF-8). A store that fails to answer raises (its ``OSError``): a transient
    error must not pass for "no marker"."""
    try:
        if is_local(path):
            with open(path.path, "rb") as handle:
                data = handle.read(MAX_MARKER_BYTES + 1)
        else:
            with path.open("rb") as handle:
                data = handle.read(MAX_MARKER_BYTES + 1)
    except FileNotFoundError:
        return None
    if len(data) > MAX_MARKER_BYTES:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _entries(folder: Any) -> list[tuple[str, bool]] | None:
    """``(name, is_folder)`` of what ``folder`` holds; ``None`` when there is no folder."""
    if is_local(folder):
        if not os.path.isdir(folder.path) or os.path.islink(folder.path):
            return None
        with os.scandir(folder.path) as listing:
            return [(e.name, e.is_dir(follow_symlinks=False) or e.is_symlink()) for e in listing]
    try:
        return [(child.name, child.is_dir()) for child in folder.iterdir()]
    except (FileNotFoundError, NotADirectoryError):
        return None


def owned_parts(target: Any, where: str) -> set[str]:
    """The parts of the set at ``target`` (empty: no folder, or an empty one). Raises :class:`OutputConflict`
    when ``target`` is not a folder of one set of this provider; ``where`` names the task and field."""
    if is_local(target) and os.path.islink(target.path):
        raise OutputConflict(
            f"{where}: {shown_uri(target)} is a symbolic link; a part set is only written into a real folder"
        )
    is_file = os.path.lexists(target.path) and not os.path.isdir(target.path) if is_local(target) else target.is_file()
    if is_file:
        raise OutputConflict(f"{where}: {shown_uri(target)} is a file, but split output (parts) needs a folder")
    entries = _entries(target)
    if not entries:
        return set()
    names = {name for name, _ in entries}
    listed = _marked_parts(read_text(target / SET_MARKER)) if SET_MARKER in names else None
    if listed is not None:
        foreign = sorted(name for name, folder in entries if folder or name not in listed | {SET_MARKER})
    else:
        foreign = sorted(name for name, folder in entries if folder or not PART_NAME.match(name))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OutputConflict(
            f"{where}: the folder {shown_uri(target)} holds files this provider did not write ({shown}); refusing "
            "to replace it. Point output_path at a folder of its own, or move those files away"
        )
    return names - {SET_MARKER}


def check_file_target(target: Any, where: str) -> None:
    """A single-file output never replaces a folder (that would delete what the folder holds)."""
    if is_local(target):
        is_folder = os.path.isdir(target.path) and not os.path.islink(target.path)
    else:
        try:
            is_folder = bool(target.is_dir())
        except Exception:  # noqa: BLE001 - a store that cannot tell: the commit itself will say what is wrong
            is_folder = False
    if is_folder:
        raise OutputConflict(f"{where}: {shown_uri(target)} is a folder; a single-file output cannot replace it")
