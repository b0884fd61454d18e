"""Logging from a trigger without blocking the triggerer's event loop.

In Airflow 3's triggerer, a trigger's log line is a blocking write to the socket its supervisor reads. When
hundreds of triggers answered by one poll round log at once, that socket fills, the event loop stalls on
the write, and (on Airflow 3.3.2, measured with 500 deferred sensors) the supervisor, itself blocked
sending to the loop, never drains it: the triggerer hangs. In a triggerer these lines therefore go through
structlog's ``alog`` (the write in the loop's executor), as Airflow's own trigger lines do; anywhere else
(``dag.test()``, tests) a log call writes to a file or a stream and stays a plain call.
"""

from __future__ import annotations

import sys
from typing import Any


def _in_a_triggerer() -> bool:
    """The triggerer's runner sets the Task SDK's supervisor channel; ``dag.test()`` and tests do not."""
    task_runner = sys.modules.get("airflow.sdk.execution_time.task_runner")
    comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    return type(comms).__name__ == "TriggerCommsDecoder"


async def say(log: Any, level: int, message: str, *args: Any) -> None:
    """``log.log(level, message, *args)``, the write off the event loop in a triggerer."""
    alog = getattr(log, "alog", None)
    if alog is not None and _in_a_triggerer():
        await alog(level, message, *args)
    else:
        log.log(level, message, *args)
