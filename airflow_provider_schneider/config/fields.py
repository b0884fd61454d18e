"""Every connection field, declared once: name, type, provider default, bounds, label, help, secret or not.

Validation (:mod:`settings`), the Airflow 3.2+ form schema (``conn-fields`` in :mod:`get_provider_info`), the
Airflow 3.1 form widgets (:class:`~airflow_provider_schneider.hooks.schneider.SchneiderHook`) and the docs'
table are all built from :data:`FIELDS`. An empty field means "the provider's default", so saving the form does
not freeze today's defaults into the connection's extra; the one exception is a switch (a boolean without an
``env``): Airflow's form has no empty switch, one without a default shows *off*, so a switch starts at its
default and a saved form stores it (``verify_ssl: true``).
A field with an ``env`` reads that environment variable when it is empty (connection > variable > default); a
boolean with an ``env`` is a three-way choice in the form (default / on / off) instead of a switch: a switch
would save the form's value and so override the variable, and Airflow's UI would send a default of a key
containing "token" masked, as ``'***'``, which the form would then save.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["string", "number", "integer", "boolean"]

#: Token endpoint and API host per environment, from Schneider's API portal (docs/connection.md).
ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "explore": ("https://api.explore.se.com/token", "https://api.explore.se.com"),
    "dev": ("https://api.dev.se.com/token", "https://api.dev.se.com"),
    "qa": ("https://api.qa.se.com/token", "https://api.qa.se.com"),
    "preprod": ("https://api.preprod.se.com/token", "https://api.preprod.se.com"),
    "production": ("https://api.se.com/token", "https://api.se.com"),
}
CLIENT_AUTH_MODES = ("basic", "body")
TOKEN_CACHE_TIERS = ("memory", "file", "variable")
#: The API portal's FAQ allows at most 10 parallel calls per client.
MAX_CONCURRENCY_CAP = 10
MIB = 1024 * 1024
#: Environment variables that stand in for an empty ``token_cluster_lease`` / ``token_cluster_settle``.
TOKEN_CLUSTER_LEASE_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_TOKEN_CLUSTER_LEASE"
TOKEN_CLUSTER_SETTLE_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_TOKEN_CLUSTER_SETTLE"
#: A worker-wide override of ``client_max_in_flight`` (a gateway contract above Schneider's 10, say).
CLIENT_MAX_IN_FLIGHT_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_CLIENT_MAX_IN_FLIGHT"
ADAPTIVE_CONCURRENCY_ENV = "AIRFLOW_PROVIDER_SCHNEIDER_ADAPTIVE_CONCURRENCY"


@dataclass(frozen=True)
class ConnField:
    """One extra field of a ``schneider`` connection. ``default`` is the provider's (``None``: none or derived)."""

    name: str
    kind: Kind
    label: str
    help: str
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    secret: bool = False
    #: Environment variable read when the field is empty (a worker-wide setting without editing the connection).
    env: str | None = None

    def description(self) -> str:
        """The form's help text: what the field does and what an empty field means."""
        if self.env:
            return f"{self.help} Empty = ${self.env} if set, else {shown(self.default)}."
        if self.form_default() is not None:
            return f"{self.help} Default: {on_off(self.default)}."
        if self.default is None or self.default == "":
            return self.help
        return f"{self.help} Empty = {shown(self.default)}."

    @property
    def three_way(self) -> bool:
        """A boolean that falls back to an environment variable: default / on / off in the form, not a switch."""
        return self.kind == "boolean" and self.env is not None

    def form_default(self) -> bool | None:
        """What a new connection's form starts from: a switch's default (an unset switch shows *off*), else
        None (the field is empty, meaning the provider's default)."""
        if self.kind == "boolean" and not self.three_way and isinstance(self.default, bool):
            return self.default
        return None

    def form_schema(self) -> dict[str, Any]:
        """This field as one entry of Airflow's ``conn-fields`` (JSON schema; only a switch has a default)."""
        if self.three_way:
            return {"label": self.label, "description": self.description(), "schema": self._three_way_schema()}
        schema: dict[str, Any] = {"type": [self.kind, "null"]}
        if self.form_default() is not None:
            schema["default"] = self.form_default()
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.secret:
            schema["format"] = "password"
        return {"label": self.label, "description": self.description(), "schema": schema}

    def _three_way_schema(self) -> dict[str, Any]:
        """A dropdown whose empty choice says what empty means; the settings read "true"/"false" strings."""
        return {
            "type": ["string", "null"],
            "enum": [None, "true", "false"],
            "values_display": {
                "null": f"{on_off(self.default)} (default; ${self.env} overrides)",
                "true": "on",
                "false": "off",
            },
        }


