"""Fault injection: rules that make the next matching requests fail in a chosen way.

The registry only decides *which* rule a request consumes; the server carries the fault out, because some
kinds (``reset``, ``truncate`` and the streaming kinds of :mod:`.hostile`) act on the socket rather than on
a response.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Mapping
from typing import Any

from . import apigee
from .errors import error_body

#: Kinds written to the socket by :func:`.hostile.send` (slow, huge or never-ending answers).
STREAM_KINDS = ("drip", "drip_headers", "huge", "gzip_bomb", "endless")
#: Kinds that replace the normal answer entirely with one response (the others wrap normal handling).
REPLACING_KINDS = ("status", "html", "invalid_json", "nested")
KINDS = (
    "status",
    "html",
    "invalid_json",
    "truncate",
    "reset",
    "delay",
    "change_total_pages",
    "lie_pages",
    "nested",
    *STREAM_KINDS,
)
GIB = 1 << 30
#: Bounds of the hostile kinds' parameters: (default, minimum, maximum).
SIZE_BOUNDS = {"huge": (2 * GIB, 128, 1 << 40), "gzip_bomb": (2 * GIB, 128, 16 * GIB)}
INTERVAL_BOUNDS = (3.0, 0.001, 60.0)
DEPTH_BOUNDS = (100_000, 1, 10_000_000)
#: Hard cap (``delay_s``) on how long a streaming answer may last, by kind; at most MAX_STREAM_S.
STREAM_SECONDS = {"endless": 60.0, "drip": 600.0, "drip_headers": 600.0, "huge": 600.0, "gzip_bomb": 600.0}
MAX_STREAM_S = 3600.0
_DEFAULT_CODES = {
    401: "INVALID_TOKEN",
    403: "FORBIDDEN",
    408: "REQUEST_TIMEOUT",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}


@dataclasses.dataclass
class FaultRule:
    """One rule; ``times`` counts down (-1 = forever), ``skip`` lets the first K matches through."""

    id: str
    target: str
    kind: str
    status: int | None = None
    retry_after: str | None = None
    delay_s: float = 0.0
    delta: int = 1
    times: int = 1
    skip: int = 0
    match_query: dict[str, str] = dataclasses.field(default_factory=dict)
    method: str | None = None
    code: str | None = None
    message: str | None = None
    size: int | None = None
    interval_s: float | None = None
    depth: int | None = None
    seen: int = 0
    applied: int = 0

    def matches(self, channel: str, path: str, method: str, query: Mapping[str, list[str]]) -> bool:
        """Does this rule apply to a request on ``channel`` ("token" or "api") at ``path``?"""
        if self.target in ("token", "api"):
            if self.target != channel:
                return False
        elif not path.startswith(self.target):
            return False
        if self.method and self.method != method:
            return False
        return all(value in query.get(name, ()) for name, value in self.match_query.items())

    @property
    def active(self) -> bool:
        return self.times != 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def parse_rule(raw: Mapping[str, Any], rule_id: str) -> FaultRule:
    """Build a rule from control-API JSON; raises ValueError with a readable message."""
    fields = {f.name for f in dataclasses.fields(FaultRule)} - {"seen", "applied"}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ValueError(f"unknown fault field(s): {', '.join(unknown)}")
    values = dict(raw)
    values["id"] = str(values.get("id") or rule_id)
    if not isinstance(values.get("target"), str) or not values["target"]:
        raise ValueError("fault 'target' must be 'token', 'api' or a path prefix like '/v1/supply-chain'")
    if values["target"] not in ("token", "api") and not values["target"].startswith("/"):
        raise ValueError("a path-prefix fault target must start with '/'")
    if values.get("kind") not in KINDS:
        raise ValueError(f"fault 'kind' must be one of {', '.join(KINDS)}")
    for name in ("times", "skip", "delta"):
        if name in values and (not isinstance(values[name], int) or isinstance(values[name], bool)):
            raise ValueError(f"fault '{name}' must be an int")
    if values.get("times", 1) < -1 or values.get("skip", 0) < 0:
        raise ValueError("fault 'times' must be >= -1 and 'skip' >= 0")
    if values.get("status") is not None:
        values["status"] = int(values["status"])
        if not 100 <= values["status"] <= 599:
            raise ValueError("fault 'status' must be an HTTP status code")
    if values["kind"] == "status" and values.get("status") is None:
        raise ValueError("a 'status' fault needs a 'status' code")
    if not isinstance(values.get("match_query", {}), dict):
        raise ValueError("fault 'match_query' must be an object of query name -> value")
    values["match_query"] = {str(k): str(v) for k, v in values.get("match_query", {}).items()}
    if values.get("retry_after") is not None:
        values["retry_after"] = str(values["retry_after"])
    if values.get("method"):
        values["method"] = str(values["method"]).upper()
    values["delay_s"] = float(values.get("delay_s", 0.0))
    _hostile_parameters(values)
    return FaultRule(**values)


def _bounded(values: dict[str, Any], name: str, bounds: tuple[float, float, float], integer: bool) -> None:
    default, low, high = bounds
    value = values.get(name)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ValueError(f"fault '{name}' must be {'an int' if integer else 'a number'}")
    if not low <= value <= high:
        raise ValueError(f"fault '{name}' of a '{values['kind']}' fault must be in {low}..{high}")
    values[name] = int(value) if integer else float(value)


def _hostile_parameters(values: dict[str, Any]) -> None:
    """Fill in and bound ``size``, ``interval_s``, ``depth`` and the stream cap ``delay_s`` of a kind."""
    kind = values["kind"]
    users = {"size": tuple(SIZE_BOUNDS), "interval_s": ("drip", "drip_headers"), "depth": ("nested",)}
    for name, kinds in users.items():
        if values.get(name) is not None and kind not in kinds:
            raise ValueError(f"fault '{name}' applies to kind {' or '.join(kinds)} only")
    if kind in SIZE_BOUNDS:
        _bounded(values, "size", SIZE_BOUNDS[kind], integer=True)
    if kind in users["interval_s"]:
        _bounded(values, "interval_s", INTERVAL_BOUNDS, integer=False)
    if kind == "nested":
        _bounded(values, "depth", DEPTH_BOUNDS, integer=True)
    if kind in STREAM_SECONDS:
        if not values["delay_s"]:
            values["delay_s"] = STREAM_SECONDS[kind]
        if not 0 < values["delay_s"] <= MAX_STREAM_S:
            raise ValueError(f"fault 'delay_s' (the cap of a '{kind}' stream) must be in 0..{MAX_STREAM_S} s")


class FaultRegistry:
    """Thread-safe ordered list of rules; a request consumes at most one rule."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, raw: Mapping[str, Any]) -> FaultRule:
        with self._lock:
            rule = parse_rule(raw, f"f{next(self._ids)}")
            if any(r.id == rule.id for r in self._rules):
                raise ValueError(f"a fault with id {rule.id!r} already exists")
            self._rules.append(rule)
            return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.as_dict() for r in self._rules]

    def take(self, channel: str, path: str, method: str, query: Mapping[str, list[str]]) -> FaultRule | None:
        """Return (and consume one use of) the first active rule that matches and is past its skips."""
        with self._lock:
            for rule in self._rules:
                if not rule.active or not rule.matches(channel, path, method, query):
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip:
                    continue
                if rule.times > 0:
                    rule.times -= 1
                rule.applied += 1
                return dataclasses.replace(rule)
        return None


def status_body(rule: FaultRule, channel: str, profile: str = "default") -> dict[str, Any]:
    """Error JSON of a ``status`` fault: OAuth shape on the token endpoint, common shape elsewhere; the
    ``apigee`` profile answers ``ErrorCode``/``Error`` on the token endpoint and a ``fault`` object elsewhere."""
    status = rule.status or 500
    if profile == apigee.PROFILE:
        return apigee.status_fault_body(status, channel, rule.code, rule.message)
    code = rule.code or _DEFAULT_CODES.get(status, str(status))
    message = rule.message or f"Emulated fault: HTTP {status}"
    if channel == "token":
        return {"error": code.lower(), "error_description": message}
    return error_body(code, message, f"fault rule {rule.id}")


def html_page(status: int) -> bytes:
    """A gateway-style HTML error page, as proxies and WAFs send instead of JSON."""
    return (
        "<!DOCTYPE html>\n<html><head><title>Error</title></head><body>"
        f"<h1>{status} Service error</h1><p>The request could not be satisfied.</p>"
        "<hr><address>emulated gateway</address></body></html>\n"
    ).encode()


INVALID_JSON = b'{"orderList": [{"orderNumber": "FR00000001", "orderStatus": '
