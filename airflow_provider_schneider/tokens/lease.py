"""Cross-host single flight for token renewals, over a store that has no compare-and-set (Airflow Variables).

Airflow 3 offers a task no atomic operation on shared state: Variables (and the task and asset state
stores) are last-writer-wins. The lease therefore relies on time, in the way of a "write, wait, read back"
mutex:

1. read the lease Variable; a live lease of another host means *lost*: wait for that host's token;
2. else write ``{"holder": <random id>, "until": <now + wait>}``;
3. wait the settle delay (at least twice what the read + write took), then read the lease back;
4. still ours: *won*, renew and publish the token; someone else's: *lost*.

Every contender whose write lands within the settle delay of the others reads back the same last writer,
so exactly one wins. A write slower than that (an overloaded API server) can make two hosts win: one extra
token request, never a wrong token, because a token is only ever taken from a tier after decryption with
the client secret and a freshness check. Any failing call ends the coordination (the caller then renews
plainly); a loser waits at most ``wait`` seconds, then renews itself.

A lease reaching further than any contender writes one (``until`` beyond now + :data:`MAX_WAIT` +
:data:`LEASE_CLOCK_SLACK`, e.g. ``1e12``) is forged or broken: it is no lease, and gets overwritten. One
:class:`Budget` (``token_wait_timeout``) bounds the whole renewal path, lease included: a step starts only
while time is left, so the path ends within the budget plus at most one Variable call already in flight.

Whether the lease is taken and its settle delay are the connection fields ``token_cluster_lease`` and
``token_cluster_settle`` (an empty field falls back to an environment variable, then to the provider's
default: on, 0.5 s), resolved once by :mod:`airflow_provider_schneider.config.settings`.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
from dataclasses import dataclass
from typing import Protocol

from airflow_provider_schneider.process import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

#: Longest a loser waits for the winner's token (also the lease's lifetime), whatever ``token_wait_timeout``.
MAX_WAIT = 30.0
#: Clock skew between hosts a lease's ``until`` may carry beyond :data:`MAX_WAIT`; further, it is no lease.
LEASE_CLOCK_SLACK = 10.0


class Budget:
    """One deadline for the slow path of a token renewal (host lock, cluster reads, lease, waits).

    Each step checks :meth:`left` before it starts and shrinks its waits to it. A Variable call in flight
    cannot be interrupted (Task SDK comms), so the path ends within the budget plus at most one call.
    """

    def __init__(self, seconds: float, clock: Clock = SYSTEM_CLOCK):
        self._clock = clock
        self.deadline = clock.monotonic() + max(0.0, seconds)

    def left(self) -> float:
        return max(0.0, self.deadline - self._clock.monotonic())

    @property
    def spent(self) -> bool:
        return self.left() <= 0.0


@dataclass(frozen=True)
class LeaseRecord:
    holder: str
    until: float

    @classmethod
    def parse(cls, raw: object) -> LeaseRecord | None:
        """A lease as stored, or ``None`` for anything else (a foreign or damaged value is no lease)."""
        if not isinstance(raw, str) or len(raw) > 1024:
            return None
        try:
            data = json.loads(raw)
            record = cls(str(data["holder"]), float(data["until"]))
        except (ValueError, TypeError, KeyError):
            return None
        return record if record.holder and math.isfinite(record.until) else None

    def dump(self) -> str:
        return json.dumps({"holder": self.holder, "until": round(self.until, 3)})

    def plausible(self, now: float) -> bool:
        """Whether a contender can have written it: no lease reaches further than its duration (at most
        :data:`MAX_WAIT`) plus clock skew. Beyond that it is forged or broken, and no lease at all."""
        return self.until <= now + MAX_WAIT + LEASE_CLOCK_SLACK

    def live(self, now: float) -> bool:
        return now < self.until and self.plausible(now)


class LeaseStore(Protocol):
    """What the lease needs from the cluster tier: read, write, delete one value; ``ok`` false after a failure."""

    def get(self) -> str | None: ...

    def set(self, value: str) -> None: ...

    def delete(self) -> None: ...

    @property
    def ok(self) -> bool: ...


class ClusterLease:
    """One renewal attempt's lease. ``acquire()`` says ``won``, ``lost`` or ``failed``; a winner ``release()``s.

    ``until`` (epoch seconds) is how long a loser should wait for the holder's token, never more than
    ``wait`` from now. With a ``budget``, no step starts once it is spent (the outcome is then ``failed``).
    """

    def __init__(
        self,
        store: LeaseStore,
        *,
        settle: float,
        wait: float,
        clock: Clock = SYSTEM_CLOCK,
        budget: Budget | None = None,
    ):
        self.store = store
        self.settle = settle
        self.wait = max(0.0, min(wait, MAX_WAIT))
        self._clock = clock
        self.budget = budget
        self.holder = secrets.token_hex(8)
        self.until = 0.0
        #: What happened, for the token-request log line.
        self.note = ""

    def _read(self) -> LeaseRecord | None:
        return LeaseRecord.parse(self.store.get())

    def _out_of_time(self, needed: float = 0.0) -> bool:
        """True (with the note) once the budget cannot cover ``needed`` seconds more; checked before each step."""
        if self.budget is None or self.budget.left() > needed:
            return False
        self.note = "cluster lease given up: token_wait_timeout spent"
        return True

    def _unavailable(self) -> bool:
        if self.store.ok:
            return False
        self.note = "cluster lease unavailable"
        return True

    def acquire(self) -> str:
        started = self._clock.monotonic()
        if self._out_of_time():
            return "failed"
        current = self._read()
        if self._unavailable():
            return "failed"
        now = self._clock.time()
        if current is not None and current.live(now):
            self.until = min(current.until, now + self.wait)
            self.note = "another host holds the cluster lease"
            return "lost"
        if current is not None and not current.plausible(now):
            log.warning(
                "Ignoring a Schneider token lease that claims a holder for %.3gs more (no lease lasts over %.0fs): "
                "forged or broken; taking it over",
                current.until - now,
                MAX_WAIT,
            )
        if self._out_of_time():
            return "failed"
        self.store.set(LeaseRecord(self.holder, now + self.wait).dump())
        if self._unavailable():
            return "failed"
        # Every contender's write must land before anyone reads back: wait out at least twice what our own
        # read + write took, so a slow Variable API stretches the delay instead of breaking the assumption.
        # No time left for that: give up (our lease stays until it expires; we renew, as it announces).
        spent = self._clock.monotonic() - started
        settle = min(max(self.settle, 2.0 * spent), self.wait or self.settle)
        if self._out_of_time(settle):
            return "failed"
        self._clock.sleep(settle)
        if self._out_of_time():
            return "failed"
        back = self._read()
        if self._unavailable():
            return "failed"
        if back is not None and back.holder == self.holder:
            self.note = "cluster lease won"
            return "won"
        now = self._clock.time()
        claimed = back.until if back is not None and back.plausible(now) else now + self.wait
        self.until = min(claimed, now + self.wait)
        self.note = "another host won the cluster lease"
        return "lost"

    def still_held_by_other(self) -> bool:
        """For a waiting loser: is a live lease (someone's renewal in progress) still there?"""
        current = self._read()
        if not self.store.ok or current is None:
            return False
        return current.holder != self.holder and current.live(self._clock.time())

    def release(self) -> None:
        """Delete the lease if it is still ours (a later holder's lease is kept). Skipped once the budget is
        spent: the lease then ends by itself at ``until``, at most ``wait`` after it was written."""
        if self._out_of_time():
            return
        current = self._read()
        if self.store.ok and current is not None and current.holder == self.holder and not self._out_of_time():
            self.store.delete()
