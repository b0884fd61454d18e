"""Mutable emulator state: counters, issued tokens, order status overrides, submitted orders.

Each part guards itself with its own lock, so 16+ handler threads can update counters while others check
tokens. :class:`EmulatorState` bundles them with the current configuration snapshot.
"""

from __future__ import annotations

import datetime as dt
import itertools
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .config import EmulatorConfig
from .faults import FaultRegistry
from .spike import SpikeArrest

#: Most recent requests kept for ``GET /_emulator/requests`` (older ones drop off).
REQUEST_LOG_SIZE = 10_000


class EmulatorClock:
    """The monotonic clock token expiry and status schedules read, which the control API can move forward
    (``POST /_emulator/clock``): a test of expiry jumps past it instead of sleeping and racing it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0

    def monotonic(self) -> float:
        with self._lock:
            return time.monotonic() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock ``seconds`` forward; returns the total offset."""
        with self._lock:
            self._offset += seconds
            return self._offset

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0


class Stats:
    """Request counters read by tests and benchmarks through ``GET /_emulator/stats``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Counters back to zero. Calls in flight are a gauge, not a counter: they stay (a reset while calls
        are being answered must not make them negative), and the peak starts again from them."""
        with self._lock:
            self._token_by_status: Counter[str] = Counter()
            self._token_times: list[float] = []
            self._api_by_status: Counter[str] = Counter()
            self._api_by_path: Counter[str] = Counter()
            self._faults: Counter[str] = Counter()
            self._peak = self._in_flight
            self._unauthorized = 0
            self._submissions = 0
            self._requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)

    def request_logged(self, entry: dict[str, Any]) -> None:
        """One API or token request: when it arrived, what it asked, what it got, which token it carried."""
        with self._lock:
            self._requests.append(entry)

    def request_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests)

    def token_finished(self, outcome: str) -> None:
        with self._lock:
            self._token_by_status[outcome] += 1

    def token_issued(self) -> None:
        with self._lock:
            self._token_times.append(time.time())

    def api_started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)

    def api_finished(self, path: str, outcome: str) -> None:
        """``outcome`` is the status sent, or "reset"/"truncate" for broken answers."""
        with self._lock:
            self._in_flight -= 1
            self._api_by_status[outcome] += 1
            self._api_by_path[path] += 1
            if outcome == "401":
                self._unauthorized += 1

    def fault_applied(self, rule_id: str) -> None:
        with self._lock:
            self._faults[rule_id] += 1

    def order_submitted(self) -> None:
        with self._lock:
            self._submissions += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "token_requests": sum(self._token_by_status.values()),
                "token_requests_by_status": dict(self._token_by_status),
                "token_request_times": list(self._token_times),
                "api_calls": sum(self._api_by_status.values()),
                "api_calls_by_status": dict(self._api_by_status),
                "api_calls_by_path": dict(self._api_by_path),
                "in_flight": self._in_flight,
                "peak_concurrency": self._peak,
                "unauthorized": self._unauthorized,
                "faults_applied": dict(self._faults),
                "order_submissions": self._submissions,
            }


@dataclass
class _Token:
    expires_at: float  # EmulatorClock.monotonic() deadline
    revoked: bool = False
    number: int = 0  # 1 for the first token issued since the last reset, 2 for the next, ...


class TokenStore:
    """Opaque bearer tokens with a monotonic expiry; revocation keeps the entry to report it."""

    _PRUNE_ABOVE = 50_000

    def __init__(self, clock: EmulatorClock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._numbers = itertools.count(1)

    def issue(self, lifetime: float) -> str:
        token = secrets.token_urlsafe(36)  # 48 characters, random, not a JWT
        now = self._clock.monotonic()
        with self._lock:
            if len(self._tokens) > self._PRUNE_ABOVE:
                self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > now - 3600}
            self._tokens[token] = _Token(now + lifetime, number=next(self._numbers))
        return token

    def problem(self, token: str) -> str | None:
        """None when the token is usable, else the error code to answer with."""
        with self._lock:
            entry = self._tokens.get(token)
        if entry is None or entry.revoked:
            return "INVALID_TOKEN"
        if self._clock.monotonic() >= entry.expires_at:
            return "EXPIRED_TOKEN"
        return None

    def revoke(self, token: str | None = None) -> int:
        """Revoke one token, or all when ``token`` is None; returns how many were revoked."""
        with self._lock:
            targets = [token] if token is not None else list(self._tokens)
            count = 0
            for key in targets:
                entry = self._tokens.get(key)
                if entry is not None and not entry.revoked:
                    entry.revoked = True
                    count += 1
            return count

    def number(self, token: str) -> int | None:
        """Issue order of ``token`` (1 = first since reset), ``None`` if never issued: lets a request log
        say which token a request carried without repeating the secret."""
        with self._lock:
            entry = self._tokens.get(token)
        return entry.number if entry is not None else None

    def issued(self) -> list[str]:
        """Every token issued since the last reset (secret scans look for them in logs and files)."""
        with self._lock:
            return list(self._tokens)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._numbers = itertools.count(1)


