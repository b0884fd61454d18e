"""Direct access to an Airflow SQLite metadata DB from a test process.

Each use opens, commits and *closes* its connection: a test process forks (token swarms, host stampedes),
and a SQLite handle left open across ``fork()`` is one of the ways SQLite lists to corrupt a database.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def metadata_connection(db: str | Path, *, read_only: bool = False) -> Iterator[sqlite3.Connection]:
    target = f"file:{db}?mode=ro" if read_only else f"file:{db}"
    with contextlib.closing(sqlite3.connect(target, uri=True, timeout=30)) as conn:
        with conn:  # commit on success, roll back on error
            yield conn
