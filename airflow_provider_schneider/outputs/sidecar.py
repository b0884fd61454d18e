"""The failed items of a fan-out, beside its output: ``_<output name>.failed.json``, replaced atomically.

A leading underscore keeps it out of a dataset read of the folder (pyarrow, Spark and Hive skip ``_`` and
``.`` names). A pull without failed items removes the sidecar a previous run of the same output left, so a
rerun replaces, never leaves a stale list behind.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

from airflow_provider_schneider.outputs import commit, storage
from airflow_provider_schneider.outputs.location import shown_uri


def sidecar_of(target: Any) -> Any:
    return target.parent / f"_{target.name}.failed.json"


def write_failed_items(target: Any, failed: Sequence[dict[str, Any]], tag: storage.WriterTag) -> str | None:
    """Write (or, with no failures, remove) the sidecar of ``target``; its URI when written."""
    sidecar = sidecar_of(target)
    if not failed:
        with contextlib.suppress(FileNotFoundError):
            if sidecar.exists():
                storage.remove_tree(sidecar)
        return None
    temporary = tag.temporary(sidecar)
    body = json.dumps({"failed_items": list(failed), "count": len(failed)}, indent=1, default=str)
    with temporary.open("wb") as raw:
        raw.write(body.encode())
        storage.sync_file(raw)
    commit.commit_file(temporary, sidecar)
    return shown_uri(sidecar)
