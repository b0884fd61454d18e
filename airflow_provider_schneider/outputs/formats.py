"""The output formats and what each accepts (stdlib only: operators check their arguments at parse time)."""

from __future__ import annotations

from typing import Any

FORMATS = ("jsonl", "csv", "parquet")
#: Compression each format accepts; ``None`` is the format's default (none for text, snappy for Parquet).
COMPRESSIONS: dict[str, tuple[str | None, ...]] = {
    "jsonl": (None, "gzip"),
    "csv": (None, "gzip"),
    "parquet": (None, "snappy", "zstd", "none"),
}
_EXTENSIONS = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}


def check_output_options(
    output_format: str,
    compression: str | None,
    max_records_per_file: Any = None,
    max_bytes_per_file: Any = None,
    csv_escape_formulas: Any = False,
    output_layout: Any = "default",
) -> None:
    """Raise ``ValueError`` naming the argument when a combination cannot be written."""
    from airflow_provider_schneider.outputs.declared import LAYOUTS

    if output_layout not in LAYOUTS:
        raise ValueError(f"output_layout must be one of {', '.join(LAYOUTS)}, got {output_layout!r}")
    if not isinstance(csv_escape_formulas, bool):
        raise ValueError(f"csv_escape_formulas must be True or False, got {csv_escape_formulas!r}")
    if csv_escape_formulas and output_format != "csv":
        raise ValueError(f"csv_escape_formulas applies to output_format='csv', not {output_format!r}")
    if output_format not in FORMATS:
        raise ValueError(f"output_format must be one of {', '.join(FORMATS)}, got {output_format!r}")
    allowed = COMPRESSIONS[output_format]
    if compression not in allowed:
        shown = ", ".join(repr(c) for c in allowed)
        raise ValueError(f"compression for output_format={output_format!r} must be one of {shown}, got {compression!r}")
    for name, value in (("max_records_per_file", max_records_per_file), ("max_bytes_per_file", max_bytes_per_file)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}")


def extension(output_format: str, compression: str | None) -> str:
    """``.jsonl``, ``.jsonl.gz``, ``.csv``, ``.csv.gz``, ``.parquet`` (Parquet compresses inside the file)."""
    return _EXTENSIONS[output_format] + (".gz" if compression == "gzip" else "")


def manifest_compression(output_format: str, compression: str | None) -> str | None:
    """The codec actually used (Parquet's default is snappy)."""
    if output_format == "parquet":
        return "snappy" if compression is None else compression
    return compression
