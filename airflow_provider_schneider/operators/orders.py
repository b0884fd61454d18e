"""Order Status pulls: every order of a country, all pages, stable order."""

from __future__ import annotations

from typing import Any

from airflow_provider_schneider.operators.api import SchneiderApiOperator


class SchneiderOrderStatusOperator(SchneiderApiOperator):
    """Pull all orders of ``country`` (optionally filtered) from Partner Order Status v1.1.

    Pages are fetched concurrently once page 1 told the total; the pull stops on ``totalNumberOfPages``
    (the API answers a page beyond the last with the last page again, so an empty-page loop never ends).

    :param country: ISO 3166 alpha-2 code (templated through ``path_params``).
    :param order_number: full number or prefix (min 3 characters).
    :param order_status: one of the country's status values.
    :param purchaser_id: 5 or 10 digits.
    :param legacy: use the older ``order-status`` variant (200 orders per page).
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
