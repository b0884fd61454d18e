"""An operator's pull written to storage: the writer, resume staging, the failed-items sidecar, the manifest
and the last log lines (apart from :mod:`.base`, which holds what every operator shares)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_schneider.pulls.naming import task_key, try_number_of
from airflow_provider_schneider.pulls.report import end_line, log_repairs, log_schema_changes

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_schneider.hooks.schneider import SchneiderHook
    from airflow_provider_schneider.pulls.plan import PullPlan, PullStats


def write_output(op: Any, hook: SchneiderHook, plan: PullPlan, stats: PullStats, context: Context) -> dict[str, Any]:
    """Pull ``plan`` into the output of ``op`` (a ``SchneiderBaseOperator``; atomically: a failure commits
    nothing) and return the manifest."""
    from airflow_provider_schneider.outputs.location import shown_uri
    from airflow_provider_schneider.outputs.storage import TaskTry
    from airflow_provider_schneider.outputs.writer import RecordWriter
    from airflow_provider_schneider.pulls.runner import write_pull
    from airflow_provider_schneider.pulls.tries import resumable_pull, retry_follows

    spec = op.output_spec(context, plan)
    if spec.output_format == "parquet":
        from airflow_provider_schneider.outputs.parquet import require_pyarrow

        require_pyarrow(op.task_id)  # before any call, not after an hour of pulling
    field = "output_path" if op.output_path else "output_base"
    task_try = TaskTry(task_key(context), try_number_of(context))
    writer = RecordWriter(spec, where=f"{op.task_id}: {field}", task_try=task_try, task=op.task_id)
    secrets = hook.settings.secrets
    resume = resumable_pull(op, context, plan, writer.target, secrets[0] if secrets else None)
    op.log.info("Pulling into %s (written atomically when the pull completes)", shown_uri(writer.target))
    output = write_pull(
        lambda: op.iter_records(hook, plan, stats, resume),
        writer,
        resume,
        lambda error: retry_follows(context, error),
    )
    if op.item_policy() is not None:
        from airflow_provider_schneider.outputs.sidecar import write_failed_items

        sidecar = write_failed_items(writer.target, stats.failed, writer.tag)
        if sidecar:
            output["failed_items_uri"] = sidecar
    stats.finish()
    if resume is not None and resume.adopted:
        stats.snapshot_at = resume.staged_since  # the adopted pages describe the failed try's moment
    manifest = op.build_manifest(plan, stats, context, output)
    log_repairs(op.log, manifest)
    log_schema_changes(op.log, manifest)
    parts = f"{len(manifest['parts'])} parts, " if spec.split else ""
    detail = f", {parts}{manifest['bytes']} bytes, sha256 {manifest['sha256'][:12]}, to {manifest['uri']}"
    op.log.info("%s", end_line("Wrote", plan, stats, manifest, detail))
    return manifest
