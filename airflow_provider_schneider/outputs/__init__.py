"""Writing pulled records: formats (JSON Lines, CSV, Parquet), part files, atomic commits, manifests."""
