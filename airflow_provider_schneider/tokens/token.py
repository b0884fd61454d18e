"""A bearer token as a value: the secret, when it stops being valid, and which rejected token it replaces.

Stdlib only: every room that handles tokens (the client-credentials flow, the cache tiers, the bearer auth)
imports this one leaf, never each other for it.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Any

#: Schneider documents one-hour tokens; used when a response omits ``expires_in``.
DEFAULT_LIFETIME = 3600.0
#: A leeway never eats more than this share of a token's life, so short-lived tokens are still used.
MAX_LEEWAY_SHARE = 0.25


@dataclass(frozen=True)
class Token:
    """A bearer token and when it stops being valid (epoch seconds). ``repr`` hides the token."""

    access_token: str = field(repr=False)
    expires_at: float
    lifetime: float
    #: ``token_id`` of the token rejected with HTTP 401 that this one was requested to replace (``None`` for a
    #: routine renewal): another process that saw the same token rejected may take this one as its replacement.
    replaces: str | None = None

    @property
    def issued_at(self) -> float:
        """When the token request left (epoch seconds, by the clock of the host that asked)."""
        return self.expires_at - self.lifetime

    def is_fresh(self, leeway: float, now: float | None = None, *, spread: float = 0.0) -> bool:
        """True while the token may start a request: ``now < expires_at - leeway`` (leeway capped at a share
        of the lifetime), the margin stretched by ``spread`` (e.g. 0.3 = 30 % earlier)."""
        now = time.time() if now is None else now
        return now < self.expires_at - min(leeway, self.lifetime * MAX_LEEWAY_SHARE) * (1.0 + spread)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "access_token": self.access_token,
            "expires_at": self.expires_at,
            "lifetime": self.lifetime,
        }
        if self.replaces is not None:
            data["replaces"] = self.replaces
        return data

    @classmethod
    def from_json(cls, data: Any) -> Token | None:
        """Rebuild a cached token; ``None`` for anything malformed (a cache entry is never trusted blindly)."""
        try:
            token = cls(
                access_token=str(data["access_token"]),
                expires_at=float(data["expires_at"]),
                lifetime=float(data["lifetime"]),
                replaces=_replaces(data.get("replaces")),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        plausible = math.isfinite(token.expires_at) and math.isfinite(token.lifetime) and token.lifetime > 0
        return token if token.access_token and plausible else None


def _replaces(raw: object) -> str | None:
    """A cached ``replaces`` if it is a token id (short lower-case hex), else ``None``."""
    if isinstance(raw, str) and 0 < len(raw) <= 64 and all(c in "0123456789abcdef" for c in raw):
        return raw
    return None


def token_id(token: Token) -> str:
    """A stable, non-reversible name for a token (to compare and remember tokens without keeping them)."""
    return hashlib.sha256(token.access_token.encode()).hexdigest()[:32]


def same_token(a: Token | None, b: Token | None) -> bool:
    return a is not None and b is not None and a.access_token == b.access_token
