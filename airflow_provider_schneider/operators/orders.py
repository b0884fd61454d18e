"""Order Status pulls: every order of a country, all pages, stable order."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_schneider.exceptions import SchneiderConfigError
from airflow_provider_schneider.operators.api import SchneiderApiOperator
from airflow_provider_schneider.pulls.plan import PullPlan, PullStats

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_schneider.hooks.schneider import SchneiderHook

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_PURCHASER = re.compile(r"^(\d{5}|\d{10})$")


class SchneiderOrderStatusOperator(SchneiderApiOperator):
    """Pull all orders of ``country`` (optionally filtered) from Partner Order Status v1.1.

    Page 1 tells how many pages exist; pages 2..N are then fetched concurrently (the connection's
    ``max_concurrency``) and written in page order. The pull stops on ``totalNumberOfPages``: the API answers
    a page beyond the last with the last page again, so a loop waiting for an empty page would never end.

    :param country: ISO 3166 alpha-2 code (templated, e.g. ``"{{ params.country }}"``; works with ``.expand``).
    :param order_number: full number or prefix (min 3 characters).
    :param order_status: one of the country's status values.
    :param purchaser_id: 5 or 10 digits.
    :param legacy: use the older ``order-status`` variant (200 orders per page).

    Declares the asset ``schneider://order_status/<COUNTRY>`` when ``country`` is a plain value (else
    ``schneider://order_status/conn:<conn id>``), see :mod:`airflow_provider_schneider.assets`.
    """

    def __init__(
        self,
        *,
        country: str,
        order_number: str | None = None,
        order_status: str | None = None,
        purchaser_id: str | None = None,
        legacy: bool = False,
        query: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        filters = {"order-number": order_number, "order-status": order_status, "purchaser-id": purchaser_id}
        super().__init__(
            resource="order_status_legacy" if legacy else "order_status",
            path_params={"country": country},
            query={**{k: v for k, v in filters.items() if v is not None}, **(query or {})},
            **kwargs,
        )

    @classmethod
    def default_asset_from_kwargs(cls, kwargs: Mapping[str, Any]) -> Any:
        resource = "order_status_legacy" if kwargs.get("legacy") else "order_status"
        return super().default_asset_from_kwargs(
            {**kwargs, "resource": resource, "path_params": {"country": kwargs.get("country")}}
        )

    def prepare(self, context: Context, hook: SchneiderHook) -> PullPlan:
        plan = super().prepare(context, hook)
        end = context.get("data_interval_end")
        if isinstance(end, dt.datetime) and dt.datetime.now(dt.timezone.utc) - end > dt.timedelta(days=1):
            self.log.info(
                "Order Status has no history: this run for the interval ending %s pulls the orders as they are now "
                "(a snapshot; the manifest's snapshot_at says when)",
                end.isoformat(),
            )
        return plan

    def manifest_facts(self, plan: PullPlan, stats: PullStats) -> dict[str, Any]:
        """Order Status has no history: a pull is a snapshot of the orders as they are when it runs, whatever
        the data interval (a backfill of last month pulls today's orders); a resumed pull's pages are as old as
        its first try."""
        since = stats.snapshot_at if stats.snapshot_at is not None else stats.started_at
        at = dt.datetime.fromtimestamp(since, dt.timezone.utc).isoformat(timespec="seconds")
        return {**super().manifest_facts(plan, stats), "snapshot_at": at}

    def checked_params(self, query: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The API's documented input rules, checked after templating so a bad value fails before any call."""
        path_params, query = super().checked_params(query)
        country = str(path_params.get("country") or "").strip().upper()
        if not _COUNTRY.match(country):
            raise SchneiderConfigError(f"{self.task_id}: country must be an ISO 3166 alpha-2 code, got {country!r}")
        path_params["country"] = country
        for name in ("order-number", "order-status", "purchaser-id"):
            value = query.get(name)
            if value in (None, ""):
                query.pop(name, None)
            else:
                query[name] = str(value).strip()
        number = query.get("order-number")
        if number is not None and len(number) < 3:
            raise SchneiderConfigError(f"{self.task_id}: order_number needs at least 3 characters, got {number!r}")
        purchaser = query.get("purchaser-id")
        if purchaser is not None and not _PURCHASER.match(purchaser):
            raise SchneiderConfigError(f"{self.task_id}: purchaser_id must be 5 or 10 digits, got {purchaser!r}")
        return path_params, query
