"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

``conn-fields`` drive the connection form of the Airflow 3.2+ UI; secrets use ``format: password`` so the UI
masks them and Airflow treats them as sensitive. Only a switch carries a default (``verify_ssl``: an unset
switch would show *off* while it is on); any other empty field means the provider's default, and
``token_cluster_lease`` is a default/on/off choice (see config/fields.py).
"""

from __future__ import annotations

from typing import Any

from airflow_provider_schneider import __version__
from airflow_provider_schneider.config.fields import conn_fields_schema

#: Airflow 3.2+ connection form, built from the one declaration of each field (config/fields.py).
CONN_FIELDS: dict[str, dict[str, Any]] = conn_fields_schema()

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port", "extra"],
    "relabeling": {
        "login": "Client ID",
        "password": "Client secret",
        "host": "API base URL (optional)",
    },
    "placeholders": {
        "host": "https://api.se.com (derived from Environment when empty)",
        "login": "client id of your technical user",
    },
}


#: The modules of each Airflow face. Written out, not imported: provider discovery runs in every Airflow
#: process, and importing the faces' packages there would load our code into processes that never use it.
#: tests/unit/test_architecture.py checks the lists against the faces' public names (``operators.__all__``).
MODULES: dict[str, list[str]] = {
    "hooks": ["airflow_provider_schneider.hooks.schneider", "airflow_provider_schneider.hooks.schneider_async"],
    "operators": [
        "airflow_provider_schneider.operators.api",
        "airflow_provider_schneider.operators.catalog",
        "airflow_provider_schneider.operators.orders",
        "airflow_provider_schneider.operators.products",
    ],
    "sensors": ["airflow_provider_schneider.sensors.order_status"],
    "triggers": [
        "airflow_provider_schneider.triggers.order_status",
        "airflow_provider_schneider.triggers.order_events",
    ],
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-schneider",
        "name": "Schneider Electric",
        "description": "Schneider Electric distributor (partner) APIs: order status, product catalog, stock, "
        "availability, net price.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Schneider Electric",
                "external-doc-url": "https://api-explorer.se.com",
                "tags": ["service"],
            }
        ],
        "hooks": [{"integration-name": "Schneider Electric", "python-modules": MODULES["hooks"]}],
        "operators": [{"integration-name": "Schneider Electric", "python-modules": MODULES["operators"]}],
        "sensors": [{"integration-name": "Schneider Electric", "python-modules": MODULES["sensors"]}],
        "triggers": [{"integration-name": "Schneider Electric", "python-modules": MODULES["triggers"]}],
        "asset-uris": [{"schemes": ["schneider"], "handler": "airflow_provider_schneider.assets.sanitize_uri"}],
        "connection-types": [
            {
                "connection-type": "schneider",
                "hook-class-name": "airflow_provider_schneider.hooks.schneider.SchneiderHook",
                "hook-name": "Schneider Electric",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
