"""Measurement and checks of one phase: runs, outputs, token requests, concurrency; the secrets scan."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schneider_e2e.dag_under_test import expected_records, interval_stem, read_records, record_key, run_interval, sha256
from schneider_e2e.metadata import parse_db_time
from schneider_e2e.options import API_KEY, CLIENT_ID, CLIENT_SECRET, SCHNEIDER_CONCURRENCY_LIMIT, BackfillSpec, Options


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class PhaseResult:
    name: str
    wall_s: float = 0.0
    task_span_s: float = 0.0
    dag_runs: int = 0
    dag_runs_succeeded: int = 0
    task_runs: int = 0
    pull_task_runs: int = 0
    tries: list[int] = field(default_factory=list)
    token_requests: int = 0
    min_token_gap_s: float | None = None
    overlapping_token_requests: int = 0  # issued less than half a usable lifetime after the previous one
    ideal_token_requests: int = 0
    api_calls: int = 0
    unauthorized: int = 0
    peak_concurrency: int = 0
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256
    records: int = 0
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(f"{self.name}: {name}", bool(ok), detail))


def measure(
    result: PhaseResult,
    opts: Options,
    specs: list[BackfillSpec],
    tis: list[Mapping[str, Any]],
    runs: dict[str, list[Mapping[str, Any]]],
    stats: dict[str, Any],
    started: float,
) -> None:
    starts = [t for t in (parse_db_time(ti["start_date"]) for ti in tis) if t is not None]
    ends = [t for t in (parse_db_time(ti["end_date"]) for ti in tis) if t is not None]
    last_end = max(ends, default=time.time())
    result.wall_s = last_end - started
    # Tokens are needed only while tasks run: the ideal counts usable token lifetimes over the span from
    # the first task start to the last task end (stricter than the phase's wall time, start-up included).
    result.task_span_s = last_end - min(starts, default=started)
    result.ideal_token_requests = math.ceil(result.task_span_s / opts.usable_lifetime)
    result.dag_runs = sum(len(r) for r in runs.values())
    result.dag_runs_succeeded = sum(1 for r in runs.values() for run in r if run["state"] == "success")
    result.task_runs = len(tis)
    pull_tasks = {spec.pull_task for spec in specs}
    result.pull_task_runs = sum(1 for ti in tis if ti["task_id"] in pull_tasks)
    result.tries = sorted({int(ti["try_number"]) for ti in tis})
    result.token_requests = int(stats["token_requests"])
    issued_at = sorted(float(t) for t in stats.get("token_request_times", []))
    gaps = [b - a for a, b in itertools.pairwise(issued_at)]
    result.min_token_gap_s = min(gaps) if gaps else None
    result.overlapping_token_requests = sum(1 for gap in gaps if gap < opts.usable_lifetime / 2)
    result.api_calls = int(stats["api_calls"])
    result.unauthorized = int(stats["unauthorized"])
    result.peak_concurrency = int(stats["peak_concurrency"])


def check_runs(
    result: PhaseResult,
    specs: list[BackfillSpec],
    tis: list[Mapping[str, Any]],
    runs: dict[str, list[Mapping[str, Any]]],
    expected_try: int,
) -> None:
    expected_runs = sum(spec.days for spec in specs)
    result.check(
        "DAG runs succeeded",
        result.dag_runs_succeeded == expected_runs == result.dag_runs,
        f"{result.dag_runs_succeeded}/{expected_runs}",
    )
    failed = [f"{ti['dag_id']}/{ti['run_id']}/{ti['task_id']}={ti['state']}" for ti in tis if ti["state"] != "success"]
    result.check(
        "task runs succeeded",
        not failed and result.task_runs == 2 * expected_runs,
        f"{result.task_runs - len(failed)}/{2 * expected_runs}" + (f" failed: {failed[:5]}" if failed else ""),
    )
    result.check("each task ran once (no retry)", result.tries == [expected_try], f"try numbers {result.tries}")
    for spec in specs:
        got = sorted(run["logical_date"][:10] for run in runs[spec.dag_id])
        want = [d.isoformat() for d in spec.logical_dates]
        result.check(f"{spec.dag_id} logical dates", got == want, f"{len(got)} runs {want[0]} .. {want[-1]}")


def check_tokens(result: PhaseResult, opts: Options, *, single_flight_spacing: bool) -> None:
    usable = opts.usable_lifetime
    result.check(
        "token requests <= ideal",
        0 < result.token_requests <= result.ideal_token_requests,
        f"{result.token_requests} <= ceil({result.task_span_s:.1f} s of tasks / {usable:g} s) "
        f"= {result.ideal_token_requests}",
    )
    result.check(
        "token renewed during the phase",
        result.token_requests >= 2,
        f"{result.token_requests} tokens over {result.task_span_s:.0f} s of {opts.token_lifetime} s tokens",
    )
    if single_flight_spacing and result.min_token_gap_s is not None:
        # One host: the file lock makes refreshes single flight, so no two requests come at once. A duplicate
        # refresh lands within a token request's latency of the first; renewals are about a usable lifetime
        # apart, less the time a token answer took to reach its process (seconds on a loaded machine, which
        # is why the bound is half a usable lifetime, not the whole: timing is measured, not asserted).
        result.check(
            "single flight: no two token requests at once",
            result.min_token_gap_s >= usable / 2,
            f"closest two {result.min_token_gap_s:.1f} s apart (usable lifetime {usable:g} s)",
        )
    result.check(
        "token requests < pulling task runs",
        result.token_requests < result.pull_task_runs,
        f"{result.token_requests} < {result.pull_task_runs}",
    )
    result.check("no 401 at the API", result.unauthorized == 0, f"{result.unauthorized} unauthorized")
    cap = min(opts.concurrency_cap, SCHNEIDER_CONCURRENCY_LIMIT)
    result.check(
        "peak concurrency <= cap",
        0 < result.peak_concurrency <= cap,
        f"{result.peak_concurrency} <= {cap} (parallelism {opts.parallelism} x max_concurrency "
        f"{opts.max_concurrency}, Schneider limit {SCHNEIDER_CONCURRENCY_LIMIT})",
    )


def check_outputs(
    result: PhaseResult,
    opts: Options,
    specs: list[BackfillSpec],
    home: Path,
    runs: dict[str, list[Mapping[str, Any]]],
    started: float,
    emulator_config: dict[str, Any],
) -> None:
    for spec in specs:
        folder = home / "schneider_data" / spec.dag_id / spec.pull_task
        present = {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()} if folder.is_dir() else {}
        wanted: dict[str, tuple[dt.date, dt.date]] = {}
        for run in runs[spec.dag_id]:
            start, end = run_interval(run)
            wanted[interval_stem(run, spec)] = (start.date(), end.date())
        files = {stem: present.get(stem) or present.get(stem + ".gz") for stem in wanted}
        found = {stem: path for stem, path in files.items() if path is not None}
        extra = sorted(set(present) - {str(path.relative_to(folder)) for path in found.values()})
        missing = sorted(stem for stem in wanted if stem not in found)
        result.check(
            f"{spec.dag_id} one file per interval",
            bool(wanted) and not extra and not missing,
            f"{len(found)}/{len(wanted)} files"
            + (f", extra {extra[:3]}" if extra else "")
            + (f", missing {missing[:3]}" if missing else ""),
        )
        mismatched, stale, duplicates, records = [], [], [], 0
        seen_across: dict[str, str] = {}
        for stem, path in sorted(found.items()):
            rows = read_records(path)
            records += len(rows)
            if rows != expected_records(opts, spec, wanted[stem], emulator_config):
                mismatched.append(stem)
            keys = [record_key(spec, r) for r in rows]
            if len(keys) != len(set(keys)):
                duplicates.append(stem)
            if spec.pull_task == "pull_catalog_delta":
                for key in keys:  # a change belongs to exactly one interval
                    if key in seen_across:
                        duplicates.append(f"{key} in {seen_across[key]} and {stem}")
                    seen_across[key] = stem
            if path.stat().st_mtime < started:
                stale.append(stem)
            result.files[str(path.relative_to(home))] = sha256(path)
        result.records += records
        compared = len(found)
        complete = bool(wanted) and compared == len(wanted)
        result.check(
            f"{spec.dag_id} records match the emulator",
            complete and not mismatched,
            f"{records} records in {compared} files" + (f", mismatched {mismatched[:3]}" if mismatched else ""),
        )
        result.check(
            f"{spec.dag_id} no duplicates",
            complete and not duplicates,
            f"{duplicates[:3]}" if duplicates else "none",
        )
        result.check(
            f"{spec.dag_id} files written in this phase",
            complete and not stale,
            f"{len(stale)} older than the phase" if stale else "all written after the phase started",
        )


# -- secrets ---------------------------------------------------------------------------------------


def secrets_scan(workdir: Path, tokens: list[str], extra_roots: tuple[Path, ...] = ()) -> Check:
    """Every file the run left (task logs, component output, outputs, DB, cache) against every secret.

    ``extra_roots``: more directories of the run outside ``workdir`` (e.g. a PostgreSQL data directory)."""
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    needles = {"client secret": CLIENT_SECRET, "Basic header": basic, "api key": API_KEY}
    needles.update({f"token {i + 1}": token for i, token in enumerate(tokens)})
    encoded = {label: value.encode() for label, value in needles.items()}
    files = {p for root in (workdir, *extra_roots) for p in root.rglob("*") if p.is_file() and p.suffix != ".py"}
    hits: list[str] = []
    task_logs = 0
    for path in sorted(files):
        if "logs" in path.parts and "dag_id=" in str(path):
            task_logs += 1
        blob = path.read_bytes()
        hits += [f"{label} in {path}" for label, v in encoded.items() if v in blob]
    detail = f"{len(files)} files ({task_logs} task logs), {len(tokens)} issued tokens + 3 secrets: "
    return Check(
        "secrets scan",
        not hits and task_logs > 0 and bool(tokens),
        detail + (f"{len(hits)} hits {hits[:5]}" if hits else "0 hits"),
    )
