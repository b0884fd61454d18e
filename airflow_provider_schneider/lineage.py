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
        outputs.append(
            OutputDataset(namespace=out_namespace, name=out_name, outputFacets={"outputStatistics": statistics})
        )
    return OperatorLineage(inputs=inputs, outputs=outputs)