def on_off(value: Any) -> str:
    return "on" if value else "off"


def shown(value: Any) -> str:
    """A default as a person reads it: ``true``, ``60``, ``0.5``, ``production``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


FIELDS: tuple[ConnField, ...] = (
    ConnField(
        "environment",
        "string",
        "Environment",
        "Schneider environment; sets the token URL and API host unless overridden.",
        default="production",
        choices=tuple(ENVIRONMENTS),
    ),
    ConnField(
        "client_auth",
        "string",
        "Client authentication",
        "How the client id/secret reach the token endpoint: HTTP Basic header or form body.",
        default="basic",
        choices=CLIENT_AUTH_MODES,
    ),
    ConnField("token_url", "string", "Token URL (override)", "Defaults to the environment's, or {API base URL}/token."),
    ConnField(
        "scope", "string", "Scope", "OAuth scope, only if your technical user needs one (the API portal shows 'all')."
    ),
    ConnField(
        "api_key", "string", "API key", "Long-lived key sent as 'apikey' query parameter instead of OAuth.", secret=True
    ),
    ConnField("timeout", "number", "Read timeout (s)", "Seconds to wait for each read.", 60.0, 0.001, 3600),
    ConnField(
        "connect_timeout", "number", "Connect timeout (s)", "Seconds to wait for a connection.", 10.0, 0.001, 600
    ),
    ConnField(
        "attempt_timeout",
        "number",
        "Deadline per attempt (s)",
        "Total seconds one attempt may take, connect to last body byte (a dripping server never holds a call "
        "longer). Empty = connect timeout + 2 x read timeout.",
        None,
        0.001,
        86400,
    ),
    ConnField(
        "max_response_bytes",
        "integer",
        "Max response size (bytes)",
        "Largest decoded response body accepted; a bigger one fails the call.",
        64 * MIB,
        1024,
        16 * 1024 * MIB,
    ),
    ConnField(
        "max_pages",
        "integer",
        "Max pages per pull",
        "A paginated pull announcing more pages than this is refused (a lying page count never loops).",
        100_000,
        1,
        10_000_000,
    ),
    ConnField(
        "max_concurrency",
        "integer",
        "Max parallel calls",
        f"Client-side cap per task (Schneider allows {MAX_CONCURRENCY_CAP}).",
        4,
        1,
        MAX_CONCURRENCY_CAP,
    ),
    ConnField(
        "client_max_in_flight",
        "integer",
        "Max calls in flight per client and host",
        "Every process of a host that uses this client shares this many calls in flight (Schneider's FAQ allows "
        "10; slot files in the host cache folder). 0 turns the host-wide cap off.",
        MAX_CONCURRENCY_CAP,
        0,
        1000,
        env=CLIENT_MAX_IN_FLIGHT_ENV,
    ),
    ConnField(
        "slot_wait_timeout",
        "number",
        "Wait for a call slot (s)",
        "How long a call waits for one of the host's slots before the task fails with a clear error.",
        600.0,
        1,
        86400,
    ),
    ConnField(
        "max_calls_per_second",
        "number",
        "Max calls per second per client and host",
        "A pace shared by every process of a host (a token bucket), for a gateway whose rate is known. "
        "0 = none (a throttle still slows the client down).",
        0.0,
        0,
        10_000,
    ),
    ConnField(
        "adaptive_concurrency",
        "boolean",
        "Adaptive concurrency",
        "On a throttle (429, or a spike-arrest or quota fault in any status): halve the calls in flight and "
        "pace the calls, then grow back after successes.",
        True,
        env=ADAPTIVE_CONCURRENCY_ENV,
    ),
    ConnField("page_size", "integer", "Page size", "Records per page (Order Status max 100).", 100, 1, 10_000),
    ConnField(
        "token_cache",
        "string",
        "Token cache tiers",
        "Comma list of memory,file,variable or 'none'. Shared tiers are encrypted.",
        default="memory,file,variable",
    ),
    ConnField("token_cache_dir", "string", "Token cache directory", "Host cache folder (default ~/.cache/...)."),
    ConnField("token_leeway", "number", "Token refresh leeway (s)", "Refresh this long before expiry.", 300.0, 0, 3600),
    ConnField(
        "token_refresh_spread",
        "number",
        "Token refresh spread",
        "Each process renews at a random point up to this share of the leeway earlier (0..1).",
        0.5,
        0,
        1,
    ),
    ConnField(
        "token_wait_timeout",
        "number",
        "Token lock wait (s)",
        "Longest wait for another process's token refresh.",
        120.0,
        1,
        3600,
    ),
    ConnField(
        "token_max_lifetime",
        "number",
        "Token max lifetime (s)",
        "A gateway's expires_in above this is capped (with a warning).",
        86400.0,
        60,
        30 * 86400,
    ),
    ConnField(
        "token_cluster_lease",
        "boolean",
        "Token: cross-host lease",
        "With the variable tier, hosts renewing at once take a lease there: one asks the token endpoint, the "
        "others wait for its token. Off: each host renews on its own.",
        True,
        env=TOKEN_CLUSTER_LEASE_ENV,
    ),
    ConnField(
        "token_cluster_settle",
        "number",
        "Token lease settle delay (s)",
        "How long a host waits after writing the lease before reading it back to see whether it won (at least "
        "twice its own read + write). Longer tolerates a slower Variable API; the winner pays it once per renewal.",
        0.5,
        0.05,
        10,
        env=TOKEN_CLUSTER_SETTLE_ENV,
    ),
    ConnField("retry_max_attempts", "integer", "Retry: max attempts", "Attempts per idempotent call.", 5, 1, 100),
    ConnField(
        "retry_backoff_initial", "number", "Retry: first backoff (s)", "First backoff step, doubling.", 1.0, 0, 3600
    ),
    ConnField("retry_backoff_max", "number", "Retry: max backoff (s)", "Largest backoff step.", 30.0, 0, 3600),
    ConnField(
        "retry_max_total_wait",
        "number",
        "Retry: max total wait (s)",
        "Give up once waiting between attempts would exceed this.",
        120.0,
        0,
        86400,
    ),
    ConnField(
        "retry_after_cap", "number", "Retry: Retry-After cap (s)", "Longest Retry-After honoured.", 120.0, 0, 86400
    ),
    ConnField("verify_ssl", "boolean", "Verify TLS", "Keep on in production.", True),
    ConnField("ca_bundle", "string", "CA bundle path", "Custom CA bundle for TLS verification."),
    ConnField("test_path", "string", "Test call path", "Optional GET path called by 'Test' after the token request."),
)

FIELDS_BY_NAME: dict[str, ConnField] = {f.name: f for f in FIELDS}


def default(name: str) -> Any:
    """The provider's default of field ``name``."""
    return FIELDS_BY_NAME[name].default


def conn_fields_schema() -> dict[str, dict[str, Any]]:
    """Airflow's ``conn-fields`` (3.2+ connection form)."""
    return {f.name: f.form_schema() for f in FIELDS}


def markdown_table() -> str:
    """The docs' table of connection extras (generated, so it can never disagree with the code)."""
    rows = ["| field | type | default | bounds | what it does |", "|---|---|---|---|---|"]
    for f in FIELDS:
        bounds = ", ".join(
            part
            for part in (
                f"one of {'/'.join(f.choices)}" if f.choices else "",
                f">= {f.minimum:g}" if f.minimum is not None else "",
                f"<= {f.maximum:g}" if f.maximum is not None else "",
                "secret" if f.secret else "",
            )
            if part
        )
        value = "" if f.default is None else f"`{shown(f.default)}`"
        does = f"{f.help} Empty: `${f.env}` if set, else the default." if f.env else f.help
        rows.append(f"| `{f.name}` | {f.kind} | {value} | {bounds} | {does} |")
    return "\n".join(rows)
