"""The run's summary (one JSON object) and the table printed for people."""

from __future__ import annotations

from typing import Any

from schneider_e2e.options import SCHNEIDER_CONCURRENCY_LIMIT


def summary(run: Any, total_s: float, error: str | None) -> dict[str, Any]:
    opts = run.opts
    checks = run.all_checks()
    return {
        "ok": error is None and bool(checks) and all(c.ok for c in checks),
        "error": error,
        "duration_s": round(total_s, 1),
        "timings_s": {k: round(v, 1) for k, v in run.timings.items()},
        "config": {
            "executor": "LocalExecutor" + (f" split over {opts.hosts} hosts" if opts.hosts > 1 else ""),
            "parallelism": opts.parallelism,
            "max_concurrency": opts.max_concurrency,
            "token_lifetime_s": opts.token_lifetime,
            "effective_leeway_s": opts.effective_leeway,
            "token_cache": opts.token_cache,
            "latency_ms": opts.latency_ms,
            "token_latency_ms": opts.token_latency_ms,
            "delta_semantics": opts.delta_semantics,
            "today": opts.today.isoformat(),
            "backfills": {s.dag_id: [s.start.isoformat(), s.end.isoformat(), s.days] for s in run.specs},
        },
        "phases": [
            {
                "name": p.name,
                "wall_s": round(p.wall_s, 1),
                "task_span_s": round(p.task_span_s, 1),
                "dag_runs": p.dag_runs,
                "dag_runs_succeeded": p.dag_runs_succeeded,
                "task_runs": p.task_runs,
                "pull_task_runs": p.pull_task_runs,
                "try_numbers": p.tries,
                "token_requests": p.token_requests,
                "min_token_gap_s": None if p.min_token_gap_s is None else round(p.min_token_gap_s, 1),
                "overlapping_token_requests": p.overlapping_token_requests,
                "ideal_token_requests": p.ideal_token_requests,
                "per_task_token_requests": p.pull_task_runs,
                "api_calls": p.api_calls,
                "unauthorized": p.unauthorized,
                "peak_concurrency": p.peak_concurrency,
                "concurrency_cap": min(opts.concurrency_cap, SCHNEIDER_CONCURRENCY_LIMIT),
                "output_files": len(p.files),
                "records": p.records,
            }
            for p in run.phases
        ],
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "workdir": str(opts.workdir),
    }


def print_table(result: dict[str, Any]) -> None:
    cfg = result["config"]
    print()
    print(
        f"Schneider provider end to end: {cfg['executor']}, parallelism {cfg['parallelism']}, "
        f"max_concurrency {cfg['max_concurrency']}, token lifetime {cfg['token_lifetime_s']} s "
        f"(leeway {cfg['effective_leeway_s']:g} s), token cache {cfg['token_cache']}, "
        f"emulator latency {cfg['latency_ms']:g} ms (token {cfg['token_latency_ms']:g} ms)"
    )
    for dag_id, (start, end, days) in cfg["backfills"].items():
        print(f"  backfill {dag_id}: {start} .. {end} ({days} intervals)")
    header = (
        "phase",
        "wall s",
        "task span s",
        "DAG runs ok",
        "task runs",
        "token requests",
        "ideal",
        "per-task",
        "overlapping",
    )
    header += ("api calls", "peak/cap")
    rows = [
        (
            p["name"],
            p["wall_s"],
            p["task_span_s"],
            f"{p['dag_runs_succeeded']}/{p['dag_runs']}",
            p["task_runs"],
            p["token_requests"],
            p["ideal_token_requests"],
            p["per_task_token_requests"],
            p["overlapping_token_requests"],
            p["api_calls"],
            f"{p['peak_concurrency']}/{p['concurrency_cap']}",
        )
        for p in result["phases"]
    ]
    widths = [max(len(str(v)) for v in column) for column in zip(header, *rows, strict=True)]
    print()
    for row in (header, *rows):
        print("  " + " | ".join(f"{v!s:>{w}}" for v, w in zip(row, widths, strict=True)))
    print()
    for check in result["checks"]:
        print(f"  [{'PASS' if check['ok'] else 'FAIL'}] {check['name']}: {check['detail']}")
    timings = ", ".join(f"{k[:-2]} {v} s" for k, v in result["timings_s"].items())
    print()
    print(
        f"duration {result['duration_s']} s ({timings}); {'OK' if result['ok'] else 'FAILED'}"
        + (f": {result['error']}" if result["error"] else "")
    )
