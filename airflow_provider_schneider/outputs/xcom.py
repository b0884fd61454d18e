"""The small-result mode: a pull's records returned through XCom instead of written to storage."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from airflow_provider_schneider.exceptions import SchneiderConfigError
from airflow_provider_schneider.outputs.encoders import DataFixes, encode_line


def collect_for_xcom(
    records: Iterator[Any], task_id: str, max_records: int, max_bytes: int
) -> tuple[list[Any], dict[str, Any]]:
    """The small-result mode: every record in a list, refused beyond ``max_records`` or ``max_bytes`` of JSON
    (XCom lives in the metadata database), and the facts of the output for the manifest. Records are
    repaired as a file's would be (a lone surrogate as U+FFFD, ``NaN``/``Infinity`` as null, counted in
    ``data_fixes``): XCom is strict JSON."""
    fixes = DataFixes()
    collected: list[Any] = []
    size = 0
    for received in records:
        line, record = encode_line(received, fixes)
        size += len(line)
        if len(collected) >= max_records:
            limit = f"max_xcom_records={max_records} records"
        elif size > max_bytes:
            limit = f"max_xcom_bytes={max_bytes} bytes of JSON"
        else:
            collected.append(record)
            continue
        raise SchneiderConfigError(
            f"{task_id}: return_records=True but the result exceeds {limit} (stopped at record "
            f"{len(collected) + 1}). XCom lives in the metadata database: write the records to storage "
            "(return_records=False, the default) and pass the manifest, or raise the limit deliberately"
        )
    fetched_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    output: dict[str, Any] = {"records": len(collected), "format": "xcom", "fetched_at": fetched_at}
    if fixes:
        output["data_fixes"] = fixes.as_dict()
    return collected, output
