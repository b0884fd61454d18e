"""Across the tries of one task instance: the resume machinery an ``execute`` gets (a paged pull's, a
fan-out's, or none), and whether Airflow runs the task again after a failure (then what was staged stays)."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Mapping
from typing import Any

from airflow_provider_schneider.outputs.staging import ChunkOwner
from airflow_provider_schneider.pulls.arguments import max_age_seconds
from airflow_provider_schneider.pulls.checkpoint import seal_key
from airflow_provider_schneider.pulls.fanout import FanOutResume
from airflow_provider_schneider.pulls.naming import task_key, try_number_of
from airflow_provider_schneider.pulls.resume import (
    CHECKPOINT_EVERY,
    CHECKPOINT_EVERY_ENV,
    RESUME_MAX_AGE,
    ResumablePull,
    fingerprint,
)


def generation_of(context: Mapping[str, Any], retries: int) -> int:
    """Tries of one run of retries share ``max_tries - retries`` (Airflow raises ``max_tries`` on a clear)."""
    max_tries = getattr(context.get("ti"), "max_tries", None)
    return int(max_tries) - retries if isinstance(max_tries, int) else -1


def resumable_pull(
    operator: Any, context: Mapping[str, Any], plan: Any, target: Any, secret: str | None
) -> ResumablePull | None:
    """The resume machinery for this ``execute`` (a fan-out's: :class:`..fanout.FanOutResume`), or ``None``: a
    single call, ``resumable=False``, no retries with ``resumable=None``, no secret to seal chunks with, or no
    task state store (Airflow < 3.3, said once in the log)."""
    retries = int(getattr(operator, "retries", 0) or 0)
    if operator.resumable is False or (operator.resumable is None and retries <= 0):
        return None
    if not plan.paginate and len(plan.calls) < 2:
        return None
    store = context.get("task_state_store")
    if store is None:
        again = "starts from page 1" if plan.paginate else "calls every item again"
        operator.log.info("Resume on retry needs Airflow >= 3.3 (the task state store): a retry of this pull %s", again)
        return None
    if not secret:
        return None
    query = sorted((str(k), v) for k, v in plan.query.items())
    parts: list[Any] = [operator.schneider_conn_id, plan.path, query, plan.page_size, plan.records_field, str(target)]
    cls: type[ResumablePull] = ResumablePull
    if not plan.paginate:  # a fan-out: the staged answers belong to exactly these calls
        cls = FanOutResume
        parts.append(
            [(c.method, c.path, sorted((str(k), v) for k, v in c.query.items()), c.json_body) for c in plan.calls]
        )
    owner = ChunkOwner(fingerprint(*parts), task_key(context), generation_of(context, retries))
    max_age = max_age_seconds(getattr(operator, "resume_max_age", RESUME_MAX_AGE), operator.task_id)
    every = _seconds_from_environment(CHECKPOINT_EVERY_ENV, CHECKPOINT_EVERY)
    key = seal_key(secret)
    return cls(
        store,
        target,
        owner,
        key,
        operator.log,
        max_age=max_age,
        try_number=try_number_of(context),
        checkpoint_every=every,
    )


def _seconds_from_environment(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if 0 <= value < math.inf else default


def retry_follows(context: Mapping[str, Any], error: BaseException) -> bool:
    """Whether Airflow will run this task instance again after ``error`` (then the staged pages stay)."""
    from airflow_provider_schneider.exceptions import AirflowFailException

    terminal: tuple[type[BaseException], ...] = (AirflowFailException,)
    with contextlib.suppress(ImportError):
        from airflow.sdk.exceptions import AirflowTaskTerminated

        terminal += (AirflowTaskTerminated,)  # marked failed or cleared by a user: no retry of this try
    if isinstance(error, terminal):
        return False
    ti = context.get("ti")
    try_number, max_tries = getattr(ti, "try_number", None), getattr(ti, "max_tries", None)
    return isinstance(try_number, int) and isinstance(max_tries, int) and try_number <= max_tries
