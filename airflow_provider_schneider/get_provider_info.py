"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

``conn-fields`` drive the connection form of the Airflow 3 UI; secrets use ``format: password`` so the UI
masks them and Airflow treats them as sensitive.
"""

from __future__ import annotations

from typing import Any


def _field(label: str, kind: str, description: str, **schema: Any) -> dict[str, Any]:
    return {"label": label, "description": description, "schema": {"type": [kind, "null"], **schema}}


CONN_FIELDS: dict[str, dict[str, Any]] = {
    "environment": _field(
        "Environment",
        "string",
        "Schneider environment; sets the token URL and API host unless overridden.",
        enum=["explore", "dev", "qa", "preprod", "production"],
        default="production",
    ),
    "client_auth": _field(
        "Client authentication",
        "string",
        "How the client id/secret reach the token endpoint: HTTP Basic header or form body.",
        enum=["basic", "body"],
        default="basic",
    ),
    "token_url": _field("Token URL (override)", "string", "Defaults to the environment's, or {API base URL}/token."),
    "scope": _field("Scope", "string", "OAuth scope, only if your technical user needs one (e.g. 'all')."),
    "api_key": _field(
        "API key", "string", "Long-lived key sent as 'apikey' query parameter instead of OAuth.", format="password"
    ),
    "timeout": _field("Read timeout (s)", "number", "Seconds to wait for a response.", default=60),
    "connect_timeout": _field("Connect timeout (s)", "number", "Seconds to wait for a connection.", default=10),
    "max_concurrency": _field(
        "Max parallel calls",
        "integer",
        "Client-side cap per task (Schneider allows 10).",
        default=4,
        minimum=1,
        maximum=10,
    ),
    "page_size": _field(
        "Page size", "integer", "Records per page for paginated APIs (Order Status max 100).", default=100
    ),
    # No ``default`` on fields whose key contains "token": Airflow masks such values in the form, so a
    # pre-filled default would be saved as the literal "***". Empty means the documented default.
    "token_cache": _field(
        "Token cache tiers",
        "string",
        "Comma list of memory,file,variable or 'none'; empty = all three. Shared tiers are encrypted.",
    ),
    "token_cache_dir": _field("Token cache directory", "string", "Host cache folder (default ~/.cache/...)."),
    "token_leeway": _field("Token refresh leeway (s)", "number", "Refresh this long before expiry; empty = 300."),
    "retry_max_attempts": _field("Retry: max attempts", "integer", "Attempts per idempotent call.", default=5),
    "retry_max_total_wait": _field(
        "Retry: max total wait (s)", "number", "Give up after waiting this long.", default=120
    ),
    "verify_ssl": _field("Verify TLS", "boolean", "Keep on in production.", default=True),
    "ca_bundle": _field("CA bundle path", "string", "Custom CA bundle for TLS verification."),
    "test_path": _field("Test call path", "string", "Optional GET path called by 'Test' after the token request."),
}


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


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-provider-schneider",
        "name": "Schneider Electric",
        "description": "Schneider Electric distributor (partner) APIs: order status, product catalog, stock, "
        "availability, net price.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "Schneider Electric",
                "external-doc-url": "https://api-explorer.se.com",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Schneider Electric",
                "python-modules": ["airflow_provider_schneider.hooks.schneider"],
            }
        ],
        "operators": [
            {
                "integration-name": "Schneider Electric",
                "python-modules": [
                    "airflow_provider_schneider.operators.api",
                    "airflow_provider_schneider.operators.orders",
                    "airflow_provider_schneider.operators.products",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Schneider Electric",
                "python-modules": ["airflow_provider_schneider.sensors.order_status"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Schneider Electric",
                "python-modules": ["airflow_provider_schneider.triggers.order_status"],
            }
        ],
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
