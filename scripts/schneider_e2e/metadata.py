"""Read-only queries of the metadata DB: backfills, DAG runs, task instances."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any


class MetadataDb:
    """Read-only look at the SQLite metadata DB (WAL mode, so reading never blocks the components)."""

    def __init__(self, path: Path):
        self.uri = f"file:{path}?mode=ro"

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        con = sqlite3.connect(self.uri, uri=True, timeout=30)
        con.row_factory = sqlite3.Row
        try:
            return con.execute(sql, params).fetchall()
        finally:
            con.close()

    def latest_backfill(self, dag_id: str) -> sqlite3.Row | None:
        found = self.rows("SELECT id, completed_at FROM backfill WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,))
        return found[0] if found else None

    def runs(self, backfill_id: int) -> list[sqlite3.Row]:
        return self.rows(
            "SELECT run_id, state, logical_date, data_interval_start, data_interval_end FROM dag_run "
            "WHERE backfill_id = ?",
            (backfill_id,),
        )

    def task_instances(self, backfill_id: int) -> list[sqlite3.Row]:
        return self.rows(
            "SELECT ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.state, ti.try_number, ti.start_date, "
            "ti.end_date FROM task_instance ti JOIN dag_run dr "
            "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id WHERE dr.backfill_id = ?",
            (backfill_id,),
        )


def parse_db_time(value: str | None) -> float | None:
    """Epoch seconds of a UTC timestamp as Airflow stores it in SQLite."""
    if not value:
        return None
    stamp = dt.datetime.fromisoformat(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.timezone.utc)
    return stamp.timestamp()


class PostgresMetadataDb(MetadataDb):
    """The same queries on PostgreSQL (psycopg2); timestamps come back as ISO strings, as from SQLite."""

    def __init__(self, dsn: str):
        self.dsn = dsn

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:  # type: ignore[override]
        import psycopg2
        import psycopg2.extras

        con = psycopg2.connect(self.dsn)
        con.autocommit = True
        try:
            with con.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                cur.execute(sql.replace("?", "%s"), params)
                found = cur.fetchall() if cur.description else []
        finally:
            con.close()
        return [{k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in row.items()} for row in found]

    def task_instances(self, backfill_id: int) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.rows(
            "SELECT ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.state, ti.try_number, ti.start_date, "
            "ti.end_date, ti.hostname FROM task_instance ti JOIN dag_run dr "
            "ON dr.dag_id = ti.dag_id AND dr.run_id = ti.run_id WHERE dr.backfill_id = ?",
            (backfill_id,),
        )
