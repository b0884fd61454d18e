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
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

#: ``0``/``false``/``off`` turns the cross-host lease off (each host then renews on its own, as before).
LEASE_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_TOKEN_CLUSTER_LEASE"
#: Settle delay in seconds (0.05 .. 10; default :data:`DEFAULT_SETTLE`).
SETTLE_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_TOKEN_CLUSTER_SETTLE"
DEFAULT_SETTLE = 0.5
SETTLE_BOUNDS = (0.05, 10.0)
#: Longest a loser waits for the winner's token (also the lease's lifetime), whatever ``token_wait_timeout``.
MAX_WAIT = 30.0
_OFF = ("0", "false", "no", "off")


def lease_enabled(settings: Any) -> bool:
    """The connection's ``token_cluster_lease`` once it exists, else :data:`LEASE_ENV`; on by default."""
    value = getattr(settings, "token_cluster_lease", None)
    if value is None:
        return os.environ.get(LEASE_ENV, "").strip().lower() not in _OFF
    return bool(value)


def settle_delay(settings: Any) -> float:
    """The connection's ``token_cluster_settle`` once it exists, else :data:`SETTLE_ENV`, within bounds."""
    value = getattr(settings, "token_cluster_settle", None)
    if value is None:
        try:
            value = float(os.environ.get(SETTLE_ENV, DEFAULT_SETTLE))
        except ValueError:
            value = DEFAULT_SETTLE
    value = float(value)
    if not math.isfinite(value):
        value = DEFAULT_SETTLE
    return min(max(value, SETTLE_BOUNDS[0]), SETTLE_BOUNDS[1])


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
    ``wait`` from now.
    """

    def __init__(
        self,
        store: LeaseStore,
        *,
        settle: float,
        wait: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.store = store
        self.settle = settle
        self.wait = max(0.0, min(wait, MAX_WAIT))
        self._clock, self._sleep, self._monotonic = clock, sleep, monotonic
        self.holder = secrets.token_hex(8)
        self.until = 0.0
        #: What happened, for the token-request log line.
        self.note = ""

    def _read(self) -> LeaseRecord | None:
        return LeaseRecord.parse(self.store.get())

    def acquire(self) -> str:
        started = self._monotonic()
        current = self._read()
        if not self.store.ok:
            self.note = "cluster lease unavailable"
            return "failed"
        now = self._clock()
        if current is not None and current.until > now:
            self.until = min(current.until, now + self.wait)
            self.note = "another host holds the cluster lease"
            return "lost"
        self.store.set(LeaseRecord(self.holder, now + self.wait).dump())
        if not self.store.ok:
            self.note = "cluster lease unavailable"
            return "failed"
        # Every contender's write must land before anyone reads back: wait out at least twice what our own
        # read + write took, so a slow Variable API stretches the delay instead of breaking the assumption.
        spent = self._monotonic() - started
        self._sleep(min(max(self.settle, 2.0 * spent), self.wait or self.settle))
        back = self._read()
        if not self.store.ok:
            self.note = "cluster lease unavailable"
            return "failed"
        if back is not None and back.holder == self.holder:
            self.note = "cluster lease won"
            return "won"
        now = self._clock()
        self.until = min(back.until, now + self.wait) if back is not None else now + self.wait
        self.note = "another host won the cluster lease"
        return "lost"

    def still_held_by_other(self) -> bool:
        """For a waiting loser: is a live lease (someone's renewal in progress) still there?"""
        current = self._read()
        return self.store.ok and current is not None and current.holder != self.holder and current.until > self._clock()

    def release(self) -> None:
        """Delete the lease if it is still ours (a later holder's lease is kept)."""
        current = self._read()
        if self.store.ok and current is not None and current.holder == self.holder:
            self.store.delete()
