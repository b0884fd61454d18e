"""The cluster run's summary (one JSON object) and its table (per worker and for the whole cluster)."""

from __future__ import annotations

from typing import Any


def summary(run: Any, total_s: float, error: str | None) -> dict[str, Any]:
    checks = run.all_checks()
    return {
        "ok": error is None and bool(checks) and all(c.ok for c in checks),
        "error": error,
        "duration_s": round(total_s, 1),
        "timings_s": {k: round(v, 1) for k, v in run.timings.items()},
        "config": {
            "executor": f"CeleryExecutor, {run.copts.workers} worker hosts x {run.copts.worker_concurrency} slots",
            "pool_slots": run.copts.pool_slots,
            "max_concurrency": run.opts.max_concurrency,
            "token_lifetime_s": run.opts.token_lifetime,
            "effective_leeway_s": run.opts.effective_leeway,
            "latency_ms": run.opts.latency_ms,
            "intervals": run.spec.days,
        },
        "phases": [
            {
                "name": p.name,
                **run.extra.get(p.name, {}),
                "wall_s": round(p.wall_s, 1),
                "task_span_s": round(p.task_span_s, 1),
                "task_runs": p.task_runs,
                "pull_task_runs": p.pull_task_runs,
                "token_requests": p.token_requests,
                "ideal_token_requests": p.ideal_token_requests,
                "duplicate_token_requests": p.overlapping_token_requests,
                "lease_waits": sum(w.get("lease_waits", 0) for w in run.per_worker.get(p.name, {}).values()),
                "unauthorized": p.unauthorized,
                "peak_concurrency": p.peak_concurrency,
                "records": p.records,
                "objects": len(p.files),
                "per_worker": run.per_worker.get(p.name, {}),
            }
            for p in run.phases
        ],
        "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        "workdir": str(run.workdir),
    }


def _runs_tokens(worker: dict[str, int]) -> str:
    return f"{worker.get('task_runs', 0)}/{worker.get('token_requests', 0)}"


def print_table(result: dict[str, Any]) -> None:
    cfg = result["config"]
    print(
        f"\nSchneider provider on a cluster: {cfg['executor']}, pool {cfg['pool_slots']} x max_concurrency "
        f"{cfg['max_concurrency']}, {cfg['intervals']} intervals x 4 mapped pulls, tokens {cfg['token_lifetime_s']} s "
        f"(effective leeway {cfg['effective_leeway_s']:g} s), latency {cfg['latency_ms']:g} ms\n"
    )
    workers = sorted({w for p in result["phases"] for w in p["per_worker"]})
    header = ["phase", "lease", *[f"{w} runs/tokens" for w in workers], "wall s", "task span s", "tokens", "ideal"]
    header += ["duplicates", "lease waits", "401s", "peak", "records", "read back elsewhere"]
    rows = []
    for p in result["phases"]:
        rows.append(
            [
                p["name"],
                "on" if p.get("lease") else "off",
                *[_runs_tokens(p["per_worker"].get(w, {})) for w in workers],
                p["wall_s"],
                p["task_span_s"],
                p["token_requests"],
                p["ideal_token_requests"],
                p["duplicate_token_requests"],
                p["lease_waits"],
                p["unauthorized"],
                p["peak_concurrency"],
                p["records"],
                p.get("read_back_elsewhere", ""),
            ]
        )
    widths = [max(len(str(v)) for v in column) for column in zip(header, *rows, strict=True)]
    print("| " + " | ".join(f"{h!s:>{w}}" for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(f"{v!s:>{w}}" for v, w in zip(row, widths, strict=True)) + " |")
    print()
    for check in result["checks"]:
        print(f"  [{'PASS' if check['ok'] else 'FAIL'}] {check['name']}: {check['detail']}")
    timings = ", ".join(f"{k[:-2]} {v} s" for k, v in result["timings_s"].items())
    print(f"\nduration {result['duration_s']} s ({timings}); {'OK' if result['ok'] else 'FAILED'}")
    if result["error"]:
        print(f"error: {result['error']}")
