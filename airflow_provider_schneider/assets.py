"""Airflow Assets for Schneider data: one asset per API resource and scope, so DAGs can wait for new data.

``schneider://<resource>/<scope...>``, named ``schneider.<resource>.<scope...>``:

==============================  ====================================================================
operator (resource)             scope (when every part is a plain, non-templated value at parse time)
==============================  ====================================================================
Order Status (``order_status``)  the country: ``schneider://order_status/FR``
Product Catalog                  supplier and customer ids: ``schneider://product_catalog/SE-FR-0001/0012345678``
                                 (a ``duns`` id is written ``duns:<id>``)
generic, by resource             that resource's scope (as above; ``distributor_quote``: the quote number)
generic, by ``endpoint``         the path itself: ``schneider://api/v1/some/path/FR``
otherwise (templated, mapped,    the connection id: ``schneider://stock_level/conn:schneider_default``
fan-outs over products)
==============================  ====================================================================

The scope must be known when the DAG file is parsed (the scheduler links producers and consumers then), so a
templated or mapped scope argument falls back to the connection id. ``outlets=[...]`` overrides the default,
``outlets=[]`` disables it. Values are percent-encoded, so the mapping name <-> URI is one to one and a ``:``
only ever comes from the ``conn:`` and ``duns:`` prefixes.

Stdlib and ``airflow.sdk`` only: operators import this while a DAG file is parsed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeGuard
from urllib.parse import SplitResult, quote, unquote

if TYPE_CHECKING:
    from airflow.sdk import Asset

SCHEME = "schneider"
#: Resource label of the generic operator called with an explicit ``endpoint``.
ENDPOINT_RESOURCE = "api"
CONN_PREFIX = "conn:"
DUNS_PREFIX = "duns:"

#: Which arguments scope each resource: ``("path", name)`` or ``("query", name)``, in URI order.
SCOPE_KEYS: dict[str, tuple[tuple[str, str], ...]] = {
    "order_status": (("path", "country"),),
    "order_status_legacy": (("path", "country"),),
    "product_catalog": (("query", "supplierid"), ("query", "customerid")),
    "product_catalog_v1": (("query", "supplierid"), ("query", "customerid")),
    "distributor_quote": (("path", "quote_number"),),
}

#: Manifest keys copied into an outlet event's ``extra`` (small, secret-free; never the query or records).
EVENT_EXTRA_KEYS = (
    "uri",
    "records",
    "bytes",
    "sha256",
    "format",
    "fetched_at",
    "data_interval_start",
    "data_interval_end",
    "map_index",
    "endpoint",
    "since",
    "until",
    "change_type",
    "watermark",
    "watermark_key",
    "schema",  # mode, version and fingerprint of the file schema: a consumer sees a new one before reading
)

_TEMPLATE_MARKS = ("{{", "{%", "{#")


def is_static(value: Any) -> TypeGuard[str | int | float]:
    """A plain value known at parse time (a string or a number): not a Jinja template, not an XComArg or
    mapped argument."""
    if isinstance(value, str):
        return bool(value.strip()) and not any(mark in value for mark in _TEMPLATE_MARKS)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _segment(value: Any) -> str:
    """One scope value as one path segment (``:`` and ``/`` encoded: only prefixes carry a raw ``:``)."""
    return quote(str(value).strip(), safe="-_.~")


def asset_uri(resource: str, scope: Iterable[str]) -> str:
    return f"{SCHEME}://{resource}/" + "/".join(scope)


def asset_name(resource: str, scope: Iterable[str]) -> str:
    return f"{SCHEME}.{resource}." + "/".join(scope)


def make_asset(resource: str, scope: Iterable[str]) -> Asset:
    """The asset of already-encoded scope segments (see :func:`scope_segments`)."""
    from airflow.sdk import Asset

    parts = list(scope)
    return Asset(name=asset_name(resource, parts), uri=asset_uri(resource, parts), group="schneider")


def conn_scope(conn_id: str) -> list[str]:
    return [CONN_PREFIX + _segment(conn_id)]


def order_status_asset(country: str) -> Asset:
    """``schneider://order_status/<COUNTRY>``: what :class:`SchneiderOrderStatusOperator` declares."""
    return make_asset("order_status", [_segment(str(country).strip().upper())])


