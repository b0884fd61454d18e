"""Adaptive concurrency of one client: fewer calls in flight, and a slower pace, after a throttle.

A spike arrest counts calls per second; a concurrency limit counts calls in flight. A client cannot tell
which one refused it, so on a throttle it answers both, the way TCP answers a lost packet:

- **calls in flight, AIMD**: the limit starts at ``max_concurrency``, halves on a throttle (once per window:
  only a call sent *after* the last decrease can decrease it again, so eight calls refused together count
  once) and grows by one after ``limit`` successes in a row;
- **a learned pace**: on a first throttle the client paces itself at 90 % of the calls the gateway accepted
  in the last second (on a throttle while paced: at 90 % of its pace), and adds one call per second (or 5 %)
  every :data:`GROW_EVERY` seconds without a throttle, until the pace no longer binds and is dropped. At 0 ms
  latency halving the calls in flight cannot get below one call, which can still be far above a spike
  arrest's rate: the pace can.

One :class:`AdaptiveLimit` per client object (a task's hook); the host's cool-down and its configured
calls-per-second live in :mod:`.host`. Stdlib only.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from airflow_provider_schneider.client.cancellation import check_cancelled

#: Seconds without a throttle after which the learned pace grows (by one call per second, or 5 %).
GROW_EVERY = 2.0
#: The learned pace, as a share of the calls the gateway accepted in the second before a throttle.
BACK_OFF_SHARE = 0.9
#: How often a thread waiting for room re-checks whether its pull was cancelled.
_CANCEL_CHECK = 0.05


class LocalPace:
    """A calls-per-second pace for this process alone: the learned one after a throttle (``rate`` follows it),
    or the configured one when the host's shared pace is unavailable."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic):
        self.rate, self._clock = rate, clock
        self._lock = threading.Lock()
        self._next_free = 0.0

    def reserve(self) -> float:
        """Reserve the next free moment; the seconds to wait for it."""
        with self._lock:
            now = self._clock()
            moment = max(now, self._next_free)
            self._next_free = moment + 1.0 / self.rate
        return moment - now


class AdaptiveLimit:
    """Calls in flight and pace of one client; :meth:`enter` before a call, :meth:`leave` with its outcome."""

    def __init__(self, maximum: int, *, adaptive: bool = True, clock: Callable[[], float] = time.monotonic):
        self.maximum = max(1, maximum)
        self.adaptive = adaptive
        self.limit = float(self.maximum)
        #: Learned calls per second (``None``: no pace).
        self.rate: float | None = None
        self.throttles = 0
        self._clock = clock
        self._cond = threading.Condition()
        self._in_flight = 0
        self._window = 0
        self._successes = 0
        self._accepted: deque[float] = deque()
        self._rate_changed = 0.0
        self._since_change = 0
        self._pace = LocalPace(1.0, clock)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def enter(self, what: str) -> int:
        """Wait for room under the current limit; returns the call's window (for :meth:`leave`)."""
        with self._cond:
            while self._in_flight >= int(self.limit):
                check_cancelled(what)
                self._cond.wait(_CANCEL_CHECK)
            self._in_flight += 1
            return self._window

    def reserve(self) -> float:
        """Seconds until the learned pace lets the next call go (0: no pace); the moment is reserved, so the
        caller sleeps them outside any lock, just before it sends."""
        rate = self.rate
        if rate is None:
            return 0.0
        self._pace.rate = rate
        return self._pace.reserve()

    def leave(self, window: int, outcome: str) -> None:
        """``outcome``: ``"ok"`` (an answer that was not a throttle), ``"throttled"``, or ``"error"``
        (a network failure or a cancelled call: says nothing about the gateway's limits)."""
        with self._cond:
            self._in_flight -= 1
            self._cond.notify()
            if not self.adaptive or outcome == "error":
                return
            now = self._clock()
            if outcome == "throttled":
                self._throttled(window, now)
            else:
                self._succeeded(now)

    def _throttled(self, window: int, now: float) -> None:
        self.throttles += 1
        if window != self._window:
            return  # sent before the last decrease: that decrease already answered it
        self._window += 1
        self._successes = 0
        self.limit = max(1.0, self.limit / 2)
        if self.rate is None:
            # A refusal comes back at once while the calls sent before it are still being answered: count
            # those as accepted too, or the first estimate is short by the calls in flight.
            self._forget_before(now - 1.0)
            self.rate = max(1.0, (len(self._accepted) + self._in_flight) * BACK_OFF_SHARE)
        else:  # refused at this pace: the gateway's rate is below it
            self.rate = max(1.0, self.rate * BACK_OFF_SHARE)
        self._rate_changed, self._since_change = now, 0

    def _succeeded(self, now: float) -> None:
        self._accepted.append(now)
        self._forget_before(now - 1.0)
        self._successes += 1
        if self.limit < self.maximum and self._successes >= self.limit:
            self.limit = min(float(self.maximum), self.limit + 1)
            self._successes = 0
            self._cond.notify_all()
        self._since_change += 1
        if self.rate is not None and now - self._rate_changed >= GROW_EVERY:
            achieved = self._since_change / (now - self._rate_changed)
            self._rate_changed, self._since_change = now, 0
            if achieved < self.rate * 0.5 and self.limit >= self.maximum:
                self.rate = None  # the pace no longer binds: calls are slower than it anyway
            else:
                self.rate += max(1.0, self.rate * 0.05)

    def _forget_before(self, moment: float) -> None:
        while self._accepted and self._accepted[0] < moment:
            self._accepted.popleft()