@dataclass(frozen=True)
class _StatusPlan:
    statuses: tuple[str, ...]
    start: float  # EmulatorClock.monotonic() of status 0
    every_s: float

    def current(self, now: float) -> str:
        if self.every_s <= 0:
            return self.statuses[-1]
        step = int((now - self.start) / self.every_s)
        return self.statuses[min(max(step, 0), len(self.statuses) - 1)]


class OrderOverrides:
    """Order statuses forced by the control API; they win over the generated status."""

    def __init__(self, clock: EmulatorClock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._plans: dict[tuple[str, str], _StatusPlan] = {}

    def schedule(self, country: str, number: str, statuses: Sequence[str], every_s: float = 0.0) -> None:
        """Status i applies from now + i * every_s; a single status applies at once and stays."""
        with self._lock:
            self._plans[(country, number)] = _StatusPlan(tuple(statuses), self._clock.monotonic(), every_s)

    def status(self, country: str, number: str) -> str | None:
        with self._lock:
            plan = self._plans.get((country, number))
        return plan.current(self._clock.monotonic()) if plan else None

    def for_country(self, country: str) -> dict[str, str]:
        """Current overridden statuses of one country (order number -> status)."""
        now = self._clock.monotonic()
        with self._lock:
            return {num: plan.current(now) for (c, num), plan in self._plans.items() if c == country}

    def clear(self) -> None:
        with self._lock:
            self._plans.clear()


class Submissions:
    """Orders created through the Order Entry submit call; their status advances every 5 s."""

    STATUSES = ("RECEIVED", "IN_PROCESS", "CONFIRMED")
    STEP_S = 5.0

    def __init__(self, clock: EmulatorClock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._orders: dict[str, tuple[float, dict[str, Any]]] = {}
        self._ids = itertools.count(1)

    def create(self, order: Mapping[str, Any]) -> str:
        with self._lock:
            order_id = f"SE{next(self._ids):08d}"
            self._orders[order_id] = (self._clock.monotonic(), dict(order))
        return order_id

    def status(self, order_id: str) -> str | None:
        with self._lock:
            entry = self._orders.get(order_id)
        if entry is None:
            return None
        return _StatusPlan(self.STATUSES, entry[0], self.STEP_S).current(self._clock.monotonic())

    def clear(self) -> None:
        with self._lock:
            self._orders.clear()
            self._ids = itertools.count(1)


class EmulatorState:
    """Configuration snapshot plus all mutable parts; ``reset`` restores the startup state."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.initial_config = config
        self.config = config
        self._config_lock = threading.Lock()
        self.stats = Stats()
        self.clock = EmulatorClock()
        self.tokens = TokenStore(self.clock)
        self.faults = FaultRegistry()
        self.spike_arrest = SpikeArrest()
        self.overrides = OrderOverrides(self.clock)
        self.submissions = Submissions(self.clock)
        #: Bumped by ``reset``. A connection accepted before a reset belongs to an earlier test or run: its
        #: requests are refused and never counted, so a straggler cannot leak into the next test's numbers.
        self.generation = 0

    def configure(self, knobs: Mapping[str, Any]) -> EmulatorConfig:
        """Apply knobs atomically (ValueError leaves the config untouched)."""
        with self._config_lock:
            self.config = self.config.with_knobs(knobs)
            return self.config

    def today(self) -> dt.date:
        """The emulator's notion of today: the ``today`` knob, else the current UTC date."""
        return self.config.today or dt.datetime.now(dt.timezone.utc).date()

    def reset(self) -> None:
        with self._config_lock:
            self.config = self.initial_config
            self.generation += 1
        self.stats.reset()
        self.clock.reset()
        self.tokens.clear()
        self.faults.clear()
        self.spike_arrest.reset()
        self.overrides.clear()
        self.submissions.clear()
