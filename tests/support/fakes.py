"""Small fakes of the project's own seams, for the unit tier: a clock, a task state store."""

from __future__ import annotations

import json
import time
from typing import Any


class FakeClock:
    """Injected time (:class:`airflow_provider_schneider.process.Clock`): a sleep advances it at once, so a test
    measures waits of minutes without waiting."""

    def __init__(self, start: float | None = None):
        self.now = time.time() if start is None else start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)


class DictStore:
    """The task state store's three calls, kept in a dict (JSON round trip, as the real one stores JSON)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.writes = 0

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))
        self.writes += 1

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


class OnSleep:
    """A clock whose sleep runs ``action`` instead of waiting (a peer acting during our settle delay); time is
    ``base``'s (a fake clock, or the real one)."""

    def __init__(self, action: Any, base: Any = None):
        from airflow_provider_schneider.process import SYSTEM_CLOCK

        self.action, self.base = action, base or SYSTEM_CLOCK

    def time(self) -> float:
        return float(self.base.time())

    def monotonic(self) -> float:
        return float(self.base.monotonic())

    def sleep(self, seconds: float) -> None:
        self.action(seconds)


class LineLog:
    """A logger stub that keeps what it was told: ``(level, message)`` pairs, ``%`` formatting applied (the
    calls the pull engine makes: ``info``, ``warning``, ``debug``, ``error``)."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def _keep(self, level: str, message: str, *args: Any) -> None:
        self.records.append((level, message % args if args else message))

    def debug(self, message: str, *args: Any) -> None:
        self._keep("debug", message, *args)

    def info(self, message: str, *args: Any) -> None:
        self._keep("info", message, *args)

    def warning(self, message: str, *args: Any) -> None:
        self._keep("warning", message, *args)

    def error(self, message: str, *args: Any) -> None:
        self._keep("error", message, *args)

    def lines(self, level: str | None = None) -> list[str]:
        """The messages (of ``level``, or all), in order."""
        return [message for kind, message in self.records if level is None or kind == level]
