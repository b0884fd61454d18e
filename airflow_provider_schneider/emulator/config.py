"""Startup configuration and the runtime knobs of the emulator.

One frozen dataclass holds everything; ``POST /_emulator/config`` swaps in a validated copy, so a handler
always reads one consistent snapshot without taking a lock.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from .drift import DRIFT_STYLES

EXPIRES_IN_STYLES = ("int", "string", "missing")
PAGE_SIZE_OVER_MAX = ("error", "clamp")
DELTA_SEMANTICS = ("since", "on")
#: ``default``: textbook OAuth errors and Schneider's ``code``/``userMessage``; ``apigee``: an Apigee-style
#: gateway (string-typed token fields, ``ErrorCode``/``Error`` token errors, ``fault`` objects on API calls).
PROFILES = ("default", "apigee")
MAX_ORDERS_PER_COUNTRY = 99_999_999
MAX_PRODUCTS = 100_000

#: Fields that ``POST /_emulator/config`` may change; host, port and verbose are fixed at startup.
KNOBS = (
    "token_lifetime",
    "latency_ms",
    "token_latency_ms",
    "rate_limit",
    "orders_per_country",
    "products",
    "seed",
    "expires_in_style",
    "token_type_style",
    "page_size_over_max",
    "delta_semantics",
    "path_substitutions",
    "accept_api_key",
    "client_id",
    "client_secret",
    "api_key",
    "today",
    "drift",
    "profile",
    "required_scope",
    "removed_orders",
)


@dataclasses.dataclass(frozen=True)
class EmulatorConfig:
    """Everything that shapes the emulator's answers; validated on construction (raises ValueError)."""

    host: str = "127.0.0.1"
    port: int = 0
    token_lifetime: float = 3600
    seed: int = 42
    orders_per_country: int = 250
    products: int = 500
    latency_ms: float = 0.0
    token_latency_ms: float = 0.0
    #: A spike arrest: more than this many API calls in any second are refused (0: none; :mod:`.spike`).
    rate_limit: float = 0.0
    client_id: str = "demo-client"
    client_secret: str = "demo-secret"
    api_key: str = "demo-api-key"
    expires_in_style: str = "int"
    token_type_style: str = "Bearer"
    page_size_over_max: str = "error"
    delta_semantics: str = "since"
    path_substitutions: Mapping[str, str] = dataclasses.field(default_factory=dict)
    accept_api_key: bool = True
    today: dt.date | None = None
    #: ``daily``: order records drift by the day ``today`` names (:mod:`.drift`); ``none``: they never do.
    drift: str = "none"
    profile: str = "default"
    required_scope: str | None = None
    #: Order numbers deleted since startup: listings skip them, so every later order moves up one place
    #: (with ``orders_per_country`` raised by as many, the totals stay and every later page shifts).
    removed_orders: tuple[str, ...] = ()
    verbose: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.today, str):
            object.__setattr__(self, "today", _parse_date("today", self.today))
        object.__setattr__(self, "path_substitutions", dict(self.path_substitutions or {}))
        if isinstance(self.removed_orders, (list, tuple)):
            object.__setattr__(self, "removed_orders", tuple(self.removed_orders))
        problems = list(_problems(self))
        if problems:
            raise ValueError("; ".join(problems))

    def with_knobs(self, knobs: Mapping[str, Any]) -> EmulatorConfig:
        """Return a copy with ``knobs`` applied; unknown names or bad values raise ValueError."""
        unknown = sorted(set(knobs) - set(KNOBS))
        if unknown:
            raise ValueError(f"unknown knob(s): {', '.join(unknown)}; known: {', '.join(KNOBS)}")
        return dataclasses.replace(self, **dict(knobs))

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly view (dates as ISO strings)."""
        out = dataclasses.asdict(self)
        out["today"] = self.today.isoformat() if self.today else None
        out["path_substitutions"] = dict(self.path_substitutions)
        out["removed_orders"] = list(self.removed_orders)
        return out


def _parse_date(name: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{name} must be YYYY-MM-DD, got {value!r}") from None


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _problems(cfg: EmulatorConfig) -> list[str]:
    """List every invalid field at once, so a bad ``configure`` call is fixed in one round."""
    out: list[str] = []
    for name in ("token_lifetime", "latency_ms", "token_latency_ms", "rate_limit"):
        value = getattr(cfg, name)
        if not _is_number(value) or value < 0:
            out.append(f"{name} must be a number >= 0")
    if not _is_int(cfg.port) or not 0 <= cfg.port <= 65535:
        out.append("port must be an int in 0..65535")
    if not _is_int(cfg.seed):
        out.append("seed must be an int")
    if not _is_int(cfg.orders_per_country) or not 0 <= cfg.orders_per_country <= MAX_ORDERS_PER_COUNTRY:
        out.append(f"orders_per_country must be an int in 0..{MAX_ORDERS_PER_COUNTRY}")
    if not _is_int(cfg.products) or not 1 <= cfg.products <= MAX_PRODUCTS:
        out.append(f"products must be an int in 1..{MAX_PRODUCTS}")
    for name in ("host", "client_id", "client_secret", "api_key", "token_type_style"):
        if not isinstance(getattr(cfg, name), str):
            out.append(f"{name} must be a string")
    choices = (
        ("expires_in_style", EXPIRES_IN_STYLES),
        ("drift", DRIFT_STYLES),
        ("page_size_over_max", PAGE_SIZE_OVER_MAX),
        ("delta_semantics", DELTA_SEMANTICS),
        ("profile", PROFILES),
    )
    for name, allowed in choices:
        if getattr(cfg, name) not in allowed:
            out.append(f"{name} must be one of {', '.join(allowed)}")
    subs = cfg.path_substitutions
    if not all(isinstance(k, str) and k and isinstance(v, str) for k, v in subs.items()):
        out.append("path_substitutions must map non-empty strings to strings, e.g. {'~2F': '/'}")
    if not isinstance(cfg.accept_api_key, bool):
        out.append("accept_api_key must be a boolean")
    if cfg.today is not None and not isinstance(cfg.today, dt.date):
        out.append("today must be null or YYYY-MM-DD")
    if not isinstance(cfg.removed_orders, tuple) or not all(isinstance(n, str) for n in cfg.removed_orders):
        out.append("removed_orders must be a list of order numbers")
    if cfg.required_scope is not None and (not isinstance(cfg.required_scope, str) or not cfg.required_scope):
        out.append("required_scope must be null or a non-empty string")
    return out
