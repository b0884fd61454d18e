"""Transport-neutral request/response objects and a tiny path router.

Handlers get a :class:`Request` and return a :class:`Response`, so they never touch sockets and can be
read (and tested) as plain functions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .errors import ApiError, invalid_field, missing_field

if TYPE_CHECKING:
    from .state import EmulatorState


@dataclass
class Request:
    """One HTTP request; ``query`` keeps repeated parameters, ``params`` holds decoded path segments."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes = b""
    params: dict[str, str] = field(default_factory=dict)

    def first(self, name: str) -> str | None:
        """First value of a query parameter, None when absent."""
        values = self.query.get(name)
        return values[0] if values else None

    def values(self, name: str) -> list[str]:
        return list(self.query.get(name, []))

    def required(self, name: str) -> str:
        """A mandatory, non-blank query parameter (400 MISSING_FIELD otherwise)."""
        value = self.first(name)
        if value is None or not value.strip():
            raise missing_field(name)
        return value

    def integer(self, name: str, default: int | None = None, minimum: int | None = None) -> int:
        """An integer query parameter (400 MISSING_FIELD / INVALID_FIELD)."""
        raw = self.first(name)
        if raw is None:
            if default is None:
                raise missing_field(name)
            return default
        try:
            value = int(raw)
        except ValueError:
            raise invalid_field(name, raw, "must be an integer") from None
        if minimum is not None and value < minimum:
            raise invalid_field(name, raw, f"must be >= {minimum}")
        return value

    def json(self) -> Any:
        """The body parsed as JSON (400 INVALID_FIELD when it is not)."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            raise ApiError(400, "INVALID_FIELD", "Request body is not valid JSON") from None


@dataclass
class Response:
    """An answer; ``body`` is JSON-encoded unless it is already bytes."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body, separators=(",", ":")).encode()

    @classmethod
    def from_error(cls, error: ApiError) -> Response:
        return cls(error.status, error.body, dict(error.headers))


Handler = Callable[["EmulatorState", Request], Response]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


class Router:
    """Matches templates like ``/orders/{country}``; a ``{name}`` spans exactly one path segment."""

    def __init__(self, not_found_code: str = "NOT_FOUND") -> None:
        self._routes: list[Route] = []
        self._not_found_code = not_found_code

    def add(self, method: str, template: str, handler: Handler) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
        self._routes.append(Route(method.upper(), re.compile(f"^{regex}$"), handler))

    def resolve(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """Handler and percent-decoded path params; 404 for unknown paths, 405 for a wrong method."""
        allowed: list[str] = []
        for route in self._routes:
            match = route.pattern.match(path)
            if match is None:
                continue
            if route.method == method:
                return route.handler, {k: unquote(v) for k, v in match.groupdict().items()}
            allowed.append(route.method)
        if allowed:
            raise ApiError(
                405,
                "METHOD_NOT_ALLOWED",
                f"Method {method} is not allowed on {path}",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise ApiError(404, self._not_found_code, f"No resource at {path}", f"unknown path {path}")
