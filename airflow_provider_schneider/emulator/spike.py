"""A spike arrest, as an Apigee gateway applies one: more than ``rate`` API calls in any second are refused.

Apigee answers a refused call at once (the backend never sees it) with a ``fault`` whose errorcode is
``policies.ratelimit.SpikeArrestViolation``, and some gateway versions send it as a **500**: what a client
must recognise as a throttle by its code, not its status.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from . import apigee

#: The status this emulator refuses with (Apigee's own is 429; the harder case for a client is the 500).
STATUS = 500


class SpikeArrest:
    """A sliding one-second window of accepted calls (refused calls do not count, as in Apigee)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._accepted: deque[float] = deque()
        self.refused = 0

    def admits(self, rate: float, now: float | None = None) -> bool:
        """Whether a call arriving ``now`` fits ``rate`` calls per second (``rate <= 0``: no limit)."""
        if rate <= 0:
            return True
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._accepted and self._accepted[0] <= now - 1.0:
                self._accepted.popleft()
            if len(self._accepted) >= rate:
                self.refused += 1
                return False
            self._accepted.append(now)
            return True

    def reset(self) -> None:
        with self._lock:
            self._accepted.clear()
            self.refused = 0


def refusal_body(rate: float) -> dict[str, object]:
    return apigee.fault_body(apigee.SPIKE_ARREST, f"Spike arrest violation. Allowed rate : {rate:g}ps")
