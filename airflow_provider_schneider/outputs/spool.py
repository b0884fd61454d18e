"""A local spool for the formats whose first bytes depend on every record (CSV's header, Parquet's schema).

Records are appended as JSON Lines to a private temporary file while the schema is inferred; the format is
written from the spool once the pull is complete. Memory stays flat (one line at a time) at the cost of one
local disk pass of the JSON size; the spool is removed however the pull ends. Records are repaired as they are
spooled (:func:`~.encoders.encode_line`: counted once, in ``fixes``), so the schema and the format see
exactly the records the spool gives back.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from airflow_provider_schneider.outputs.encoders import DataFixes, encode_line
from airflow_provider_schneider.outputs.schema import RecordSchema


class RecordSpool:
    def __init__(self) -> None:
        fd, self.path = tempfile.mkstemp(prefix="schneider-spool-", suffix=".jsonl")
        self._file = os.fdopen(fd, "wb", buffering=1 << 20)
        self.schema = RecordSchema()
        self.fixes = DataFixes()
        self.records = 0

    def write(self, record: Any) -> None:
        line, written = encode_line(record, self.fixes)
        self._file.write(line)
        self.schema.observe(written)
        self.records += 1

    def __iter__(self) -> Iterator[Any]:
        self._file.flush()
        with open(self.path, "rb") as spooled:
            for line in spooled:
                yield json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
