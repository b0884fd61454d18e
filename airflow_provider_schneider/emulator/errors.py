"""Error responses of the emulated gateway.

Handlers raise :class:`ApiError`; the server renders it. Keeping the common 4xx shape in one place makes
every endpoint answer like the real gateway (``code``, ``userMessage``, ``developerMessage``, ``moreInfo``).
"""

from __future__ import annotations

from typing import Any

MORE_INFO = "https://api-explorer.se.com"


def error_body(code: str, user_message: str, developer_message: str = "") -> dict[str, str]:
    """Return the gateway's common error shape."""
    return {
        "code": code,
        "userMessage": user_message,
        "developerMessage": developer_message or user_message,
        "moreInfo": MORE_INFO,
    }


class ApiError(Exception):
    """An HTTP error answer; ``body`` overrides the common shape (the token endpoint speaks OAuth)."""

    def __init__(
        self,
        status: int,
        code: str,
        user_message: str,
        developer_message: str = "",
        *,
        headers: dict[str, str] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(f"{status} {code}: {user_message}")
        self.status = status
        self.code = code
        self.headers = dict(headers or {})
        self.body = body if body is not None else error_body(code, user_message, developer_message)


def missing_field(name: str) -> ApiError:
    """400 for an absent mandatory parameter."""
    return ApiError(400, "MISSING_FIELD", f"Mandatory parameter '{name}' is missing", f"missing: {name}")


def invalid_field(name: str, value: object, expected: str) -> ApiError:
    """400 for a parameter whose value breaks the documented rule."""
    return ApiError(400, "INVALID_FIELD", f"Parameter '{name}' is invalid: {expected}", f"{name}={value!r}: {expected}")


def not_found(code: str, message: str) -> ApiError:
    """404 in the common shape (unknown path, product, quote, order)."""
    return ApiError(404, code, message)
