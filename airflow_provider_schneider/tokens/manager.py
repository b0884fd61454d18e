"""Token reuse across task runs, processes and workers: one token request per credential per lifetime.

Tiers, cheapest first (:mod:`.tiers`): process memory -> host file cache (shared by a worker's
processes) -> cluster cache (an Airflow Variable, shared by every worker through the Task SDK) -> token
endpoint.

Single flight: threads of a process take a process lock; processes of a host take an ``flock`` on the
cache directory's lock file and re-check the file after getting it, so N processes finding the token stale
at once cause one request. Only the lock holder reads the Variable (the cluster tier is re-read right
before a refresh), which keeps Variable traffic to one read per host and token lifetime. Across hosts, the
lock holders that still find no fresh token take a lease in the cluster tier (:mod:`.lease`): one of
them renews, the others wait (bounded) for its token, so a whole cluster makes one request per renewal.
That slow path (host lock wait, Variable reads, lease, waits) has one deadline, ``token_wait_timeout``:
once it is spent no cluster-tier call starts, and the token comes from the endpoint.

After a 401, ``get_token(replacing=rejected)`` hands out only a token requested after this process first
saw the rejection, or one another process requested to replace that token (``Token.replaces``); an older
token a tier still holds (maybe revoked with it) is skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from airflow_provider_schneider import metrics
from airflow_provider_schneider.config.settings import SchneiderSettings
from airflow_provider_schneider.process import STATE, SYSTEM_CLOCK, Clock, default_cache_dir
from airflow_provider_schneider.tokens.lease import MAX_WAIT as LEASE_MAX_WAIT
from airflow_provider_schneider.tokens.lease import Budget, ClusterLease
from airflow_provider_schneider.tokens.sealing import CacheKey, TokenCipher
from airflow_provider_schneider.tokens.tiers import CacheTier, FileTier, MemoryTier, VariableTier
from airflow_provider_schneider.tokens.token import Token, same_token, token_id

log = logging.getLogger(__name__)

#: A cached token claiming to stay valid longer than its lifetime (+ this slack) from now was written under
#: a clock we cannot trust (clock stepped back, or another host's clock runs ahead): it is not used.
CLOCK_SLACK = 60.0
#: How many rejected (HTTP 401) tokens a process remembers per credential.
_REJECTED_KEEP = 32


@dataclasses.dataclass(frozen=True)
class _Replacement:
    """What may stand in for a token rejected with HTTP 401 (id ``rejected``, first seen at ``since``)."""

    rejected: str
    since: float

    def accepts(self, token: Token) -> bool:
        return token.replaces == self.rejected or token.issued_at >= self.since


class TokenManager:
    """Hands out a usable token from the cheapest tier that has one; refreshes one at a time.

    ``last_source`` says where the current token came from (``memory``, ``file``, ``variable`` or
    ``endpoint``); ``token_requests`` counts this manager's calls to the token endpoint. ``fetch`` asks the
    token endpoint (tests pass a fake); ``clock`` is where time decides (tests pass a fake one).
    """

    #: A bearer auth may ask for a replacement after a 401 (:class:`~.bearer.TokenSource`).
    renews = True

    def __init__(self, settings: SchneiderSettings, fetch: Callable[[], Token], *, clock: Clock = SYSTEM_CLOCK):
        if not settings.client_secret:
            raise ValueError("TokenManager needs a client secret (API-key connections have no token)")
        self.settings = settings
        self._fetch = fetch
        self._clock = clock
        self.key = CacheKey.for_settings(settings)
        with STATE.lock:
            self._rejected = STATE.rejected.setdefault(self.key.digest, {})
        self._current: Token | None = None
        self.token_requests = 0
        self.last_source: str | None = None
        self._rejected_since_refresh = False
        #: Tiers that held a token this manager saw rejected (and removed): said so in the next refresh note.
        self._discarded_from: set[str] = set()
        self._announced = False
        # Each process renews at its own random point inside [leeway, leeway * (1 + spread)]: workers that
        # started in a burst then do not all renew at the same instant, so the first renewal reaches the
        # other hosts through the cluster tier before they would ask the endpoint themselves.
        self._refresh_spread = random.uniform(0.0, settings.token_refresh_spread)
        self._lease_wait = LEASE_MAX_WAIT
        cipher = TokenCipher(settings.client_secret, self.key)
        tiers = settings.token_cache
        self.memory = MemoryTier(self.key, cipher) if "memory" in tiers else None
        directory = Path(settings.token_cache_dir) if settings.token_cache_dir else default_cache_dir()
        self.file = FileTier.create(directory, self.key, cipher) if "file" in tiers else None
        self.variable = VariableTier(self.key, cipher) if "variable" in tiers else None

    @property
    def _lock(self) -> threading.Lock:
        """Looked up on use, so a forked child gets a fresh lock, never one a parent thread was holding."""
        return STATE.refresh_lock(self.key.digest)

    def usable(self, token: Token | None, now: float | None = None, wanted: _Replacement | None = None) -> bool:
        """Fresh for at least the (capped) leeway, plausible under this host's clock, not rejected, and (after
        a 401) a replacement of the rejected token."""
        if token is None:
            return False
        now = self._clock.time() if now is None else now
        if not math.isfinite(token.expires_at) or token.expires_at - now > token.lifetime + CLOCK_SLACK:
            return False
        fresh = token.is_fresh(self.settings.token_leeway, now, spread=self._refresh_spread)
        return fresh and token_id(token) not in self._rejected and (wanted is None or wanted.accepts(token))

    def current(self, *, replacing: Token | None = None) -> Token | None:
        """The token this manager holds if still usable, without touching a lock, a file or the network (an
        event loop asks this first and goes to :meth:`get_token` in a thread only when it is ``None``)."""
        wanted = self._replacement(replacing)
        current = self._current
        return current if self.usable(current, wanted=wanted) else None

    def get_token(self, *, replacing: Token | None = None) -> Token:
        """A token valid for at least the leeway; at most one refresh per host at a time.

        ``replacing``: a token the API answered 401 to (after :meth:`invalidate`). Only its replacement is
        then handed out, never an older token a tier still holds (it may have been revoked with it).
        """
        wanted = self._replacement(replacing)
        current = self._current
        if self.usable(current, wanted=wanted):
            return current  # type: ignore[return-value]
        with self._lock:
            if self.usable(self._current, wanted=wanted):  # another thread of this manager got one while we waited
                return self._current  # type: ignore[return-value]
            budget = Budget(self.settings.token_wait_timeout, self._clock)
            notes: list[str] = []
            token = self._probe(self.memory, notes, wanted) or self._probe(self.file, [], wanted)
            if token is None:
                with self._host_lock(budget.left()):
                    # Re-check after the lock: a peer may have refreshed while we waited. Only the lock holder
                    # reads the cluster tier, right before it would otherwise ask the endpoint.
                    token = self._probe(self.file, notes, wanted) or self._probe(self.variable, notes, wanted, budget)
                    if token is None:
                        token = self._coordinated_refresh(notes, budget, wanted)
            self._current = token
            return token

    def invalidate(self, token: Token) -> float:
        """Forget ``token`` (after a 401) in every tier that still holds exactly this token.

        Returns when this process first saw it rejected: ``get_token(replacing=token)`` hands out only a
        token requested after that (or requested by another process to replace it).
        """
        seen = self._clock.time()  # before the locks: a peer's refresh while we wait for them counts as newer
        with self._lock:
            with STATE.lock:
                first_report = token_id(token) not in self._rejected
                since = self._rejected.setdefault(token_id(token), seen)
                while len(self._rejected) > _REJECTED_KEEP:
                    del self._rejected[next(iter(self._rejected))]
            self._rejected_since_refresh |= first_report
            if same_token(self._current, token):
                self._current = None
            with self._host_lock():
                for tier in (self.variable, self.file, self.memory):  # widest first: less to re-promote
                    if tier is not None:
                        tier.discard(token)
                        self._discarded_from.add(tier.name)
        return since

    # -- internals ----------------------------------------------------------------------------------------

    def _replacement(self, replacing: Token | None) -> _Replacement | None:
        if replacing is None:
            return None
        rejected = token_id(replacing)
        with STATE.lock:
            since = self._rejected.get(rejected)
        return _Replacement(rejected, self._clock.time() if since is None else since)

    def _host_lock(self, timeout: float | None = None) -> contextlib.AbstractContextManager[object]:
        if self.file is None:
            return contextlib.nullcontext()
        return self.file.locked(self.settings.token_wait_timeout if timeout is None else timeout, self._clock)

    def _probe(
        self,
        tier: CacheTier | None,
        notes: list[str],
        wanted: _Replacement | None = None,
        budget: Budget | None = None,
    ) -> Token | None:
        """The tier's token if usable (promoted into the cheaper tiers), else ``None`` with a note why.

        The cluster tier is not read once ``budget`` is spent."""
        if tier is None:
            return None
        status = tier.status()
        if status is not None:
            notes.append(f"{tier.name} ({status})")
            return None
        if tier.remote and budget is not None and budget.spent:
            notes.append(f"{tier.name} (not read: token_wait_timeout spent)")
            return None
        token, name = tier.read(), tier.name
        if token is not None and self.usable(token, wanted=wanted):
            for cheaper in (self.memory, self.file):
                if cheaper is tier:
                    break
                if cheaper is not None:
                    cheaper.write(token)
            self.last_source = name
            metrics.token_reused(name)
            self._announce(
                f"Using the Schneider token of connection '{self.settings.conn_id}' from the {name} cache", token
            )
            return token
        if token is None:
            if tier.unreadable:
                why = "unreadable: corrupt, foreign or other secret"
            elif tier.name in self._discarded_from:
                why = "its token was rejected with HTTP 401 and removed"
            else:
                why = "empty"
            notes.append(f"{tier.name} ({why})")
        elif token_id(token) in self._rejected:
            notes.append(f"{tier.name} (rejected by the API)")
        elif self.usable(token):
            notes.append(f"{tier.name} (older than the HTTP 401)")
        else:
            notes.append(f"{tier.name} (expiring)")
        return None

    def _announce(self, message: str, token: Token) -> None:
        """One INFO line per manager (so per task) on where its token came from; DEBUG after that."""
        level = logging.DEBUG if self._announced else logging.INFO
        self._announced = True
        log.log(level, "%s; valid until %s UTC", message, time.strftime("%H:%M:%S", time.gmtime(token.expires_at)))

    def _coordinated_refresh(self, notes: list[str], budget: Budget, wanted: _Replacement | None) -> Token:
        """Renew once for the whole cluster: the lease winner asks the endpoint, losers wait for its token.

        Off (a plain refresh) without a usable cluster tier or with the lease turned off; a failing or
        timed-out coordination also ends in a plain refresh, so a task is never blocked beyond ``budget``.
        """
        variable = self.variable
        if variable is None or variable.status() is not None or not self.settings.token_cluster_lease:
            off = variable is not None and variable.status() is None
            return self._refresh(notes, "cluster lease off" if off else None, wanted=wanted, budget=budget)
        lease = ClusterLease(
            variable.lease_store(),
            settle=self.settings.token_cluster_settle,
            wait=min(self.settings.token_wait_timeout, self._lease_wait),
            clock=self._clock,
            budget=budget,
        )
        outcome = lease.acquire()
        if outcome == "won":
            try:
                # A previous holder may have published its token between our probe and our lease.
                token = self._probe(variable, [], wanted, budget)
                return token or self._refresh(notes, lease.note, wanted=wanted, budget=budget)
            finally:
                lease.release()
        if outcome == "lost":
            token = self._await_cluster_token(lease, budget, wanted)
            if token is not None:
                return token
            return self._refresh(notes, f"{lease.note}, no token from it in time", wanted=wanted, budget=budget)
        return self._refresh(notes, lease.note, wanted=wanted, budget=budget)

    def _await_cluster_token(self, lease: ClusterLease, budget: Budget, wanted: _Replacement | None) -> Token | None:
        """Poll the cluster tier for the lease holder's token until it comes, the lease ends, or time is up."""
        variable = self.variable
        assert variable is not None
        started = self._clock.monotonic()
        wait = max(0.0, min(lease.until - self._clock.time(), lease.wait)) + lease.settle
        deadline = min(started + wait, budget.deadline)
        delay = 0.05
        while self._clock.monotonic() < deadline:
            self._clock.sleep(min(delay, max(0.0, deadline - self._clock.monotonic())))
            delay = min(delay * 2, 0.5)
            token = self._probe(variable, [], wanted, budget)
            if token is None and variable.status() is None:
                if budget.spent:
                    break
                if lease.still_held_by_other():
                    continue
                token = self._probe(variable, [], wanted, budget)  # the holder finished or gave up: one last look
            if token is not None:
                log.info(
                    "Waited %.1fs for another host's Schneider token renewal (cluster lease): no request from here",
                    self._clock.monotonic() - started,
                )
            return token
        log.warning(
            "Waited %.1fs for another host's Schneider token renewal (connection '%s'); renewing here",
            self._clock.monotonic() - started,
            self.settings.conn_id,
        )
        return None

    def _refresh(
        self,
        notes: list[str],
        coordination: str | None = None,
        *,
        wanted: _Replacement | None = None,
        budget: Budget | None = None,
    ) -> Token:
        token = self._fetch()
        if wanted is not None:  # tells the other processes this token came after that 401
            token = dataclasses.replace(token, replaces=wanted.rejected)
        self.token_requests += 1
        metrics.incr("token.requests")
        self._discarded_from.clear()
        self._announced = True
        with STATE.lock:  # the endpoint is authoritative: a re-issued token is good again
            self._rejected.pop(token_id(token), None)
        late = budget is not None and budget.spent  # no cluster-tier call starts after the deadline
        for tier in (self.memory, self.file, None if late else self.variable):
            if tier is not None:
                tier.write(token)
        if late and self.variable is not None and self.variable.status() is None:
            coordination = ", ".join(filter(None, (coordination, "not published: token_wait_timeout spent")))
        self.last_source = "endpoint"
        if self._rejected_since_refresh:
            notes.insert(0, "previous token rejected with HTTP 401")
            self._rejected_since_refresh = False
        log.info(
            "Requested a new Schneider token for connection '%s' (cache miss: %s)%s; valid until %s UTC",
            self.settings.conn_id,
            ", ".join(notes) or "no cache tiers enabled",
            f"; {coordination}" if coordination else "",
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(token.expires_at)),
        )
        return token