def product_catalog_asset(
    supplier_id: str,
    customer_id: str,
    *,
    supplier_id_type: str = "specific",
    customer_id_type: str = "specific",
    api_version: str = "v2",
) -> Asset:
    """``schneider://product_catalog/<supplier>/<customer>``: what the catalog operator declares."""
    resource = "product_catalog" if api_version == "v2" else "product_catalog_v1"
    return make_asset(
        resource, [_id_segment(supplier_id, supplier_id_type), _id_segment(customer_id, customer_id_type)]
    )


def connection_asset(resource: str, conn_id: str = "schneider_default") -> Asset:
    """The fallback asset of a resource pulled through ``conn_id`` (fan-outs, templated scopes)."""
    return make_asset(resource, conn_scope(conn_id))


def _id_segment(value: Any, id_type: Any) -> str:
    kind = str(id_type or "specific").strip().lower()
    return (DUNS_PREFIX if kind == "duns" else "") + _segment(value)


def scope_segments(resource: str, path_params: Mapping[str, Any], query: Mapping[str, Any]) -> list[str] | None:
    """Encoded scope of ``resource`` from the operator's arguments, or ``None`` when one is not static."""
    keys = SCOPE_KEYS.get(resource)
    if not keys:
        return None
    parts: list[str] = []
    for where, name in keys:
        value = (path_params if where == "path" else query).get(name)
        if not is_static(value):
            return None
        if name == "country":
            parts.append(_segment(str(value).strip().upper()))
        elif where == "query":
            id_type = query.get(f"{name}-type", "specific")
            if not is_static(id_type):
                return None
            parts.append(_id_segment(value, id_type))
        else:
            parts.append(_segment(value))
    return parts


def endpoint_segments(endpoint: Any, path_params: Mapping[str, Any]) -> list[str] | None:
    """Scope of the generic operator's explicit ``endpoint``: its path with static ``{placeholders}`` filled."""
    import string

    if not is_static(endpoint):
        return None
    names = [name for _, name, _, _ in string.Formatter().parse(str(endpoint)) if name]
    if any(not is_static(path_params.get(name)) for name in names):
        return None
    try:
        path = str(endpoint).format(**{name: _segment(path_params[name]) for name in names})
    except (IndexError, KeyError, ValueError):
        return None
    parts = [p for p in path.split("/") if p]
    return [_segment(unquote(p)) for p in parts] or None


def event_extra(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a manifest that travels with an asset event: where the data is and how to check it
    (the part files too, when the output is split: a consumer must not list the folder)."""
    extra = {key: manifest[key] for key in EVENT_EXTRA_KEYS if manifest.get(key) is not None}
    parts = manifest.get("parts") or []
    if parts and [p.get("uri") for p in parts] != [manifest.get("uri")]:
        extra["parts"] = list(parts)
    return extra


def sanitize_uri(uri: SplitResult) -> SplitResult:
    """URI normaliser registered for the ``schneider`` scheme (provider info ``asset-uris``).

    Airflow lower-cases the scheme, drops fragments and trailing slashes; this also requires a resource and a
    scope and lower-cases the resource, so ``schneider://Order_Status/FR`` and ``schneider://order_status/FR``
    are one asset.
    """
    if not uri.netloc:
        raise ValueError("A schneider:// asset URI needs a resource: schneider://<resource>/<scope>")
    if uri.path in ("", "/"):
        raise ValueError("A schneider:// asset URI needs a scope: schneider://<resource>/<scope>")
    if uri.username or uri.password or uri.port:
        raise ValueError("A schneider:// asset URI names a resource, not a host: no user, password or port")
    return uri._replace(netloc=uri.netloc.lower(), query="", fragment="")
