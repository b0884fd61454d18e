"""Output locations that stay where the DAG author put them, whatever a template renders.

Templated values (``params``, a run's ``conf``, an upstream XCom) are user input: anyone allowed to trigger a
DAG with conf chooses them. So a rendered location is checked before any call: no ``.`` or ``..`` segment
(raw or percent-encoded, however often), no control character, it stays inside its root (the static part
of the template, ``output_base``, or the DAG's own folder), and below the root it names none of the
provider's own files. Stdlib only: the operators import this at parse time.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from airflow_provider_schneider.exceptions import SchneiderConfigError

_TEMPLATE_START = re.compile(r"\{\{|\{%|\{#")
#: The marker a part set carries (:data:`airflow_provider_schneider.outputs.ownership.SET_MARKER`).
RESERVED_NAME = "_schneider_set.json"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class OutputLocationError(SchneiderConfigError):
    """A rendered output location that leaves its root or could climb out of it."""


def is_templated(value: object) -> bool:
    return isinstance(value, str) and _TEMPLATE_START.search(value) is not None


def static_root(template: str) -> str | None:
    """The fixed part of an unrendered location, up to the last ``/`` before its first template marker:
    ``"s3://bucket/base/{{ params.region }}"`` -> ``"s3://bucket/base/"``. ``None`` when nothing is templated;
    ``""`` when the template decides the whole location (scheme or bucket included)."""
    found = _TEMPLATE_START.search(template)
    if found is None:
        return None
    head = template[: found.start()]
    scheme, sep, rest = head.partition("://")
    if sep and "/" not in rest:
        return ""  # the template is inside the scheme's authority (the bucket, the host)
    return head[: head.rfind("/") + 1] if "/" in head else ""


def _parts(uri: str) -> tuple[str, str, list[str]]:
    """``(scheme, authority, segments)``; ``file:///a/b`` and ``/a/b`` are the same place."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        scheme, rest = "file", uri
    scheme = scheme.lower()
    authority, _, path = rest.partition("/") if not rest.startswith("/") else ("", "", rest)
    if scheme in ("file", "local"):
        scheme = "file"
    return scheme, authority, [segment for segment in path.split("/") if segment]


def shown_uri(uri: object) -> str:
    """``uri`` (or any text holding URIs) fit for a log line or an error message: every ``user:secret@``
    before a host is cut out."""
    return re.sub(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@", r"\1***@", str(uri))


def _decoded(segment: str) -> str:
    """A segment as a store may finally read it: percent-decoding applied until nothing changes (each round
    that changes it makes it shorter, so this ends)."""
    while (decoded := unquote(segment)) != segment:
        segment = decoded
    return segment


def check_segments(uri: str, where: str) -> None:
    """Refuse a location with a ``.``/``..`` segment (also ``%2e%2e``, ``%252e``...) or a control character."""
    if _CONTROL.search(_decoded(uri)):
        raise OutputLocationError(f"{where}: {shown_uri(uri)!r} holds a control character")
    _, authority, segments = _parts(uri)
    for segment in [authority, *segments]:
        decoded = _decoded(segment)
        if decoded in (".", "..") or any(part in (".", "..") for part in decoded.replace("\\", "/").split("/")):
            raise OutputLocationError(
                f"{where}: {shown_uri(uri)!r} has a {decoded!r} segment, which could reach outside the output folder; "
                "refusing it before any call (a templated value, e.g. from a run's conf?)"
            )


def check_confined(uri: str, root: str | None, where: str) -> None:
    """``uri`` has no climbing segment and, given a ``root``, lies inside it (same scheme, authority and
    leading segments) and names nothing of the provider's own below it: no hidden segment (temporaries,
    journals, staged chunks) and no set marker."""
    check_segments(uri, where)
    if not root:
        return
    check_segments(root, where)
    scheme, authority, segments = _parts(uri)
    root_scheme, root_authority, root_segments = _parts(root)
    inside = (scheme, authority) == (root_scheme, root_authority) and segments[: len(root_segments)] == root_segments
    if not inside or len(segments) <= len(root_segments):
        raise OutputLocationError(
            f"{where}: {shown_uri(uri)!r} is not inside {shown_uri(root)!r}; a rendered output location must stay "
            "inside the fixed part of its template (or inside output_base)"
        )
    for segment in segments[len(root_segments) :]:
        decoded = _decoded(segment)
        if decoded.startswith(".") or decoded == RESERVED_NAME:
            raise OutputLocationError(
                f"{where}: {shown_uri(uri)!r} names {decoded!r}, a name the provider keeps for itself (hidden "
                "temporaries, journals, the set marker)"
            )
