"""One API call as a value: what the client sends, how it names the call in logs and errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ApiRequest:
    """A call, complete: ``url`` as sent (never shown), ``path`` as shown (relative, redacted), the query as
    sent (repeated names allowed), an optional JSON body and the page it fetches (for errors and logs)."""

    method: str
    url: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    body: Any = None
    page: int | None = None

    @property
    def label(self) -> str:
        """``GET /v1/... page 3``: how logs and retries name the call (never the query: it may hold a key)."""
        return f"{self.method} {self.path}" + (f" page {self.page}" if self.page else "")
