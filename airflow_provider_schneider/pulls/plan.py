"""A pull as values: the plan an operator derives from its rendered arguments, and the stats its run fills.

``prepare()`` turns an operator's (templated, rendered) arguments into one immutable :class:`PullPlan`;
running the plan (:mod:`.runner`) fills a :class:`PullStats`. Nothing of a run is kept on the operator
except the finished :class:`PullResult` (OpenLineage asks for it after ``execute``). Stdlib only: DAG files
import the operators, and the operators import this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


def frozen(mapping: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A read-only copy of ``mapping`` (a plan never changes once made)."""
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class Call:
    """One request of a pull that is not page-number paginated: the single answer, a chunk of references, or
    one product of a fan-out (``item``: the product reference or chunk the call is for)."""

    method: str
    path: str
    query: Mapping[str, Any]
    json_body: Any = None
    #: ``None``: the client's rule (GETs are retried); ``True`` for reads sent as POST.
    retry: bool | None = None
    item: Any = None


@dataclass(frozen=True)
class PullPlan:
    """Everything one ``execute`` calls, computed once from the rendered arguments before any call.

    :param resource: catalog name (the manifest's ``resource``).
    :param path: the endpoint read (a fan-out's path template): the manifest's ``endpoint``, the
        OpenLineage input and the start line.
    :param query: the query every call shares (a fan-out's items may add to it).
    :param path_params: the values of the path's placeholders (``{"country": "FR"}``).
    :param paginate: page-number pagination of ``path`` (``records_field`` per page, ``page_size``), else
        the fixed list of ``calls``, made with at most the connection's ``max_concurrency`` in flight.
    """

    resource: str | None
    path: str
    query: Mapping[str, Any]
    records_field: str | None = None
    #: The values filled into the path's placeholders (the manifest says what was pulled).
    path_params: Mapping[str, Any] = field(default_factory=lambda: frozen(None))
    paginate: bool = False
    page_size: int | None = None
    calls: tuple[Call, ...] = ()
    method: str = "GET"

    @property
    def unit(self) -> str:
        """What a progress line counts: pages of a paginated pull, calls of the others."""
        return "pages" if self.paginate else "calls"

    @property
    def total(self) -> int | None:
        """Responses the pull will receive, when known before the first one (a paginated pull learns it
        from page 1)."""
        return None if self.paginate else len(self.calls)


@dataclass
class PullStats:
    """What running a plan saw: filled as responses arrive, read by the manifest and the log lines.

    ``pages`` counts responses (pages of a paginated pull, calls of a fan-out: a fan-out's manifest reports
    them as ``calls`` too); ``records`` counts the records they held, before any client-side filter.
    """

    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    pages: int = 0
    records: int = 0
    #: Responses the pull will receive, once known (a paginated pull learns it from page 1).
    total: int | None = None
    started: float = 0.0
    #: Wall-clock time (epoch seconds) the pull began: the moment a snapshot API's answer describes.
    started_at: float = field(default_factory=time.time)
    #: When the oldest data of the output was fetched, when that is earlier than ``started_at`` (a resumed
    #: pull adopts pages an earlier try fetched).
    snapshot_at: float | None = None
    elapsed: float = 0.0
    #: Items of a fan-out whose call failed, collected under ``on_item_error="collect"``.
    failed: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def add_page(self, records: int, total: int | None = None, *, pages: int = 1) -> None:
        """``pages`` responses (a resumed pull counts the staged pages it read back at once) held ``records``."""
        self.pages += pages
        self.records += records
        if total is not None:
            self.total = total
        self.elapsed = self.clock() - self.started

    def finish(self) -> None:
        self.elapsed = self.clock() - self.started

    def rate(self, records: int | None = None) -> float:
        """Records per second so far (of ``records``, default the records received)."""
        count = self.records if records is None else records
        return count / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class PullResult:
    """A finished pull: what was planned, what it saw, the manifest it produced and the API it read."""

    plan: PullPlan
    stats: PullStats
    manifest: Mapping[str, Any]
    api_base_url: str

    def lineage_facts(self) -> dict[str, Any]:
        """What :func:`~airflow_provider_schneider.lineage.operator_lineage` needs (no output in XCom mode)."""
        return {
            "api_base_url": self.api_base_url,
            "input_paths": [self.plan.path],
            "output_uri": self.manifest.get("uri"),
            "records": self.manifest.get("records"),
            "bytes": self.manifest.get("bytes"),
            "columns": self.manifest.get("columns"),
            "schema": self.manifest.get("schema"),
            "schema_changes": self.manifest.get("schema_changes"),
        }
