"""OpenLineage facets of a Schneider pull: the API endpoint read, the file written.

Dataset naming follows OpenLineage's conventions: an HTTP API is namespace ``<scheme>://<authority>[/base]``
(the connection's API base URL, never with credentials or a query string) and name ``<endpoint path>``; a
local file is namespace ``file`` and name its absolute path; an object store ``<scheme>://<bucket>`` and the
key. Nothing here is imported unless Airflow's OpenLineage listener asks (imports inside the functions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

LOCAL_SCHEMES = ("", "file", "local")


def api_namespace(api_base_url: str) -> str:
    """``https://api.se.com`` (credentials, query and fragment dropped, no trailing slash)."""
    parts = urlsplit(api_base_url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path}".rstrip("/")


def output_dataset_name(uri: str) -> tuple[str, str]:
    """(namespace, name) of a written object: ``file`` + path, or ``s3://bucket`` + key."""
    parts = urlsplit(uri)
    if parts.scheme in LOCAL_SCHEMES:
        return "file", parts.path or uri
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


def operator_lineage(facts: Mapping[str, Any]) -> Any:
    """``OperatorLineage`` for what ``execute`` recorded (empty before a successful run)."""
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    if not facts:
        return OperatorLineage()
    namespace = api_namespace(facts["api_base_url"])
    inputs = [Dataset(namespace=namespace, name=path) for path in facts.get("input_paths") or []]
    outputs = []
    if facts.get("output_uri"):
        out_namespace, out_name = output_dataset_name(facts["output_uri"])
        statistics = OutputStatisticsOutputDatasetFacet(rowCount=facts.get("records"), size=facts.get("bytes"))
        schema = schema_facet(facts)
        outputs.append(
            OutputDataset(
                namespace=out_namespace,
                name=out_name,
                facets={"schema": schema} if schema is not None else {},
                outputFacets={"outputStatistics": statistics},
            )
        )
    return OperatorLineage(inputs=inputs, outputs=outputs)


def schema_facet(facts: Mapping[str, Any]) -> Any:
    """OpenLineage's schema facet of the file: its columns and types. With a declared schema, each column's
    description names the schema version and this pull's changes to it; undeclared fields are listed where
    they were kept: sub-fields of ``_extra`` (CSV, Parquet) or fields of the record (JSON Lines)."""
    from airflow.providers.common.compat.openlineage.facet import SchemaDatasetFacet, SchemaDatasetFacetFields

    columns: Mapping[str, str] = facts.get("columns") or {}
    if not columns:
        return None
    version = (facts.get("schema") or {}).get("version")
    notes: dict[str, list[str]] = {name: [f"schema {version}"] if version else [] for name in columns}
    in_extra: list[Any] = []
    as_keys: list[Any] = []
    for change in facts.get("schema_changes") or []:
        path = str(change["field"])
        top = path.split(".", 1)[0].split("[", 1)[0]
        declared = f"declared {change['declared']}, " if change.get("declared") else ""
        said = f"{change['change']}: {declared}sent {change['seen']} in {change['records']} records, {change['action']}"
        if top in notes:
            notes[top].append(f"{path} {said}" if path != top else said)
        else:
            field = SchemaDatasetFacetFields(name=path, type=change["seen"], description=said)
            (as_keys if change["action"] == "kept_as_key" else in_extra).append(field)
    fields = [
        SchemaDatasetFacetFields(
            name=name,
            type=kind,
            description="; ".join(notes[name]) or None,
            fields=in_extra if name == "_extra" and in_extra else None,
        )
        for name, kind in columns.items()
    ]
    return SchemaDatasetFacet(fields=fields + as_keys)
